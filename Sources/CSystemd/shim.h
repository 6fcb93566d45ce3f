#ifndef NODEBOOT_CSYSTEMD_SHIM_H
#define NODEBOOT_CSYSTEMD_SHIM_H

/* No CODE_FILE/CODE_LINE/CODE_FUNC of this header in journal entries. */
#define SD_JOURNAL_SUPPRESS_LOCATION

#include <syslog.h>
#include <sys/uio.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-id128.h>
#include <systemd/sd-journal.h>

/* Swift cannot call C variadic functions: sd_journal_print with a fixed "%s" format. */
static inline int csd_journal_print(int priority, const char *message) {
    return sd_journal_print(priority, "%s", message);
}

#endif
