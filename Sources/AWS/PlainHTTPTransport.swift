import Dispatch
import FoundationEssentials
import Support
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// `HTTPTransport` over a socket of its own: no event loop, no threads of its own. Plain `http://` URLs — the
/// instance metadata service and a loopback endpoint — and, when built with a `TLSContext`, `https://` URLs
/// (the Kubernetes API server: `TLSSession`). Measured (issue 11): two IMDS requests through AsyncHTTPClient cost
/// 3–4 ms of a 10 ms `config check` (event loop group, threads, channel pipeline); over this transport the same
/// requests are a few hundred microseconds. AWS's HTTPS endpoints and proxies stay with `AsyncHTTPTransport`.
///
/// Each exchange runs on a Dispatch thread of its own (the socket calls block, bounded by `poll`
/// and the request's timeout), so neither the cooperative pool nor another exchange waits on it. Connections are kept alive
/// and reused per host and port; a reused connection the server has closed meanwhile is
/// replaced once, before any byte of the answer arrived.
public final class PlainHTTPTransport: HTTPTransport {
    static let maxResponseBytes = 4 << 20
    let connectTimeout: Duration
    /// For `https://` URLs; without it only `http://` is sent.
    let tls: TLSContext?
    private let idle = Mutex<[String: [Connection]]>([:])

    public init(connectTimeout: Duration, tls: TLSContext? = nil) {
        self.connectTimeout = connectTimeout
        self.tls = tls
    }

    deinit {
        for connections in idle.withLock({ $0.values }) {
            for connection in connections { connection.close() }
        }
    }

    /// Closes the idle connections.
    public func shutdown() async {
        let connections = idle.withLock { idle in
            defer { idle = [:] }
            return idle.values.flatMap { $0 }
        }
        for connection in connections { connection.close() }
    }

    public func send(_ request: HTTPRequest, timeout: Duration) async throws -> HTTPResponse {
        try Task.checkCancellation()
        let deadline = ContinuousClock.now + timeout
        return try await withCheckedThrowingContinuation { continuation in
            // A queue of its own: serial queues overcommit, so an exchange waiting on a silent
            // server never holds up another (the global queue has one thread per core).
            DispatchQueue(label: "nodeboot.plain-http").async {
                continuation.resume(with: Result { try self.exchange(request, deadline: deadline) })
            }
        }
    }

    // MARK: - One exchange

    struct Target {
        var secure: Bool
        var host: String
        var port: UInt16
        /// Path and query as they appear in the URL (already percent-encoded; what SigV4 signed).
        var requestTarget: String
        var hostHeader: String
        var key: String { "\(secure ? "https" : "http")://\(host):\(port)" }
        var address: String { "\(host):\(port)" }
    }

    static func target(of url: URL, secure allowed: Bool = false) -> Target? {
        let secure = url.scheme == "https"
        guard url.scheme == "http" || (secure && allowed), let host = url.host(percentEncoded: false), !host.isEmpty
        else { return nil }
        let port = url.port ?? (secure ? 443 : 80)
        guard let port16 = UInt16(exactly: port) else { return nil }
        let text = url.absoluteString
        let prefix = secure ? "https://" : "http://"
        guard text.hasPrefix(prefix) else { return nil }
        let rest = text.dropFirst(prefix.count)
        var target = rest.firstIndex(where: { $0 == "/" || $0 == "?" }).map { String(rest[$0...]) } ?? "/"
        if let fragment = target.firstIndex(of: "#") { target = String(target[..<fragment]) }
        if target.hasPrefix("?") { target = "/" + target }
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return Target(
            secure: secure, host: host, port: port16, requestTarget: target,
            hostHeader: url.port == nil ? bracketed : "\(bracketed):\(port)")
    }

    func exchange(_ request: HTTPRequest, deadline: ContinuousClock.Instant) throws -> HTTPResponse {
        let url = request.url.absoluteString
        guard let target = Self.target(of: request.url, secure: tls != nil) else {
            throw TransportError(
                .connection, url: url,
                detail: tls == nil ? "only http:// URLs are sent without TLS" : "only http:// and https:// URLs are sent")
        }
        let head = Self.head(request, target: target)
        if let idle = takeIdle(target.key) {
            do {
                return try exchange(on: idle, reused: true, head: head, request: request, target: target, deadline: deadline)
            } catch is StaleConnection {
                // The server closed it while it was idle: one fresh connection.
            }
        }
        let descriptor = try Self.connect(target, url: url, deadline: min(deadline, ContinuousClock.now + connectTimeout))
        let connection: Connection
        if target.secure, let tls {
            do {
                connection = Connection(
                    descriptor: descriptor,
                    tls: try TLSSession(descriptor: descriptor, host: target.host, context: tls, url: url, deadline: deadline))
            } catch {
                Glibc.close(descriptor)
                throw error
            }
        } else {
            connection = Connection(descriptor: descriptor, tls: nil)
        }
        return try exchange(on: connection, reused: false, head: head, request: request, target: target, deadline: deadline)
    }

    /// A reused connection failed before any byte of the answer: it was closed while idle.
    struct StaleConnection: Error {}

    private func exchange(
        on connection: Connection, reused: Bool, head: [UInt8], request: HTTPRequest, target: Target,
        deadline: ContinuousClock.Instant
    ) throws -> HTTPResponse {
        let url = request.url.absoluteString
        var keep = false
        defer { if keep { putIdle(target.key, connection) } else { connection.close() } }
        var reader = Reader(connection: connection, url: url, deadline: deadline)
        do {
            try reader.write(head + request.body)
        } catch let error as TransportError where reused && error.kind == .connection {
            throw StaleConnection()
        }
        guard let parsed = try reader.readHead() else {
            if reused { throw StaleConnection() }
            throw TransportError(.connection, url: url, detail: "the server closed the connection without answering")
        }
        let noBody = request.method == "HEAD" || parsed.status == 204 || parsed.status == 304 || parsed.status < 200
        let body: [UInt8]
        let framed: Bool
        do {
            (body, framed) = try noBody ? ([], true) : reader.readBody(parsed)
        } catch var error as TransportError where error.kind == .timeout {
            error.detail = "the answer's body did not arrive in time (the server sent the head, then stalled)"
            throw error
        }
        let closes = parsed.header("connection")?.lowercased().contains("close") == true || !parsed.http11
        keep = framed && !closes && reader.buffered.isEmpty
        return HTTPResponse(status: parsed.status, headers: parsed.headers, body: body)
    }

    static func head(_ request: HTTPRequest, target: Target) -> [UInt8] {
        var text = "\(request.method) \(target.requestTarget) HTTP/1.1\r\n"
        if !request.headers.contains(where: { $0.name.lowercased() == "host" }) {
            text += "Host: \(target.hostHeader)\r\n"
        }
        for header in request.headers where header.name.lowercased() != "content-length" {
            text += "\(header.name): \(header.value)\r\n"
        }
        if !request.body.isEmpty || ["POST", "PUT", "PATCH"].contains(request.method) {
            text += "Content-Length: \(request.body.count)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8)
    }

    private func takeIdle(_ key: String) -> Connection? {
        idle.withLock { $0[key]?.popLast() }
    }

    private func putIdle(_ key: String, _ connection: Connection) {
        idle.withLock { $0[key, default: []].append(connection) }
    }

    /// One connection: a socket, with TLS over it for `https://`.
    final class Connection: @unchecked Sendable {
        let descriptor: Int32
        let tls: TLSSession?

        init(descriptor: Int32, tls: TLSSession?) {
            self.descriptor = descriptor
            self.tls = tls
        }

        func close() {
            tls?.shutdown()
            Glibc.close(descriptor)
        }
    }

    // MARK: - Sockets

    static func connect(_ target: Target, url: String, deadline: ContinuousClock.Instant) throws -> Int32 {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(target.host, String(target.port), &hints, &list)
        guard status == 0, let first = list else {
            throw TransportError(
                .dns, url: url, detail: "cannot resolve \(target.host): \(String(cString: gai_strerror(status)))")
        }
        defer { freeaddrinfo(first) }
        var lastError = "no address"
        var refused = false
        var entry: UnsafeMutablePointer<addrinfo>? = first
        while let address = entry {
            entry = address.pointee.ai_next
            let descriptor = socket(
                address.pointee.ai_family,
                Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            guard descriptor >= 0 else {
                lastError = "socket: \(String(cString: strerror(errno)))"
                continue
            }
            var one: Int32 = 1
            setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            if Glibc.connect(descriptor, address.pointee.ai_addr, address.pointee.ai_addrlen) == 0 {
                return descriptor
            }
            guard errno == EINPROGRESS else {
                refused = errno == ECONNREFUSED
                lastError = String(cString: strerror(errno))
                close(descriptor)
                continue
            }
            guard try wait(descriptor, for: Int16(POLLOUT), until: deadline) else {
                close(descriptor)
                throw TransportError(.timeout, url: url, detail: "connect to \(target.address) timed out")
            }
            var failure: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &failure, &length)
            if failure == 0 { return descriptor }
            refused = failure == ECONNREFUSED
            lastError = String(cString: strerror(failure))
            close(descriptor)
        }
        throw TransportError(refused ? .refused : .connection, url: url, detail: "connect to \(target.address): \(lastError)")
    }

    /// Waits until `descriptor` is ready for `events`; false when the deadline passed first. A
    /// failing poll is a connection error, not a timeout.
    static func wait(_ descriptor: Int32, for events: Int16, until deadline: ContinuousClock.Instant) throws -> Bool {
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else { return false }
            var entry = pollfd(fd: descriptor, events: events, revents: 0)
            let milliseconds = Int32(clamping: (left.nanoseconds + 999_999) / 1_000_000)
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return true }
            if ready < 0 && errno != EINTR {
                throw TransportError(.connection, url: "-", detail: "poll: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Sends all of `bytes` on the non-blocking socket `descriptor` (MSG_NOSIGNAL: a peer that closed is EPIPE, not
    /// a SIGPIPE), waiting for room until `deadline`. Plain connections and `TLSSession`'s records both go through it.
    static func send(
        _ bytes: UnsafeRawBufferPointer, on descriptor: Int32, url: String, deadline: ContinuousClock.Instant,
        timeout: String
    ) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = Glibc.send(descriptor, bytes.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL))
            if sent > 0 {
                offset += sent
            } else if sent < 0 && (errno == EAGAIN || errno == EINTR) {
                guard try wait(descriptor, for: Int16(POLLOUT), until: deadline) else {
                    throw TransportError(.timeout, url: url, detail: timeout)
                }
            } else {
                throw TransportError(.connection, url: url, detail: "send: \(String(cString: strerror(errno)))")
            }
        }
    }

    /// Receives into `chunk` from the non-blocking socket `descriptor`, waiting until `deadline`: the count, 0 at the
    /// end of the stream (a reset included).
    static func receive(
        into chunk: inout [UInt8], from descriptor: Int32, url: String, deadline: ContinuousClock.Instant,
        timeout: String
    ) throws -> Int {
        while true {
            let received = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if received >= 0 { return received }
            guard errno == EAGAIN || errno == EINTR else {
                if errno == ECONNRESET { return 0 }
                throw TransportError(.connection, url: url, detail: "recv: \(String(cString: strerror(errno)))")
            }
            guard try wait(descriptor, for: Int16(POLLIN), until: deadline) else {
                throw TransportError(.timeout, url: url, detail: timeout)
            }
        }
    }

    /// Buffered reads and writes on one connection, each bounded by the exchange's deadline.
    struct Reader {
        let connection: Connection
        let url: String
        let deadline: ContinuousClock.Instant
        var buffered: [UInt8] = []
        var closed = false

        struct Head {
            var status: Int
            var http11: Bool
            var headers: [(name: String, value: String)]
            func header(_ name: String) -> String? {
                headers.first { $0.name.lowercased() == name }?.value
            }
        }

        func write(_ bytes: [UInt8]) throws {
            if let tls = connection.tls { return try tls.send(bytes, deadline: deadline) }
            try bytes.withUnsafeBytes { raw in
                try PlainHTTPTransport.send(
                    raw, on: connection.descriptor, url: url, deadline: deadline, timeout: "sending the request timed out")
            }
        }

        /// Reads more bytes into the buffer; false at the end of the stream.
        mutating func fill() throws -> Bool {
            if closed { return false }
            var chunk = [UInt8](repeating: 0, count: 16 << 10)
            let received =
                try connection.tls?.receive(into: &chunk, deadline: deadline)
                ?? PlainHTTPTransport.receive(
                    into: &chunk, from: connection.descriptor, url: url, deadline: deadline, timeout: "no answer in time")
            guard received > 0 else {
                closed = true
                return false
            }
            buffered.append(contentsOf: chunk[..<received])
            guard buffered.count <= PlainHTTPTransport.maxResponseBytes + 64 << 10 else {
                throw TransportError(.responseTooLarge, url: url, detail: "more than 4 MiB")
            }
            return true
        }

        /// The status line and headers; nil when the connection closed before any byte.
        mutating func readHead() throws -> Head? {
            var searched = 0
            while true {
                if let end = buffered.firstIndex(of: [13, 10, 13, 10], from: searched - 3) {
                    let text = String(decoding: buffered[..<end], as: UTF8.self)
                    buffered.removeFirst(end + 4)
                    var lines = text.split(separator: "\r\n", omittingEmptySubsequences: false)
                    let statusLine = lines.removeFirst().split(separator: " ", maxSplits: 2)
                    guard statusLine.count >= 2, statusLine[0].hasPrefix("HTTP/1."), let status = Int(statusLine[1]) else {
                        throw TransportError(.connection, url: url, detail: "not an HTTP/1.x answer")
                    }
                    let headers = lines.compactMap { line -> (name: String, value: String)? in
                        guard let colon = line.firstIndex(of: ":") else { return nil }
                        return (String(line[..<colon]), line[line.index(after: colon)...].trimmed)
                    }
                    if status == 100 { return try readHead() }
                    return Head(status: status, http11: statusLine[0] == "HTTP/1.1", headers: headers)
                }
                searched = buffered.count
                guard try fill() else {
                    if buffered.isEmpty { return nil }
                    throw TransportError(.connection, url: url, detail: "the connection closed inside the answer's headers")
                }
            }
        }

        /// The body `head` announces: chunked, Content-Length, or up to the end of the stream (not framed: the
        /// connection cannot be reused).
        mutating func readBody(_ head: Head) throws -> (body: [UInt8], framed: Bool) {
            if head.header("transfer-encoding")?.lowercased().contains("chunked") == true {
                return (try readChunked(), true)
            }
            if let length = head.header("content-length").flatMap({ Int($0.trimmed) }) {
                guard length >= 0 else { throw TransportError(.connection, url: url, detail: "bad Content-Length") }
                guard length <= PlainHTTPTransport.maxResponseBytes else {
                    throw TransportError(.responseTooLarge, url: url, detail: "\(length) bytes")
                }
                return (try read(exactly: length), true)
            }
            return (try readToEnd(), false)
        }

        mutating func read(exactly count: Int) throws -> [UInt8] {
            while buffered.count < count {
                guard try fill() else {
                    throw TransportError(.connection, url: url, detail: "the connection closed inside the body")
                }
            }
            defer { buffered.removeFirst(count) }
            return Array(buffered[..<count])
        }

        mutating func readLine() throws -> String {
            var searched = 0
            while true {
                if let end = buffered.firstIndex(of: [13, 10], from: searched - 1) {
                    defer { buffered.removeFirst(end + 2) }
                    return String(decoding: buffered[..<end], as: UTF8.self)
                }
                searched = buffered.count
                guard try fill() else {
                    throw TransportError(.connection, url: url, detail: "the connection closed inside a chunk")
                }
            }
        }

        mutating func readChunked() throws -> [UInt8] {
            var body: [UInt8] = []
            while true {
                let sizeText = try readLine().split(separator: ";").first.map(String.init) ?? ""
                guard let size = Int(sizeText.trimmed, radix: 16), size >= 0 else {
                    throw TransportError(.connection, url: url, detail: "bad chunk size '\(sizeText)'")
                }
                if size == 0 {
                    while try !readLine().isEmpty {}  // trailers
                    return body
                }
                guard size <= PlainHTTPTransport.maxResponseBytes - body.count else {
                    throw TransportError(.responseTooLarge, url: url, detail: "more than 4 MiB")
                }
                body += try read(exactly: size)
                _ = try read(exactly: 2)
            }
        }

        mutating func readToEnd() throws -> [UInt8] {
            while try fill() {}
            defer { buffered = [] }
            return buffered
        }
    }
}
