import Support
import Testing

@Suite("hex, SHA-256 and durations as text")
struct TextHelperTests {
    @Test("bytes are two lowercase hex digits each")
    func hex() {
        #expect(Hex.encode([0x00, 0x0f, 0xa0, 0xff]) == "000fa0ff")
        #expect(Hex.encode([UInt8]()) == "")
    }

    @Test("SHA-256 digests match the FIPS 180-2 examples")
    func sha256() {
        #expect(Hex.sha256(Array("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(Hex.sha256([UInt8]()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    }

    @Test("durations: tenths for timelines, whole seconds for limits")
    func durations() {
        #expect(Duration.milliseconds(1234).tenthsOfSeconds == "1.2")
        #expect(Duration.milliseconds(1250).milliseconds == 1250)
        #expect(Duration.seconds(90).secondsText == "90 s")
        #expect(Duration.milliseconds(2500).secondsText == "2.5 s")
        #expect(Duration.milliseconds(1500).nanoseconds == 1_500_000_000)
        #expect(0.05.oneDecimal == "0.1")
    }
}

@Suite("external commands")
struct ExternalCommandTests {
    @Test("stdout and stderr are kept apart, with the exit status")
    func streams() async throws {
        let output = try await ExternalCommand.run(
            "/bin/sh", ["-c", "echo out; echo err >&2; exit 3"], environment: [:], timeout: .seconds(10))
        #expect(String(decoding: output.stdout, as: UTF8.self) == "out\n")
        #expect(String(decoding: output.stderr, as: UTF8.self) == "err\n")
        #expect(output.status == 3)
        #expect(!output.timedOut)
    }

    @Test("the environment is exactly the one given")
    func environment() async throws {
        let output = try await ExternalCommand.run(
            "/bin/sh", ["-c", "echo \"$ONLY\" \"${HOME:-none}\""], environment: ["ONLY": "this"], timeout: .seconds(10))
        #expect(String(decoding: output.stdout, as: UTF8.self) == "this none\n")
    }

    @Test("a command past its time limit is killed, with its whole process group")
    func timeout() async throws {
        let start = ContinuousClock.now
        let output = try await ExternalCommand.run(
            "/bin/sh", ["-c", "sleep 30 & sleep 30"], environment: [:], timeout: .milliseconds(300))
        #expect(output.timedOut)
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test("stdin: /dev/null by default; input larger than a socket buffer arrives whole and then ends")
    func input() async throws {
        let empty = try await ExternalCommand.run("/bin/sh", ["-c", "wc -c"], environment: [:], timeout: .seconds(10))
        #expect(String(decoding: empty.stdout, as: UTF8.self).split(separator: " ").last == "0\n")
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 3 << 20)
        let counted = try await ExternalCommand.run(
            "/bin/sh", ["-c", "wc -c"], environment: [:], input: big, timeout: .seconds(30))
        #expect(String(decoding: counted.stdout, as: UTF8.self).split(separator: " ").last == "\(big.count)\n")
        #expect(!counted.timedOut)
    }

    @Test("a child that exits without reading its input: no SIGPIPE here, its status comes back")
    func unreadInput() async throws {
        let output = try await ExternalCommand.run(
            "/bin/sh", ["-c", "exit 4"], environment: [:], input: [UInt8](repeating: 0, count: 4 << 20),
            timeout: .seconds(30))
        #expect(output.status == 4)
        #expect(!output.timedOut)
    }

    @Test("each stream keeps at most outputLimit bytes")
    func outputLimit() async throws {
        let output = try await ExternalCommand.run(
            "/bin/sh", ["-c", "head -c 100000 /dev/zero"], environment: [:], outputLimit: 50000, timeout: .seconds(10))
        #expect(output.stdout.count >= 50000 && output.stdout.count < 100000)
    }

    @Test("a program that does not exist is an error naming it")
    func missing() async {
        await #expect(throws: ExternalCommand.Failure.self) {
            _ = try await ExternalCommand.run("/nonexistent/program", [], environment: [:], timeout: .seconds(1))
        }
    }
}
