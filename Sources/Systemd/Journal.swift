import CSystemd
import Glibc

/// The systemd journal (sd-journal): entries written over journald's socket, and a unit's last
/// messages read back for error reports.
enum Journal {
    /// syslog priorities, as journald stores them in `PRIORITY=`.
    enum Priority: Int32, Sendable, CaseIterable {
        case emergency = 0, alert, critical, error, warning, notice, info, debug
    }

    /// journald's socket for native-protocol entries (`sd_journal_sendv` sends there).
    static let socketPath = "/run/systemd/journal/socket"

    /// The identifier of structured entries (`journalctl -t nodeboot`). Plain messages get the
    /// program's name, which is `nodeboot` too.
    static let identifier = "nodeboot"

    /// Fields `send` sets itself: a caller field with one of these names is renamed `NODEBOOT_…`.
    static let reservedFields: Set<String> = ["MESSAGE", "PRIORITY", "SYSLOG_IDENTIFIER"]

    /// Whether entries sent now would reach a journald: the host was booted with systemd and
    /// journald's socket exists.
    static var isAvailable: Bool {
        sd_booted() > 0 && access(socketPath, F_OK) == 0
    }

    /// Whether this process's stderr is connected to the journal already (systemd sets
    /// `JOURNAL_STREAM=<dev>:<inode>` for a unit whose output goes to journald): anything written
    /// to stderr then becomes a journal entry, and writing the same message twice is noise.
    static var stderrIsJournal: Bool {
        stderrIsJournal(journalStream: getenv("JOURNAL_STREAM").map { String(cString: $0) }, descriptor: 2)
    }

    /// Whether `journalStream` (`<dev>:<inode>`, decimal) names the file open at `descriptor`.
    static func stderrIsJournal(journalStream: String?, descriptor: Int32) -> Bool {
        guard let journalStream else { return false }
        let parts = journalStream.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, let device = UInt64(parts[0]), let inode = UInt64(parts[1]) else { return false }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { return false }
        return UInt64(status.st_dev) == device && UInt64(status.st_ino) == inode
    }

    /// Sends one entry. Without `fields` it is a plain message (`sd_journal_print`: `MESSAGE`,
    /// `PRIORITY`, `SYSLOG_IDENTIFIER` the program's name, trailing whitespace dropped); with
    /// them, a structured entry (`sd_journal_sendv`): `MESSAGE`, `PRIORITY`,
    /// `SYSLOG_IDENTIFIER=nodeboot` and `fields` (names made valid by `fieldName`). Returns whether
    /// it was sent to journald; without a journald (no socket) it returns false at once. Values
    /// may contain newlines.
    @discardableResult
    static func send(_ message: String, priority: Priority, fields: [(name: String, value: String)] = []) -> Bool {
        // Both report success when journald's socket is missing (they drop the entry).
        guard access(socketPath, F_OK) == 0 else { return false }
        // sd_journal_print drops a message that is empty once trailing whitespace is cut: send it whole.
        if fields.isEmpty && !message.allSatisfy(\.isWhitespace) {
            return csd_journal_print(priority.rawValue, message) >= 0
        }
        var buffer: [UInt8] = []
        var ranges: [Range<Int>] = []
        for item in entry(message, priority: priority, fields: fields) {
            let start = buffer.count
            buffer.append(contentsOf: item.utf8)
            ranges.append(start..<buffer.count)
        }
        let r = buffer.withUnsafeMutableBytes { bytes -> Int32 in
            guard let base = bytes.baseAddress else { return -EINVAL }
            let vectors = ranges.map { iovec(iov_base: base + $0.lowerBound, iov_len: $0.count) }
            return vectors.withUnsafeBufferPointer { sd_journal_sendv($0.baseAddress, Int32($0.count)) }
        }
        return r >= 0
    }

    /// The `FIELD=value` items of an entry, in the order they are sent.
    static func entry(_ message: String, priority: Priority, fields: [(name: String, value: String)]) -> [String] {
        ["MESSAGE=" + message, "PRIORITY=\(priority.rawValue)", "SYSLOG_IDENTIFIER=" + identifier]
            + fields.map { fieldName($0.name) + "=" + $0.value }
    }

    /// A valid journal field name for `key`: uppercase ASCII letters, digits and `_`, starting
    /// with a letter, at most 64 characters. Anything else becomes `_`; a name that does not
    /// start with a letter, or that `send` sets itself, gets the prefix `NODEBOOT_`.
    static func fieldName(_ key: String) -> String {
        var name = String(
            String.UnicodeScalarView(
                key.unicodeScalars.map { scalar -> Unicode.Scalar in
                    switch scalar {
                    case "A"..."Z", "0"..."9", "_": scalar
                    case "a"..."z": Unicode.Scalar(scalar.value - 32) ?? "_"
                    default: "_"
                    }
                }))
        if !(name.unicodeScalars.first.map { ("A"..."Z").contains($0) } ?? false) || reservedFields.contains(name) {
            name = "NODEBOOT_" + name
        }
        return String(name.prefix(64))
    }
}

/// Reads the journal (sd-journal): the local machine's, or the files under a directory.
/// One reader is not thread-safe; open one where needed.
final class JournalReader {
    /// Which of a unit's entries to read.
    struct Filter: Equatable, Sendable {
        /// Only this invocation's entries (32 hex digits): the unit's processes'
        /// (`_SYSTEMD_INVOCATION_ID`) and systemd's about it (`INVOCATION_ID`).
        var invocation: String?
        /// Without `invocation`: only entries of this boot (`_BOOT_ID`, 32 hex digits)…
        var boot: String?
        /// …and only those received at or after this time (microseconds since the epoch).
        var since: UInt64?

        init(invocation: String? = nil, boot: String? = nil, since: UInt64? = nil) {
            self.invocation = invocation
            self.boot = boot
            self.since = since
        }
    }

    private let journal: OpaquePointer
    private let source: String

    /// Opens the local journal (`directory` nil: `/run/log/journal` and `/var/log/journal`) or the
    /// journal files under `directory` (`journalctl --directory`).
    init(directory: String? = nil) throws(SystemdError) {
        var journal: OpaquePointer?
        let r: Int32
        if let directory {
            r = sd_journal_open_directory(&journal, directory, 0)
            source = "the journal in \(directory)"
        } else {
            r = sd_journal_open(&journal, Int32(SD_JOURNAL_LOCAL_ONLY))
            source = "the local journal"
        }
        guard r >= 0, let journal else {
            throw SystemdError(
                .unavailable,
                "cannot open \(source) (\(directory == nil ? "sd_journal_open" : "sd_journal_open_directory"): \(Bus.errnoText(r)))"
            )
        }
        self.journal = journal
    }

    deinit {
        sd_journal_close(journal)
    }

    /// The last `count` messages of `unit` that `filter` lets through, oldest first: what the
    /// unit's processes wrote (`_SYSTEMD_UNIT=`) and what others wrote about it (`UNIT=`, e.g.
    /// systemd's "Failed with result 'exit-code'"), or with `filter.invocation` what belongs to
    /// that run. Each line is `<UTC time> <identifier>[<pid>]: <message>`, control characters
    /// escaped.
    func lines(unit: String, count: Int, filter: Filter = Filter()) throws(SystemdError) -> [String] {
        guard count > 0 else { return [] }
        sd_journal_flush_matches(journal)
        if let invocation = filter.invocation {
            try match("_SYSTEMD_INVOCATION_ID=" + invocation)
            try check(sd_journal_add_disjunction(journal), "sd_journal_add_disjunction")
            try match("INVOCATION_ID=" + invocation)
        } else {
            try match("_SYSTEMD_UNIT=" + unit)
            try check(sd_journal_add_disjunction(journal), "sd_journal_add_disjunction")
            try match("UNIT=" + unit)
            if let boot = filter.boot {
                try check(sd_journal_add_conjunction(journal), "sd_journal_add_conjunction")
                try match("_BOOT_ID=" + boot)
            }
        }
        try check(sd_journal_seek_tail(journal), "sd_journal_seek_tail")
        var lines: [String] = []
        while lines.count < count {
            let r = sd_journal_previous(journal)
            try check(r, "sd_journal_previous")
            if r == 0 { break }
            var usec: UInt64 = 0
            let timed = sd_journal_get_realtime_usec(journal, &usec) >= 0
            if filter.invocation == nil, let since = filter.since, timed, usec < since { break }
            lines.append(currentLine(realtime: timed ? usec : nil))
        }
        return lines.reversed()
    }

    private func match(_ match: String) throws(SystemdError) {
        try check(add(match), "sd_journal_add_match \(match)")
    }

    private func add(_ match: String) -> Int32 {
        var bytes = Array(match.utf8)
        return bytes.withUnsafeMutableBytes { sd_journal_add_match(journal, $0.baseAddress, $0.count) }
    }

    private func check(_ r: Int32, _ operation: String) throws(SystemdError) {
        guard r < 0 else { return }
        throw SystemdError(.unavailable, "cannot read \(source) (\(operation): \(Bus.errnoText(r)))")
    }

    /// The current entry as one line.
    private func currentLine(realtime: UInt64?) -> String {
        let message = field("MESSAGE") ?? ""
        let identifier = field("SYSLOG_IDENTIFIER") ?? field("_COMM") ?? "?"
        let pid = field("_PID").map { "[\($0)]" } ?? ""
        let time = realtime.map(Self.utc) ?? "?"
        return "\(time) \(identifier)\(pid): \(Self.escaped(message))"
    }

    /// The current entry's value of `name` (sd-journal hands out `NAME=value`, not NUL-terminated).
    private func field(_ name: String) -> String? {
        var data: UnsafeRawPointer?
        var length = 0
        guard sd_journal_get_data(journal, name, &data, &length) >= 0, let data else { return nil }
        let bytes = UnsafeRawBufferPointer(start: data, count: length)
        let prefix = name.utf8.count + 1
        guard length >= prefix else { return nil }
        return String(decoding: bytes[prefix...], as: UTF8.self)
    }

    /// `2025-01-31T12:00:00Z` for microseconds since the epoch.
    static func utc(_ microseconds: UInt64) -> String {
        var seconds = time_t(microseconds / 1_000_000)
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return "?" }
        var buffer = [CChar](repeating: 0, count: 32)
        let n = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer[..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// A message made safe for one line of a terminal: trailing newlines dropped, others as `\n`, other control
    /// characters (escape sequences included) as `\xNN`.
    static func escaped(_ message: String) -> String {
        var scalars = message.unicodeScalars[...]
        while scalars.last == "\n" { scalars = scalars.dropLast() }
        var out = ""
        for scalar in scalars {
            switch scalar.value {
            case 0x0A: out += "\\n"
            case 0x09: out.unicodeScalars.append(scalar)
            case 0..<0x20, 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\x" + (hex.count == 1 ? "0" + hex : hex)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
