public import NIOCore
import NIOPosix
public import ServiceLifecycle
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where `/metrics` and `/healthz` are served: a loopback address and a port
/// (`NODEBOOT_IPAMD_METRICS_ADDRESS`, docs/ipamd.md §8). Any other address is refused: the pool's
/// numbers are for the node's own scraper, not the VPC.
public struct MetricsAddress: Sendable, Equatable, CustomStringConvertible {
    public static let environmentVariable = "NODEBOOT_IPAMD_METRICS_ADDRESS"
    /// `127.0.0.1:61678`: aws-node's metrics port, on loopback only.
    public static let standard = MetricsAddress(checkedHost: "127.0.0.1", port: 61678)

    /// An IPv4 address in 127.0.0.0/8, or `::1`.
    public let host: String
    /// 0 asks the kernel for a free port (the server's `address` then has the real one).
    public let port: Int

    public init(host: String, port: Int) throws(IPAMError) {
        guard Self.isLoopback(host) else {
            let what = Self.isAddress(host) ? "is not a loopback address" : "is not an IP address"
            throw IPAMError(
                "the metrics address \(host) \(what): ipamd serves /metrics and /healthz on loopback only (docs/ipamd.md §8); "
                    + "set \(Self.environmentVariable) to 127.0.0.1:<port>")
        }
        guard (0...65535).contains(port) else {
            throw IPAMError(
                "the metrics port \(port) is not a TCP port (0–65535); set \(Self.environmentVariable) to 127.0.0.1:<port>")
        }
        self.init(checkedHost: host, port: port)
    }

    /// `127.0.0.1:61678` or `[::1]:61678`.
    public init(parsing text: String) throws(IPAMError) {
        let host: Substring
        let port: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else { throw Self.unparsable(text) }
            port = rest.dropFirst()
        } else if let colon = text.lastIndex(of: ":"), !text[..<colon].contains(":") {
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        } else {
            throw Self.unparsable(text)
        }
        guard !port.isEmpty, port.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(port) else {
            throw Self.unparsable(text)
        }
        try self.init(host: String(host), port: number)
    }

    init(checkedHost host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    static func unparsable(_ text: String) -> IPAMError {
        IPAMError(
            "\(environmentVariable)=\(text) is not <address>:<port>; use a loopback address and a port, e.g. 127.0.0.1:61678 "
                + "or [::1]:61678")
    }

    static func isAddress(_ host: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
    }

    static func isLoopback(_ host: String) -> Bool {
        var v4 = in_addr()
        if inet_pton(AF_INET, host, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { $0[0] == 127 }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, host, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { bytes in bytes.dropLast().allSatisfy { $0 == 0 } && bytes.last == 1 }
        }
        return false
    }
}

/// Whether ipamd is ready, as `/healthz` answers it: set by the daemon when it sends READY=1,
/// and back to not ready with a reason when it stops.
public final class Readiness: Sendable {
    public enum State: Sendable, Equatable {
        case ready
        case notReady(String)
    }

    let current: Mutex<State>

    public init(notReady reason: String = "ipamd is starting") {
        current = Mutex(.notReady(reason))
    }

    public var state: State { current.withLock { $0 } }
    public func markReady() { current.withLock { $0 = .ready } }
    public func markNotReady(_ reason: String) { current.withLock { $0 = .notReady(reason) } }
}

/// `/healthz` and `/metrics` over HTTP/1.1 on a loopback address (docs/ipamd.md §8). Enough of
/// HTTP for a scraper and a probe: the request head is read (at most 8 KiB, within 10 s), GET
/// is the only method, every answer has a Content-Length and `Connection: close`, and the
/// connection is closed after it (output first, so a request body the client is still sending
/// does not turn the close into a reset that would lose the answer).
public final class MetricsServer: Sendable {
    /// The address it listens on (with the kernel's port when 0 was asked for).
    public let address: MetricsAddress
    let channel: any Channel

    init(address: MetricsAddress, channel: any Channel) {
        self.address = address
        self.channel = channel
    }

    /// Listens on `address` and answers from `readiness` and `snapshot` (called once per scrape).
    public static func start(
        address: MetricsAddress = .standard, group: any EventLoopGroup, readiness: Readiness,
        snapshot: @escaping @Sendable () async -> MetricsSnapshot
    ) async throws(IPAMError) -> MetricsServer {
        let routes = Routes(readiness: readiness, snapshot: snapshot)
        let channel: any Channel
        do {
            let socketAddress = try SocketAddress(ipAddress: address.host, port: address.port)
            channel = try await ServerBootstrap(group: group)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .serverChannelOption(ChannelOptions.backlog, value: 64)
                .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(Connection(routes: routes))
                    }
                }
                .bind(to: socketAddress).get()
        } catch {
            throw IPAMError(
                "cannot listen for metrics on \(address): \(error); if another process has the port (aws-node's ipamd "
                    + "listens on 61678), stop it or set \(MetricsAddress.environmentVariable) to another loopback port")
        }
        let port = channel.localAddress?.port ?? address.port
        return MetricsServer(address: MetricsAddress(checkedHost: address.host, port: port), channel: channel)
    }

    /// Stops accepting; answers in flight are still written.
    public func close() async {
        // Closing a channel that is already closed is harmless.
        try? await channel.close()
    }

    /// The answers, apart from the socket: GET on `/healthz` and `/metrics`, 404 elsewhere,
    /// 405 for another method on either.
    struct Routes: Sendable {
        let readiness: Readiness
        let snapshot: @Sendable () async -> MetricsSnapshot

        func answer(_ request: RequestHead) async -> Response {
            switch request.path {
            case "/healthz", "/metrics":
                guard request.method == "GET" else {
                    return Response(
                        status: 405, body: "\(request.method) is not allowed: \(request.path) answers GET only\n",
                        extraHeaders: ["Allow: GET"])
                }
                if request.path == "/metrics" {
                    let text = PrometheusText.render(await snapshot())
                    return Response(status: 200, contentType: PrometheusText.contentType, body: text)
                }
                switch readiness.state {
                case .ready: return Response(status: 200, body: "ok\n")
                case .notReady(let reason): return Response(status: 503, body: "not ready: \(reason)\n")
                }
            default:
                return Response(status: 404, body: "not found: this server answers GET /healthz and GET /metrics\n")
            }
        }
    }

    /// A request line, the only part of the head that matters here.
    struct RequestHead: Equatable {
        var method: String
        /// The target's path, without a query (absolute-form targets are reduced to their path).
        var path: String

        enum Parsed: Equatable {
            case incomplete
            case complete(RequestHead)
            case malformed(String)
        }

        /// The head ends at the first empty line; lines end in CRLF or a bare LF (RFC 9112 §2.2),
        /// and empty lines before the request line are skipped.
        static func parse(_ bytes: [UInt8]) -> Parsed {
            var request: RequestHead?
            var start = 0
            while let end = bytes[start...].firstIndex(of: UInt8(ascii: "\n")) {
                var line = bytes[start..<end]
                if line.last == UInt8(ascii: "\r") { line = line.dropLast() }
                start = end + 1
                if let request {
                    if line.isEmpty { return .complete(request) }
                    continue  // a header field: none is needed
                }
                if line.isEmpty { continue }
                switch requestLine(line) {
                case .success(let parsed): request = parsed
                case .failure(let problem): return .malformed(problem.description)
                }
            }
            return .incomplete
        }

        static func requestLine(_ line: ArraySlice<UInt8>) -> Result<RequestHead, IPAMError> {
            let parts = line.split(separator: UInt8(ascii: " "), omittingEmptySubsequences: false)
            guard parts.count == 3, line.allSatisfy({ (0x20..<0x7F).contains($0) }) else {
                return .failure(IPAMError("the request line is not <method> <target> HTTP/1.x"))
            }
            let method = String(decoding: parts[0], as: UTF8.self)
            var target = String(decoding: parts[1], as: UTF8.self)
            let version = String(decoding: parts[2], as: UTF8.self)
            guard !method.isEmpty, version.hasPrefix("HTTP/1.") else {
                return .failure(IPAMError("the request line is not <method> <target> HTTP/1.x"))
            }
            if !target.hasPrefix("/"), let colon = target.firstIndex(of: ":"), target[colon...].hasPrefix("://") {
                let authority = target[target.index(colon, offsetBy: 3)...]
                target = authority.firstIndex(of: "/").map { String(authority[$0...]) } ?? "/"
            }
            guard target.hasPrefix("/") else {
                return .failure(IPAMError("the request target \(target) is not a path"))
            }
            let path = target.prefix { $0 != "?" && $0 != "#" }
            return .success(RequestHead(method: method, path: String(path)))
        }
    }

    struct Response: Equatable {
        var status: Int
        var contentType = "text/plain; charset=utf-8"
        var body: String
        var extraHeaders: [String] = []

        static let reasons = [
            200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            431: "Request Header Fields Too Large", 503: "Service Unavailable",
        ]

        /// The status line, the headers and the body. (No Date header: a scraper does not need one.)
        var bytes: [UInt8] {
            let body = Array(body.utf8)
            var head = "HTTP/1.1 \(status) \(Self.reasons[status] ?? "Unknown")\r\n"
            head += "Content-Type: \(contentType)\r\n"
            head += "Content-Length: \(body.count)\r\n"
            for header in extraHeaders { head += header + "\r\n" }
            head += "Connection: close\r\n\r\n"
            return Array(head.utf8) + body
        }
    }

    /// One connection: reads the request head, answers once, then closes.
    final class Connection: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        static let maximumHead = 8192
        /// A connection that has not sent its request head (or not gone away after the answer) by then is closed.
        static let timeout = TimeAmount.seconds(10)

        enum State { case reading, answering, answered }

        let routes: Routes
        var head: [UInt8] = []
        var state = State.reading
        var peerClosed = false
        var deadline: Scheduled<Void>?

        init(routes: Routes) { self.routes = routes }

        func handlerAdded(context: ChannelHandlerContext) {
            let channel = context.channel
            deadline = context.eventLoop.scheduleTask(in: Self.timeout) { channel.close(promise: nil) }
        }

        func handlerRemoved(context: ChannelHandlerContext) {
            deadline?.cancel()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard case .reading = state else { return }  // a body, or more requests: not read
            var buffer = unwrapInboundIn(data)
            head += buffer.readBytes(length: buffer.readableBytes) ?? []
            // Only the first 8 KiB count, however the bytes arrived.
            switch RequestHead.parse(Array(head.prefix(Self.maximumHead))) {
            case .incomplete:
                if head.count >= Self.maximumHead {
                    send(Response(status: 431, body: "the request head is over \(Self.maximumHead) bytes\n"), on: context.channel)
                }
            case .malformed(let problem):
                send(Response(status: 400, body: problem + "\n"), on: context.channel)
            case .complete(let request):
                state = .answering
                let routes = self.routes
                let channel = context.channel
                context.eventLoop.makeFutureWithTask { await routes.answer(request) }
                    .assumeIsolated().whenSuccess { response in self.send(response, on: channel) }
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            guard let event = event as? ChannelEvent, event == .inputClosed else {
                context.fireUserInboundEventTriggered(event)
                return
            }
            switch state {
            case .reading, .answered: context.close(promise: nil)
            case .answering: peerClosed = true  // the answer is still written; then the connection closes
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        /// Writes the answer, then closes: fully if the client has finished sending, otherwise the
        /// output only (the client's EOF or the deadline closes the rest).
        func send(_ response: Response, on channel: any Channel) {
            state = .answering
            channel.writeAndFlush(ByteBuffer(bytes: response.bytes)).assumeIsolated().whenComplete { _ in
                self.state = .answered
                if self.peerClosed {
                    channel.close(promise: nil)
                } else {
                    channel.close(mode: .output).whenFailure { _ in channel.close(promise: nil) }
                }
            }
        }
    }
}

/// The metrics server as a service of the daemon's `ServiceGroup`: listens, calls `onStart`
/// (to log the address), and serves until graceful shutdown, then stops accepting.
public struct MetricsService: Service {
    let address: MetricsAddress
    let group: any EventLoopGroup
    let readiness: Readiness
    let snapshot: @Sendable () async -> MetricsSnapshot
    let onStart: @Sendable (MetricsServer) async -> Void

    public init(
        address: MetricsAddress = .standard, group: any EventLoopGroup, readiness: Readiness,
        snapshot: @escaping @Sendable () async -> MetricsSnapshot,
        onStart: @escaping @Sendable (MetricsServer) async -> Void = { _ in }
    ) {
        self.address = address
        self.group = group
        self.readiness = readiness
        self.snapshot = snapshot
        self.onStart = onStart
    }

    public func run() async throws {
        let server = try await MetricsServer.start(address: address, group: group, readiness: readiness, snapshot: snapshot)
        await onStart(server)
        // Throws only when the task is cancelled, which is also the end of serving.
        try? await gracefulShutdown()
        await server.close()
    }
}
