import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// One request as the testbed's handlers see it.
struct HTTPRequest: Sendable {
    var method: String
    /// The path as sent, percent-encoding kept, without the query.
    var path: String
    /// The raw query string (after `?`), empty when there is none.
    var rawQuery: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }
}

/// A response; `truncate` declares a `Content-Length` larger than the bytes sent and then closes.
struct HTTPResponse: Sendable {
    var status: Int
    var headers: [(name: String, value: String)] = []
    var body: [UInt8] = []
    var truncate = false

    init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    init(status: Int, contentType: String, text: String, headers: [(name: String, value: String)] = []) {
        self.status = status
        self.headers = [(name: "Content-Type", value: contentType)] + headers
        self.body = Array(text.utf8)
    }
}

/// A response whose body is written chunk by chunk as `chunks` yields (chunked transfer
/// encoding), as long as the client stays: a Kubernetes watch. It ends when `chunks` finishes or
/// `timeout` passes (then the connection is closed), when the client closes, or at shutdown.
struct HTTPStream: Sendable {
    var status: Int
    var headers: [(name: String, value: String)]
    var chunks: any AsyncSequence<[UInt8], Never> & Sendable
    var timeout: Duration?
    /// Send half of the first chunk, then close (a fault).
    var truncate = false
    /// Called once the response is over and the connection closed.
    var onFinish: (@Sendable () -> Void)? = nil
}

enum HTTPReply: Sendable {
    case response(HTTPResponse)
    case stream(HTTPStream)
    /// Never answer; hold the connection until the client closes it or the server stops.
    case blackhole

    var status: Int? {
        switch self {
        case .response(let response): response.status
        case .stream(let stream): stream.status
        case .blackhole: nil
        }
    }
}

typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPReply

typealias HTTPConnection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
typealias HTTPServerChannel = NIOAsyncChannel<HTTPConnection, Never>

/// A small HTTP/1.1 server on SwiftNIO, optionally over TLS: keep-alive, bodies capped, one
/// task per connection, streamed responses, everything ends when the serving task is cancelled.
enum HTTPServer {
    static let maximumBodySize = 1 << 20

    static func bind(group: any EventLoopGroup, host: String, port: Int, tls: NIOSSLContext? = nil) async throws
        -> HTTPServerChannel
    {
        try await ServerBootstrap(group: group)
            // A fleet's agents connect all at once (scripts/fleet.py: 500 agents and their token helpers share one IMDS
            // port, where EC2 gives each instance its own): a short accept queue drops their SYNs, and a client
            // with IMDS's 250 ms connect timeout gives up before the kernel resends one. The kernel caps it at somaxconn.
            .serverChannelOption(.backlog, value: 4096)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try HTTPConnection(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Accepts connections until the calling task is cancelled; then closes the listener and
    /// every connection, and returns once they are all done.
    ///
    /// Cancellation closes the listener rather than ending the accept loop: a connection the
    /// listener accepted at that moment is still in the loop's buffer, and dropping it unserved
    /// (without `executeThenClose`) is a NIO precondition failure. So the loop runs in a task of
    /// its own, which is awaited, reads the buffer to its end, and then cancels the connections.
    static func serve(_ server: HTTPServerChannel, handler: @escaping HTTPHandler) async {
        let accepting = Task {
            await withDiscardingTaskGroup { group in
                do {
                    try await server.executeThenClose { inbound in
                        for try await connection in inbound {
                            group.addTask { await serveConnection(connection, handler: handler) }
                        }
                    }
                } catch {
                    // The listener failed or was closed (shutdown): the connections end below.
                }
                group.cancelAll()
            }
        }
        await withTaskCancellationHandler {
            await accepting.value
        } onCancel: {
            server.channel.close(promise: nil)
        }
    }

    static func serveConnection(_ connection: HTTPConnection, handler: @escaping HTTPHandler) async {
        do {
            try await connection.executeThenClose { inbound, outbound in
                var parts = inbound.makeAsyncIterator()
                var head: HTTPRequestHead?
                var body: [UInt8] = []
                var tooLarge = false
                while let part = try await parts.next() {
                    switch part {
                    case .head(let h):
                        head = h
                        body = []
                        tooLarge = false
                    case .body(let buffer):
                        if body.count + buffer.readableBytes > maximumBodySize {
                            tooLarge = true
                            body = []
                        } else if !tooLarge {
                            body.append(contentsOf: buffer.readableBytesView)
                        }
                    case .end:
                        guard let h = head else { continue }
                        head = nil
                        let reply: HTTPReply
                        if tooLarge {
                            reply = .response(
                                HTTPResponse(
                                    status: 413, contentType: "text/plain",
                                    text: "request body larger than \(maximumBodySize) bytes\n"))
                        } else {
                            reply = await handler(request(h, body: body))
                        }
                        switch reply {
                        case .blackhole:
                            // Keep reading (and dropping) until the client gives up or we are cancelled.
                            while try await parts.next() != nil {}
                            return
                        case .response(let response):
                            try await write(response, for: h, to: outbound)
                            if response.truncate || !h.isKeepAlive { return }
                        case .stream(let stream):
                            try await serveStream(stream, for: h, to: outbound, closing: connection.channel) {
                                // The client closing its side (or shutdown) ends the stream.
                                while try await parts.next() != nil {}
                            }
                            return
                        }
                    }
                }
            }
        } catch {
            // The client reset the connection, or the server is shutting down: nothing to answer.
        }
    }

    /// Writes the head, then each chunk until the stream ends (or times out), then closes the
    /// connection; `untilClientCloses` returning (or throwing) stops the writing early.
    static func serveStream(
        _ stream: HTTPStream, for request: HTTPRequestHead,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, closing channel: any Channel,
        untilClientCloses: () async throws -> Void
    ) async throws {
        defer { stream.onFinish?() }
        var headers = HTTPHeaders(stream.headers.map { ($0.name, $0.value) })
        headers.remove(name: "Content-Length")
        headers.replaceOrAdd(name: "Transfer-Encoding", value: "chunked")
        headers.replaceOrAdd(name: "Connection", value: "close")
        try await outbound.write(
            .head(
                HTTPResponseHead(
                    version: request.version, status: HTTPResponseStatus(statusCode: stream.status), headers: headers)))
        if stream.truncate {
            for await first in stream.chunks {
                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: first.prefix(max(1, first.count / 2))))))
                break
            }
            return
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskGroup(of: Void.self) { writer in
                    writer.addTask {
                        for await chunk in stream.chunks {
                            do {
                                try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: chunk))))
                            } catch {
                                return  // the client is gone
                            }
                        }
                    }
                    if let timeout = stream.timeout {
                        writer.addTask {
                            // Cancelled when the stream ends first: either way the response is over.
                            try? await Task.sleep(for: timeout)
                        }
                    }
                    await writer.next()
                    writer.cancelAll()
                }
                // The end of the body, then close: the reading side below sees the connection go.
                try? await outbound.write(.end(nil))  // the client may be gone already; nothing to tell it
                channel.close(promise: nil)
            }
            do {
                try await untilClientCloses()
            } catch {
                // Reset by the client, or cancelled at shutdown: the stream is over either way.
            }
            group.cancelAll()
        }
    }

    static func request(_ head: HTTPRequestHead, body: [UInt8]) -> HTTPRequest {
        let uri = head.uri
        let path: String
        let query: String
        if let mark = uri.firstIndex(of: "?") {
            path = String(uri[..<mark])
            query = String(uri[uri.index(after: mark)...])
        } else {
            path = uri
            query = ""
        }
        return HTTPRequest(
            method: head.method.rawValue, path: path.isEmpty ? "/" : path, rawQuery: query,
            headers: head.headers.map { (name: $0.name, value: $0.value) }, body: body)
    }

    static func write(
        _ response: HTTPResponse, for request: HTTPRequestHead,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
        let declared = response.truncate ? response.body.count + 64 : response.body.count
        headers.replaceOrAdd(name: "Content-Length", value: String(declared))
        if !request.isKeepAlive || response.truncate {
            headers.replaceOrAdd(name: "Connection", value: "close")
        } else if request.version.minor == 0 {
            headers.replaceOrAdd(name: "Connection", value: "keep-alive")
        }
        let head = HTTPResponseHead(
            version: request.version, status: HTTPResponseStatus(statusCode: response.status), headers: headers)
        try await outbound.write(.head(head))
        let sent = response.truncate ? Array(response.body.prefix(response.body.count / 2)) : response.body
        if !sent.isEmpty && request.method != .HEAD {
            try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: sent))))
        }
        if !response.truncate {
            try await outbound.write(.end(nil))
        }
    }
}
