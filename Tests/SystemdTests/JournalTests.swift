import Foundation
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
        // The environment itself is never set here (see NotifierTests): the variable's value is passed.
        #expect(Journal.stderrIsJournal(journalStream: mine, descriptor: 2))
        #expect(!Journal.stderrIsJournal(journalStream: "\(status.st_dev):\(status.st_ino + 1)", descriptor: 2))
        #expect(!Journal.stderrIsJournal(journalStream: "garbage", descriptor: 2))
        #expect(!Journal.stderrIsJournal(journalStream: mine + ":1", descriptor: 2))
        #expect(!Journal.stderrIsJournal(journalStream: nil, descriptor: 2))
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
    /// entries with `UNIT=` to it, and stops it after `journalctl --sync`. Before entry `i` it
    /// writes the time (microseconds since the epoch) to `directory/mark<i>`.
    static func writeJournal(to directory: String, entries: [[String]]) async throws -> ChildProcess.Result {
        var script = PrivateJournald.prologue(directory) + "\n"
        for (index, fields) in entries.enumerated() {
            script += "printf '%s\\n' \(fields.map(Self.quoted).joined(separator: " ")) > \"$T/entry\(index)\"\n"
            // Synced first, so that the mark comes after journald received the entries before it.
            script += "journalctl --sync\n"
            script += "date +%s%6N > \"$T/mark\(index)\"\n"
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

    /// The time written to `directory/mark<index>` by `writeJournal`.
    static func mark(_ directory: String, _ index: Int) throws -> UInt64 {
        let text = try String(contentsOfFile: directory + "/mark\(index)", encoding: .utf8)
        return try #require(UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)))
    }

    @Test(
        "a failed run's lines: by invocation id, or by boot and time when there is none",
        .enabled(
            if: canRunJournald,
            "needs root, unshare, /lib/systemd/systemd-journald, journalctl and util-linux logger --journald"))
    func filters() async throws {
        let directory = try temporaryDirectory("nodeboot-journal")
        defer { removeTree(directory) }
        let old = String(repeating: "a", count: 32)
        let new = String(repeating: "b", count: 32)
        let entries = [
            ["MESSAGE=old run failed", "UNIT=demo.service", "INVOCATION_ID=\(old)", "SYSLOG_IDENTIFIER=systemd"],
            ["MESSAGE=not about the unit", "INVOCATION_ID=\(new)", "SYSLOG_IDENTIFIER=demo"],
            ["MESSAGE=new run failed", "UNIT=demo.service", "INVOCATION_ID=\(new)", "SYSLOG_IDENTIFIER=systemd"],
            ["MESSAGE=condition failed", "UNIT=demo.service", "SYSLOG_IDENTIFIER=systemd"],
        ]
        let result = try await Self.writeJournal(to: directory, entries: entries)
        try #require(result.status == 0, "journald in a namespace failed: \(result.stderr)")
        let reader = try JournalReader(directory: directory + "/journal")
        func messages(_ filter: JournalReader.Filter) throws -> [String] {
            try reader.lines(unit: "demo.service", count: 20, filter: filter).map {
                String($0.split(separator: ": ", maxSplits: 1).last ?? "")
            }
        }
        // Everything with the invocation id (systemd's INVOCATION_ID; the unit's own output has
        // _SYSTEMD_INVOCATION_ID, which only journald can set), whatever the unit.
        #expect(try messages(.init(invocation: new)) == ["not about the unit", "new run failed"])
        #expect(try messages(.init(invocation: old)) == ["old run failed"])
        let boot = try #require(SystemdServiceManager.bootID())
        #expect(
            try messages(.init(boot: boot)) == ["old run failed", "new run failed", "condition failed"])
        #expect(try messages(.init(boot: boot, since: Self.mark(directory, 2))) == ["new run failed", "condition failed"])
        #expect(try messages(.init(boot: boot, since: Self.mark(directory, 3))) == ["condition failed"])
        #expect(try messages(.init(boot: String(repeating: "0", count: 32))) == [])
        #expect(try reader.lines(unit: "demo.service", count: 1, filter: .init(boot: boot)).count == 1)
    }
}

/// Journal.send against a real journald: the host's systemd-journald in a private mount
/// namespace whose /run is a directory of the test, and a thread of this process whose own
/// mount namespace has that journald's socket at /run/systemd/journal/socket.
@Suite("journal: sending to a real journald")
struct JournalSendingTests {
    static var canRun: Bool { JournalReadingTests.canRunJournald }

    /// Runs journald with `directory/run` as its /run, calls `body` on a thread that sees its
    /// socket once it listens, then syncs and stops it; returns what `body` returned and the
    /// entries journald stored (`journalctl -o json`).
    static func withJournald(
        in directory: String, _ body: @escaping () -> [Bool]
    ) async throws -> ([Bool], [[String: Any]]) {
        let script =
            PrivateJournald.prologue(directory) + """
                touch "$T/ready"
                for i in $(seq 300); do [ -e "$T/sent" ] && break; sleep 0.1; done
                journalctl --sync
                kill -TERM $journald
                wait $journald || true

                """
        async let child = ChildProcess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script], timeout: 60)
        var sent: (any Error)?
        var value: [Bool] = []
        do {
            var ready = false
            for _ in 0..<100 {
                ready = access(directory + "/ready", F_OK) == 0
                if ready { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            try #require(ready, "journald did not create its socket within 10 s")
            value = try onThread(withJournalSocketIn: directory + "/run", body)
        } catch {
            sent = error
        }
        close(open(directory + "/sent", O_CREAT | O_WRONLY, 0o600))
        let result = try await child
        if let sent { throw sent }
        try #require(result.status == 0, "journald in a namespace failed: \(result.stderr)")
        let export = try await ChildProcess.run(
            ["journalctl", "--directory", directory + "/journal", "-o", "json", "--all", "--no-pager"], timeout: 30)
        try #require(export.status == 0, "journalctl failed: \(export.stderr)")
        let entries = try export.stdout.split(separator: "\n").map {
            try #require(JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        return (value, entries)
    }

    /// Runs `body` on a new thread whose own mount namespace has a tmpfs on /run and
    /// `run/systemd/journal` bound at /run/systemd/journal; the rest of the process is untouched.
    /// (`#expect` belongs in the test's task, not in `body`: it hands its results back.)
    static func onThread(withJournalSocketIn run: String, _ body: @escaping () -> [Bool]) throws -> [Bool] {
        let work = ThreadWork(run: run, body: body)
        var thread = pthread_t()
        let r = pthread_create(
            &thread, nil,
            { argument in
                guard let argument else { return nil }
                Unmanaged<ThreadWork>.fromOpaque(argument).takeUnretainedValue().run()
                return nil
            }, Unmanaged.passUnretained(work).toOpaque())
        guard r == 0 else { throw TestSupportError("pthread_create: \(String(cString: strerror(r)))") }
        pthread_join(thread, nil)
        if let error = work.error { throw error }
        return work.result
    }

    @Test(
        "a plain message goes through sd_journal_print, an entry with fields through sd_journal_sendv",
        .enabled(
            if: canRun, "needs root, unshare, /lib/systemd/systemd-journald and journalctl"))
    func sendsBothKinds() async throws {
        let directory = try temporaryDirectory("nodeboot-send")
        defer { removeTree(directory) }
        let token = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let long = "nodeboot long \(token)\n" + String(repeating: "x", count: 5000)
        let (sent, entries) = try await Self.withJournald(in: directory) {
            let sent = [
                Journal.send("nodeboot plain \(token)  ", priority: .notice),
                Journal.send(long, priority: .error),
                Journal.send(
                    "nodeboot structured \(token)", priority: .info,
                    fields: [(name: "NODEBOOT_PHASE", value: "test"), (name: "unit", value: "kubelet.service")]),
                Journal.send(" ", priority: .info),  // all whitespace: not dropped
            ]
            // Through the log handler: no metadata is a plain message, metadata makes fields.
            let logger = Logger(label: "test") { _ in JournalLogHandler(toJournal: true, toStandardError: false) }
            logger.info("nodeboot handler plain \(token)")
            logger.warning("nodeboot handler fields \(token)", metadata: ["phase": "run"])
            return sent
        }
        #expect(sent == [true, true, true, true])
        func entry(_ message: String) -> [String: Any]? {
            entries.first { $0["MESSAGE"] as? String == message }
        }
        let program = CommandLine.arguments.first?.split(separator: "/").last.map(String.init)

        let plain = try #require(entry("nodeboot plain \(token)"), "trailing whitespace is dropped")
        #expect(plain["PRIORITY"] as? String == "5")
        #expect(plain["SYSLOG_IDENTIFIER"] as? String == program)  // sd_journal_print: the program's name
        #expect(plain["CODE_FILE"] == nil)
        #expect(plain["_PID"] as? String == "\(getpid())")
        #expect(entry(long)?["PRIORITY"] as? String == "3", "a long plain message arrives whole")

        let structured = try #require(entry("nodeboot structured \(token)"))
        #expect(structured["PRIORITY"] as? String == "6")
        #expect(structured["SYSLOG_IDENTIFIER"] as? String == "nodeboot")
        #expect(structured["NODEBOOT_PHASE"] as? String == "test")
        #expect(structured["UNIT"] as? String == "kubelet.service")
        #expect(entry(" ")?["SYSLOG_IDENTIFIER"] as? String == "nodeboot")

        #expect(entry("nodeboot handler plain \(token)")?["SYSLOG_IDENTIFIER"] as? String == program)
        let fields = try #require(entry("nodeboot handler fields \(token)"))
        #expect(fields["SYSLOG_IDENTIFIER"] as? String == "nodeboot")
        #expect(fields["NODEBOOT_PHASE"] as? String == "run")
        #expect(fields["PRIORITY"] as? String == "4")
    }
}

/// What `JournalSendingTests.onThread` hands to its thread; read only after the thread was joined.
private final class ThreadWork: @unchecked Sendable {
    let runDirectory: String
    let body: () -> [Bool]
    var result: [Bool] = []
    var error: (any Error)?

    init(run: String, body: @escaping () -> [Bool]) {
        runDirectory = run
        self.body = body
    }

    func run() {
        do {
            try enterNamespace()
            result = body()
        } catch {
            self.error = error
        }
    }

    private func check(_ r: Int32, _ what: String) throws {
        guard r == 0 else { throw TestSupportError("\(what): \(String(cString: strerror(errno)))") }
    }

    /// A mount namespace of this thread's own, with the test journald's socket directory at
    /// /run/systemd/journal.
    private func enterNamespace() throws {
        // Glibc's module does not declare unshare(2) (it is _GNU_SOURCE).
        guard let symbol = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "unshare") else {
            throw TestSupportError("dlsym unshare: not found")
        }
        let unshare = unsafeBitCast(symbol, to: (@convention(c) (Int32) -> Int32).self)
        let cloneNewNS: Int32 = 0x0002_0000  // CLONE_NEWNS
        try check(unshare(cloneNewNS), "unshare(CLONE_NEWNS)")
        try check(mount("none", "/", nil, UInt(MS_REC) | UInt(MS_PRIVATE), nil), "mount --make-rprivate /")
        try check(mount("tmpfs", "/run", "tmpfs", 0, nil), "mount tmpfs /run")
        try check(mkdir("/run/systemd", 0o755), "mkdir /run/systemd")
        try check(mkdir("/run/systemd/journal", 0o755), "mkdir /run/systemd/journal")
        try check(
            mount(runDirectory + "/systemd/journal", "/run/systemd/journal", nil, UInt(MS_BIND), nil),
            "mount --bind \(runDirectory)/systemd/journal /run/systemd/journal")
    }
}

enum PrivateJournald {
    /// Shell lines that start a private journald (volatile storage under `directory`, its own
    /// /run, no forwarding, no rate limit) and wait for its socket; `$journald` is its pid.
    /// Run inside `unshare --mount`.
    static func prologue(_ directory: String) -> String {
        """
        set -e
        T='\(directory)'
        mkdir -p "$T/journal" "$T/run"
        printf '[Journal]\\nStorage=volatile\\nReadKMsg=no\\nForwardToSyslog=no\\nForwardToWall=no\\nForwardToConsole=no\\nForwardToKMsg=no\\nRateLimitBurst=0\\n' > "$T/journald.conf"
        mount --bind "$T/run" /run
        mkdir -p /run/systemd/journal /run/log/journal
        mount --bind "$T/journal" /run/log/journal
        mount --bind "$T/journald.conf" /etc/systemd/journald.conf
        /lib/systemd/systemd-journald &
        journald=$!
        for i in $(seq 50); do [ -S /run/systemd/journal/socket ] && break; sleep 0.1; done

        """
    }
}
