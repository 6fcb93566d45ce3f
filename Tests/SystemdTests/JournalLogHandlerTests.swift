import Glibc
import Logging
import TestSupport
import Testing

@testable import Systemd

@Suite("journal log handler", .serialized)
struct JournalLogHandlerTests {
    @Test(
        "levels map to syslog priorities",
        arguments: [
            (Logger.Level.trace, Journal.Priority.debug), (.debug, .debug), (.info, .info), (.notice, .notice),
            (.warning, .warning), (.error, .error), (.critical, .critical),
        ])
    func priorities(level: Logger.Level, priority: Journal.Priority) {
        #expect(JournalLogHandler.priority(level) == priority)
        #expect(Journal.Priority.info.rawValue == 6 && Journal.Priority.error.rawValue == 3)
    }

    @Test(
        "metadata keys become journal fields",
        arguments: [
            ("phase", "NODEBOOT_PHASE"), ("duration", "NODEBOOT_DURATION_MS"), ("file", "NODEBOOT_FILE"),
            ("unit", "NODEBOOT_UNIT"), ("instance-id", "INSTANCE_ID"), ("message", "NODEBOOT_MESSAGE"),
        ])
    func fieldNames(key: String, field: String) {
        #expect(JournalLogHandler.fieldName(key) == field)
    }

    @Test("the stderr line is `nodeboot: <message>` and the metadata, sorted, quoted where needed")
    func stderrLine() {
        #expect(JournalLogHandler.line("daemon-reload", fields: []) == "nodeboot: daemon-reload\n")
        #expect(
            JournalLogHandler.line(
                "kubelet.service active after 812.0 ms",
                fields: [(key: "duration", value: "812.0"), (key: "unit", value: "kubelet.service")])
                == "nodeboot: kubelet.service active after 812.0 ms duration=812.0 unit=kubelet.service\n")
        #expect(
            JournalLogHandler.line("x", fields: [(key: "note", value: "say \"hi\"\nnow"), (key: "empty", value: "")])
                == "nodeboot: x note=\"say \\\"hi\\\"\\nnow\" empty=\"\"\n")
    }

    @Test("metadata values of every kind render as text")
    func metadataText() {
        #expect(JournalLogHandler.text(.string("a")) == "a")
        #expect(JournalLogHandler.text(.stringConvertible(42)) == "42")
        #expect(JournalLogHandler.text(.array([.string("a"), .string("b")])) == "[a, b]")
        #expect(JournalLogHandler.text(.dictionary(["b": .string("2"), "a": .string("1")])) == "[a: 1, b: 2]")
    }

    @Test("handler metadata, provider metadata and message metadata merge, the message's winning")
    func handlerIsAValue() {
        var handler = JournalLogHandler(toJournal: false, toStandardError: false)
        handler[metadataKey: "phase"] = "config"
        var copy = handler
        copy[metadataKey: "phase"] = "run"
        copy.logLevel = .debug
        #expect(handler[metadataKey: "phase"] == "config")
        #expect(handler.logLevel == .info)
        // Neither destination: logging must still be harmless.
        let logger = Logger(label: "test", factory: { _ in copy })
        logger.debug("nothing is written")
    }

    /// What `body` writes to file descriptor 2 (only the `nodeboot: ` lines: the test runner
    /// may write to stderr meanwhile).
    static func standardErrorLines(_ body: () -> Void) throws -> [String] {
        let directory = try temporaryDirectory("nodeboot-log")
        defer { removeTree(directory) }
        let path = directory + "/stderr"
        let file = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0o600)
        try #require(file >= 0)
        let saved = dup(2)
        try #require(saved >= 0)
        dup2(file, 2)
        close(file)
        body()
        dup2(saved, 2)
        close(saved)

        var bytes: [UInt8] = []
        let input = open(path, O_RDONLY)
        try #require(input >= 0)
        defer { close(input) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(input, &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[..<n]
        }
        return String(decoding: bytes, as: UTF8.self).split(separator: "\n").filter { $0.hasPrefix("nodeboot: ") }.map(
            String.init)
    }

    @Test("a logger writes `nodeboot: <message> key=value` lines to stderr, and nothing else")
    func writesStandardError() throws {
        let lines = try Self.standardErrorLines {
            var logger = Logger(label: "test") { _ in JournalLogHandler(toJournal: false, toStandardError: true) }
            logger[metadataKey: "phase"] = "run"
            logger.info(
                "containerd.service active after 41.0 ms", metadata: ["unit": "containerd.service", "duration": "41.0"])
            logger.debug("below the level")
            logger.error("daemon-reload failed")
        }
        #expect(
            lines == [
                "nodeboot: containerd.service active after 41.0 ms duration=41.0 phase=run unit=containerd.service",
                "nodeboot: daemon-reload failed phase=run",
            ])
    }

    @Test("the process's handler shows notice and above on the terminal, not info")
    func handlerTerminalLevel() throws {
        let lines = try Self.standardErrorLines {
            let logger = Logger(label: "nodeboot") { _ in
                JournalLogHandler.handler(terminalLevel: .notice, journal: false, stderrIsJournal: false)
            }
            logger.info("kubelet.service active after 812.0 ms")
            logger.notice("restart kubelet.service: configuration changed")
            logger.error("kubelet.service failed")
        }
        #expect(lines == ["nodeboot: restart kubelet.service: configuration changed", "nodeboot: kubelet.service failed"])
        let handler = JournalLogHandler.handler(terminalLevel: .notice, journal: true, stderrIsJournal: false)
        #expect(handler.logLevel == .info)  // the journal part takes info
    }

    @Test("the process's handler writes nothing to stderr when stderr is the journal")
    func handlerStderrIsJournal() throws {
        let lines = try Self.standardErrorLines {
            let logger = Logger(label: "nodeboot") { _ in
                JournalLogHandler.handler(terminalLevel: .notice, journal: false, stderrIsJournal: true)
            }
            logger.notice("restart kubelet.service: configuration changed")
        }
        #expect(lines == [])
    }

    @Test("the public factory on this host: the terminal part drops info and keeps notice")
    func publicHandler() throws {
        try #require(!Journal.stderrIsJournal, "stderr of this test process is the journal")
        let lines = try Self.standardErrorLines {
            let logger = Logger(label: "nodeboot") { _ in JournalLogHandler.handler() }
            logger.info("an info line")
            logger.notice("a notice line")
        }
        #expect(lines == ["nodeboot: a notice line"])
    }
}
