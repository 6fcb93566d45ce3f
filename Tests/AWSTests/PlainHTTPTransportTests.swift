import AWS
import Foundation
import TestSupport
import Testing

/// The plain-HTTP transport (IMDS, local endpoints) against a raw HTTP/1.1 server whose
/// answers each test chooses by path; the server logs `connection N METHOD PATH` per request.
@Suite("Plain HTTP transport", .enabled(if: ChildProcess.exists("python3"), "python3 is not installed"))
struct PlainHTTPTransportTests {
    static let script = #"""
        import socket, sys, threading, time
        family = socket.AF_INET6 if IPV6 else socket.AF_INET
        server = socket.socket(family); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(('::1' if family == socket.AF_INET6 else '127.0.0.1', 0)); server.listen(16)
        print(server.getsockname()[1], flush=True)
        counter = [0]
        def handle(conn, number):
            buffer = b''
            while True:
                while b'\r\n\r\n' not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk: conn.close(); return
                    buffer += chunk
                head, buffer = buffer.split(b'\r\n\r\n', 1)
                lines = head.decode().split('\r\n')
                method, path, _ = lines[0].split(' ')
                headers = {l.split(':', 1)[0].lower(): l.split(':', 1)[1].strip() for l in lines[1:]}
                length = int(headers.get('content-length', '0'))
                while len(buffer) < length: buffer += conn.recv(65536)
                body, buffer = buffer[:length], buffer[length:]
                print(f'connection {number} {method} {path} host={headers.get("host")} body={body.decode()}', flush=True)
                if path == '/chunked':
                    conn.sendall(b'HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n7;x=y\r\n, world\r\n0\r\n\r\n')
                elif path == '/until-close':
                    conn.sendall(b'HTTP/1.1 200 OK\r\n\r\nall of it'); conn.close(); return
                elif path == '/silent':
                    time.sleep(5); conn.close(); return
                elif path == '/big':
                    conn.sendall(b'HTTP/1.1 200 OK\r\ncontent-length: 5000000\r\n\r\n'); conn.close(); return
                elif path == '/then-close':
                    conn.sendall(b'HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok'); time.sleep(0.05); conn.close(); return
                else:
                    answer = f'{method} {path}'.encode()
                    conn.sendall(b'HTTP/1.1 201 Created\r\nx-echo: yes\r\ncontent-length: %d\r\n\r\n' % len(answer) + answer)
        while True:
            conn, _ = server.accept()
            counter[0] += 1
            threading.Thread(target=handle, args=(conn, counter[0]), daemon=True).start()
        """#

    static func withServer(
        ipv6: Bool = false, _ body: (PlainHTTPTransport, String, LineReader) async throws -> Void
    ) async throws {
        let (process, lines, port) = try await PythonServer.start("IPV6 = \(ipv6 ? "True" : "False")\n" + script)
        defer { kill(process.processIdentifier, SIGKILL) }
        let transport = PlainHTTPTransport(connectTimeout: .seconds(2))
        try await body(transport, ipv6 ? "http://[::1]:\(port)" : "http://127.0.0.1:\(port)", lines)
        await transport.shutdown()
    }

    static func get(_ transport: PlainHTTPTransport, _ url: String, timeout: Duration = .seconds(5)) async throws
        -> HTTPResponse
    {
        try await transport.send(HTTPRequest(method: "GET", url: try #require(URL(string: url))), timeout: timeout)
    }

    @Test("answers with status, headers and body; sequential requests share one kept-alive connection")
    func keepAlive() async throws {
        try await Self.withServer { transport, base, lines in
            let first = try await Self.get(transport, base + "/latest/meta-data/mac?x=%2F")
            #expect(first.status == 201)
            #expect(first.header("X-Echo") == "yes")
            #expect(first.text == "GET /latest/meta-data/mac?x=%2F")
            let put = try await transport.send(
                HTTPRequest(
                    method: "PUT", url: try #require(URL(string: base + "/latest/api/token")),
                    headers: [("X-aws-ec2-metadata-token-ttl-seconds", "21600")], body: Array("data".utf8)),
                timeout: .seconds(5))
            #expect(put.text == "PUT /latest/api/token")
            let port = base.split(separator: ":").last.map(String.init) ?? ""
            let logged = [try await lines.next(timeout: 5), try await lines.next(timeout: 5)]
            #expect(
                logged == [
                    "connection 1 GET /latest/meta-data/mac?x=%2F host=127.0.0.1:\(port) body=",
                    "connection 1 PUT /latest/api/token host=127.0.0.1:\(port) body=data",
                ])
        }
    }

    @Test("concurrent requests are all answered, each with its own body")
    func concurrent() async throws {
        try await Self.withServer { transport, base, _ in
            let texts = try await withThrowingTaskGroup(of: String.self) { group in
                for index in 0..<8 {
                    group.addTask { try await Self.get(transport, base + "/\(index)").text }
                }
                return try await group.reduce(into: Set<String>()) { $0.insert($1) }
            }
            #expect(texts == Set((0..<8).map { "GET /\($0)" }))
        }
    }

    @Test("a chunked body is decoded, a body until close is read whole")
    func framing() async throws {
        try await Self.withServer { transport, base, _ in
            let chunked = try await Self.get(transport, base + "/chunked")
            #expect(chunked.text == "hello, world")
            let untilClose = try await Self.get(transport, base + "/until-close")
            #expect(untilClose.text == "all of it")
            let after = try await Self.get(transport, base + "/after")
            #expect(after.text == "GET /after")
        }
    }

    @Test("a kept-alive connection the server closed meanwhile is replaced, not reported")
    func staleConnection() async throws {
        try await Self.withServer { transport, base, lines in
            let closing = try await Self.get(transport, base + "/then-close")
            #expect(closing.text == "ok")
            try await Task.sleep(for: .milliseconds(200))
            let next = try await Self.get(transport, base + "/next")
            #expect(next.text == "GET /next")
            _ = try await lines.next(timeout: 5)
            let line = try await lines.next(timeout: 5)
            #expect(line.hasPrefix("connection 2 GET /next"))
        }
    }

    @Test("no answer in time is a timeout; a refused port and an oversized body are told apart")
    func failures() async throws {
        try await Self.withServer { transport, base, _ in
            let started = ContinuousClock.now
            let silent = await #expect(throws: TransportError.self) {
                try await Self.get(transport, base + "/silent", timeout: .milliseconds(300))
            }
            #expect(silent?.kind == .timeout)
            #expect(ContinuousClock.now - started < .seconds(3))
            let big = await #expect(throws: TransportError.self) { try await Self.get(transport, base + "/big") }
            #expect(big?.kind == .responseTooLarge)
            let port = try freeLoopbackPort()
            let refused = await #expect(throws: TransportError.self) {
                try await Self.get(transport, "http://127.0.0.1:\(port)/")
            }
            #expect(refused?.kind == .refused)
            #expect(refused?.description.contains("Connection refused") == true)
            let https = await #expect(throws: TransportError.self) { try await Self.get(transport, "https://127.0.0.1/") }
            #expect(https?.description.contains("only http://") == true)
        }
    }

    @Test(
        "an IPv6 literal host (IMDS's fd00:ec2::254 form)",
        .enabled(if: FileManager.default.fileExists(atPath: "/proc/net/if_inet6"), "no IPv6 on this machine"))
    func ipv6() async throws {
        try await Self.withServer(ipv6: true) { transport, base, lines in
            let answer6 = try await Self.get(transport, base + "/v6")
            #expect(answer6.text == "GET /v6")
            let line = try await lines.next(timeout: 5)
            #expect(line.contains("host=[::1]:"))
        }
    }
}
