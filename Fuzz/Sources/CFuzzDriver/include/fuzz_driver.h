// libFuzzer's driver, called from a target's own entry point (see FuzzSupport.fuzzMain).
#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerRunDriver(int *argc, char ***argv, int (*callback)(const uint8_t *data, size_t size));
