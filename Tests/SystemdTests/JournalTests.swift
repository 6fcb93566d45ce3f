import Glibc
import Logging
import TestSupport
import Testing

@testable import Systemd

@Suite("journal: writing and JOURNAL_STREAM", .serialized)
struct JournalWritingTests {
    @Test("an entry is MESSAGE, PRIORITY, SYSLOG_IDENTIFIER=nodeboot, then the caller's fields")
    func entry() {
        let items = Journal.entry(
            "kubelet.service active after 812.0 ms", priority: .info,
            fields: [(name: "NODEBOOT_UNIT", value: "kubelet.service"), (name: "note", value: "two\nlines")])
        #expect(
            items == [
                "MESSAGE=kubelet.service active after 812.0 ms", "PRIORITY=6", "SYSLOG_IDENTIFIER=nodeboot",
                "NODEBOOT_UNIT=kubelet.service", "NOTE=two\nlines",
            ])
    }

    @Test(
        "field names are made valid for journald",
        arguments: [
            ("phase", "PHASE"), ("instance-id", "INSTANCE_ID"), ("NODEBOOT_FILE", "NODEBOOT_FILE"),
            ("k8s.version", "K8S_VERSION"), ("_PID", "NODEBOOT__PID"), ("9lives", "NODEBOOT_9LIVES"),
            ("message", "NODEBOOT_MESSAGE"), ("PRIORITY", "NODEBOOT_PRIORITY"), ("", "NODEBOOT_"),
            ("ünïcode", "NODEBOOT__N_CODE"), (String(repeating: "A", count: 80), String(repeating: "A", count: 64)),
        ])
    func fieldNames(key: String, expected: String) {
        #expect(Journal.fieldName(key) == expected)
    }

    @Test(
        "without a journald, sending returns false at once and does not crash",
        .enabled(if: !Journal.isAvailable, "this host has a journald: entries would really be written"))
    func sendWithoutJournald() {
        #expect(!Journal.send("nodeboot test entry", priority: .info, fields: [(name: "NODEBOOT_PHASE", value: "test")]))
        let handler = JournalLogHandler(toJournal: true, toStandardError: false)
        var logger = Logger(label: "test", factory: { _ in handler })
        logger[metadataKey: "phase"] = "test"
        logger.info("nodeboot test entry", metadata: ["duration": "1.0"])
    }

    @Test(
        "with a journald, an entry is sent and read back as one of the unit's lines",
        .enabled(if: Journal.isAvailable, "no journald on this host (not booted with systemd)"))
    func sendAndReadBack() throws {
        let unit = "nodeboot-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).service"
        #expect(Journal.send("nodeboot journal round trip", priority: .notice, fields: [(name: "UNIT", value: unit)]))
        // journald stores entries asynchronously: poll for up to 5 s.
        var lines: [String] = []
        for _ in 0..<50 {
            lines = try JournalReader().lines(unit: unit, count: 5)
            if !lines.isEmpty { break }
            usleep(100_000)
        }
        #expect(lines.count == 1)
        #expect(lines.first?.hasSuffix(" nodeboot[\(getpid())]: nodeboot journal round trip") == true)
    }

    @Test("JOURNAL_STREAM naming stderr's device and inode means stderr is the journal")
    func journalStream() throws {
        var status = stat()
        try #require(fstat(2, &status) == 0)
        let mine = "\(status.st_dev):\(status.st_ino)"
        withEnvironment("JOURNAL_STREAM", mine) { #expect(Journal.stderrIsJournal) }
        withEnvironment("JOURNAL_STREAM", "\(status.st_dev):\(status.st_ino + 1)") { #expect(!Journal.stderrIsJournal) }
        withEnvironment("JOURNAL_STREAM", "garbage") { #expect(!Journal.stderrIsJournal) }
        withEnvironment("JOURNAL_STREAM", mine + ":1") { #expect(!Journal.stderrIsJournal) }
        withEnvironment("JOURNAL_STREAM", nil) { #expect(!Journal.stderrIsJournal) }
        #expect(!Journal.stderrIsJournal(journalStream: mine, descriptor: -1))
    }
}

@Suite("journal: reading")
struct JournalReadingTests {
    @Test("lines are escaped for one terminal line; times are UTC")
    func formatting() {
        #expect(JournalReader.escaped("E1125 error\u{1B}[31m red\r\n") == "E1125 error\\x1b[31m red\\x0d")
        #expect(JournalReader.escaped("panic: boom\ngoroutine 1\n\n") == "panic: boom\\ngoroutine 1")
        #expect(JournalReader.escaped("tab\there") == "tab\there")
        #expect(JournalReader.utc(1_700_000_000_123_456) == "2023-11-14T22:13:20Z")
    }

    @Test("a directory without journal files has no lines")
    func emptyDirectory() throws {
        let directory = try temporaryDirectory("nodeboot-journal")
        defer { removeTree(directory) }
        let reader = try JournalReader(directory: directory)
        #expect(try reader.lines(unit: "kubelet.service", count: 20) == [])
    }

    /// Runs the host's systemd-journald in a private mount namespace (its own /run, volatile
    /// storage in `directory`, no kernel messages), has util-linux `logger --journald` send
    /// entries with `UNIT=` to it, and stops it after `journalctl --sync`.
    static func writeJournal(to directory: String, entries: [[String]]) async throws -> ChildProcess.Result {
        var script = """
            set -e
            T='\(directory)'
            mkdir -p "$T/journal"
            printf '[Journal]\\nStorage=volatile\\nReadKMsg=no\\nForwardToSyslog=no\\nForwardToWall=no\\nForwardToConsole=no\\nForwardToKMsg=no\\n' > "$T/journald.conf"
            mount -t tmpfs tmpfs /run
            mkdir -p /run/systemd/journal /run/log/journal
            mount --bind "$T/journal" /run/log/journal
            mount --bind "$T/journald.conf" /etc/systemd/journald.conf
            /lib/systemd/systemd-journald &
            journald=$!
            for i in $(seq 50); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done

            """
        for (index, fields) in entries.enumerated() {
            script += "printf '%s\\n' \(fields.map(Self.quoted).joined(separator: " ")) > \"$T/entry\(index)\"\n"
            script += "logger --journald=\"$T/entry\(index)\"\n"
        }
        script += """
            journalctl --sync
            kill -TERM $journald
            wait $journald || true

            """
        return try await ChildProcess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script], timeout: 60)
    }

    /// `text` as one single-quoted shell word.
    static func quoted(_ text: String) -> String {
        "'" + text.split(separator: "'", omittingEmptySubsequences: false).joined(separator: "'\\''") + "'"
    }

    static var canRunJournald: Bool {
        getuid() == 0 && access("/lib/systemd/systemd-journald", X_OK) == 0 && ChildProcess.exists("unshare")
            && ChildProcess.exists("journalctl") && system("logger --help 2>/dev/null | grep -q -- --journald") == 0
    }

    @Test(
        "reads a unit's last lines (UNIT= entries) from files a real journald wrote, oldest first",
        .enabled(
            if: canRunJournald,
            "needs root, unshare, /lib/systemd/systemd-journald, journalctl and util-linux logger --journald"))
    func readsRealJournal() async throws {
        let directory = try temporaryDirectory("nodeboot-journal")
        defer { removeTree(directory) }
        var entries: [[String]] = []
        for number in 1...25 {
            entries.append(["MESSAGE=demo line \(number)", "UNIT=demo.service", "SYSLOG_IDENTIFIER=demo"])
            if number % 5 == 0 {
                entries.append(["MESSAGE=other line \(number)", "UNIT=other.service", "SYSLOG_IDENTIFIER=other"])
            }
        }
        entries.append(["MESSAGE=demo \u{1B}[31mred", "UNIT=demo.service", "SYSLOG_IDENTIFIER=demo"])
        let result = try await Self.writeJournal(to: directory, entries: entries)
        try #require(result.status == 0, "journald in a namespace failed: \(result.stderr)")

        let reader = try JournalReader(directory: directory + "/journal")
        let lines = try reader.lines(unit: "demo.service", count: 20)
        #expect(lines.count == 20)
        #expect(lines.first?.hasSuffix(": demo line 7") == true)
        #expect(lines.dropLast().last?.hasSuffix(": demo line 25") == true)
        #expect(lines.last?.hasSuffix(": demo \\x1b[31mred") == true)
        #expect(!lines.contains { $0.contains("other line") })
        // `<UTC time> <identifier>[<pid>]: <message>`
        let last = try #require(lines.last)
        #expect(last.prefixMatch(of: #/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ demo\[\d+\]: /#) != nil)

        #expect(
            try reader.lines(unit: "other.service", count: 2).map { $0.split(separator: ":").last ?? "" } == [
                " other line 20", " other line 25",
            ])
        #expect(try reader.lines(unit: "absent.service", count: 20) == [])
        #expect(try reader.lines(unit: "demo.service", count: 0) == [])
    }
}
