public import Foundation

/// A real CONNECT-only HTTP proxy (Python) for the proxy tests: its first line is its port, every
/// later line a tunnel's CONNECT line.
public enum ConnectProxy {
    /// A CONNECT-only proxy in Python that logs each tunnel target.
    static let script = """
        import socket, sys, threading
        server = socket.socket(); server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(('127.0.0.1', 0)); server.listen(16)
        print(server.getsockname()[1], flush=True)
        def pipe(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data: break
                    b.sendall(data)
            except OSError: pass
            finally:
                for s in (a, b):
                    try: s.shutdown(socket.SHUT_RDWR)
                    except OSError: pass
        def handle(client):
            head = b''
            while b'\\r\\n\\r\\n' not in head:
                chunk = client.recv(4096)
                if not chunk: return
                head += chunk
            line = head.split(b'\\r\\n')[0].decode()
            print(line, flush=True)
            method, target, _ = line.split(' ')
            if method != 'CONNECT':
                client.sendall(b'HTTP/1.1 405 Method Not Allowed\\r\\ncontent-length: 0\\r\\n\\r\\n'); client.close(); return
            host, port = target.rsplit(':', 1)
            upstream = socket.create_connection((host, int(port)))
            client.sendall(b'HTTP/1.1 200 Connection established\\r\\n\\r\\n')
            threading.Thread(target=pipe, args=(client, upstream), daemon=True).start()
            pipe(upstream, client)
        while True:
            conn, _ = server.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
        """

    /// Starts the proxy; its first line is its port, every later line a tunnel's CONNECT line.
    public static func start() async throws -> (process: Process, lines: LineReader, port: Int) {
        try await PythonServer.start(script)
    }
}

/// A small server written in Python for one test: it prints its port as its first line, then
/// whatever it logs, one line per event.
public enum PythonServer {
    /// Starts `script`. The caller kills `process` with SIGKILL (test children may inherit SIGTERM
    /// ignored; no waitUntilExit: it spins a run loop on a cooperative thread; Foundation reaps the child).
    public static func start(_ script: String) async throws -> (process: Process, lines: LineReader, port: Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-u", "-c", script]
        let output = Pipe()
        process.standardOutput = output
        // Not the runner's stderr: a child still holding it would keep `swift test` waiting.
        process.standardError = FileHandle.nullDevice
        try process.run()
        let lines = LineReader(output.fileHandleForReading)
        guard let port = Int(try await lines.next(timeout: 10)) else {
            kill(process.processIdentifier, SIGKILL)
            throw TestSupportError("the server printed no port")
        }
        return (process, lines, port)
    }
}
