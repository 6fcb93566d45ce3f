import NIOCore
import NIOHTTP1
import NIOPosix

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

enum HTTPReply: Sendable {
    case response(HTTPResponse)
    /// Never answer; hold the connection until the client closes it or the server stops.
    case blackhole

    var status: Int? {
        if case .response(let response) = self { return response.status }
        return nil
    }
}

typealias HTTPHandler = @Sendable (HTTPRequest) async -> HTTPReply

typealias HTTPConnection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>
typealias HTTPServerChannel = NIOAsyncChannel<HTTPConnection, Never>

/// A small HTTP/1.1 server on SwiftNIO: keep-alive, bodies capped, one task per connection,
/// everything ends when the serving task is cancelled.
enum HTTPServer {
    static let maximumBodySize = 1 << 20

    static func bind(group: any EventLoopGroup, host: String, port: Int) async throws -> HTTPServerChannel {
        try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: false)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try HTTPConnection(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Accepts connections until the calling task is cancelled; then closes the listener and
    /// every connection, and returns once they are all done.
    static func serve(_ server: HTTPServerChannel, handler: @escaping HTTPHandler) async {
        await withDiscardingTaskGroup { group in
            do {
                try await server.executeThenClose { inbound in
                    for try await connection in inbound {
                        group.addTask { await serveConnection(connection, handler: handler) }
                    }
                }
            } catch {
                // The listener was closed (shutdown); the connections finish through cancellation.
            }
            group.cancelAll()
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
                        }
                    }
                }
            }
        } catch {
            // The client reset the connection, or the server is shutting down: nothing to answer.
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
