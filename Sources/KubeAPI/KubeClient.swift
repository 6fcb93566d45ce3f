import AsyncHTTPClient
import FoundationEssentials
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// The few Kubernetes API calls the agent makes, over HTTPS trusting only the cluster CA (host
/// name verified), with a bearer token from `token` on every request. No retries: the caller
/// decides (``KubeError/isTransient``). Call ``shutdown()`` once when done.
public final class KubeClient: Sendable {
    /// The API server, `https://host[:port]` without a trailing slash.
    public let endpoint: String
    /// The endpoint's host (for messages).
    public let host: String
    let http: HTTPClient
    let token: @Sendable () async throws -> String
    let requestTimeout: Duration

    static let maxResponseBytes = 8 << 20

    /// - Parameters:
    ///   - endpoint: `https://…` (the kubeconfig's `server`).
    ///   - caPEM: the CA bundle to trust, alone; nil trusts the system's roots.
    ///   - token: the bearer token, asked for on every request (cache it).
    ///   - requestTimeout: bound on each request, connect, TLS and the whole response body included.
    public init(
        endpoint: String, caPEM: [UInt8]?, token: @escaping @Sendable () async throws -> String,
        requestTimeout: Duration
    ) throws(KubeError) {
        var trimmed = endpoint
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let url = URL(string: trimmed), url.scheme?.lowercased() == "https", let host = url.host(), !host.isEmpty
        else {
            throw KubeError(
                .configuration, request: endpoint, message: "the endpoint must be an https:// URL with a host")
        }
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.certificateVerification = .fullVerification
        // Closing waits this long for the server's close_notify (5 s by default): a server that
        // stopped answering would hold up shutdown.
        tls.shutdownTimeout = .milliseconds(200)
        if let caPEM {
            let certificates: [NIOSSLCertificate]
            do {
                certificates = try NIOSSLCertificate.fromPEMBytes(caPEM)
            } catch {
                throw KubeError(.configuration, request: endpoint, message: "the CA is not a PEM certificate bundle (\(error))")
            }
            guard !certificates.isEmpty else {
                throw KubeError(.configuration, request: endpoint, message: "the CA holds no PEM certificate")
            }
            tls.trustRoots = .certificates(certificates)
        }
        var configuration = HTTPClient.Configuration(tlsConfiguration: tls)
        configuration.redirectConfiguration = .disallow
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        // The whole request, body included, is bounded in `send`; `read` (a pause between two reads)
        // is only the backstop that closes the connection should that bound not stop the read.
        configuration.timeout = .init(
            connect: Self.timeAmount(requestTimeout), read: Self.timeAmount(requestTimeout * 2))
        // Fail a request with the connection's own error (refused, DNS, TLS) at once instead of
        // retrying the connection until the deadline: the caller retries, and explains.
        configuration.connectionPool.retryConnectionEstablishment = false
        self.endpoint = trimmed
        self.host = host
        self.http = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
        self.token = token
        self.requestTimeout = requestTimeout
    }

    public func shutdown() async {
        // A second shutdown only reports that the client is already shut down.
        try? await http.shutdown()
    }

    // MARK: Calls

    /// `GET /version`: the server's `gitVersion` (`v1.31.0-eks-…`).
    public func version() async throws(KubeError) -> String {
        struct Version: Decodable { var gitVersion: String }
        let (request, body) = try await get("/version")
        return try Self.decode(Version.self, body, request: request).gitVersion
    }

    /// `GET /api/v1/nodes/NAME`; nil when there is no such node.
    public func node(named name: String) async throws(KubeError) -> Node? {
        let path = try nodePath(name)
        do {
            let (request, body) = try await get(path)
            return try Self.decode(Node.self, body, request: request)
        } catch  where error.kind == .notFound {
            return nil
        }
    }

    /// `POST /api/v1/nodes`: the created Node, as the server stored it.
    public func createNode(_ node: Node) async throws(KubeError) -> Node {
        let (request, body) = try await send(
            .POST, "/api/v1/nodes", body: try Self.encode(node, request: "POST \(endpoint)/api/v1/nodes"),
            contentType: "application/json", expect: [200, 201, 202])
        return try Self.decode(Node.self, body, request: request)
    }

    /// `PATCH /api/v1/nodes/NAME[/status]` with a JSON merge patch (RFC 7386). With `status`,
    /// the status subresource (only `status` changes, as the kubelet reports it).
    public func patchNode(_ name: String, mergePatch: [UInt8], status: Bool = false) async throws(KubeError) -> Node {
        let path = try nodePath(name) + (status ? "/status" : "")
        let (request, body) = try await send(
            .PATCH, path, body: mergePatch, contentType: "application/merge-patch+json", expect: [200])
        return try Self.decode(Node.self, body, request: request)
    }

    /// A merge patch given as a Node: its nil fields are left out, so they do not change (lists
    /// given, such as `spec.taints` or `status.addresses`, replace the server's whole list).
    public func patchNode(_ name: String, mergePatch: Node, status: Bool = false) async throws(KubeError) -> Node {
        let path = try nodePath(name)
        let bytes = try Self.encode(mergePatch, request: "PATCH \(endpoint)\(path)")
        return try await patchNode(name, mergePatch: bytes, status: status)
    }

    /// `DELETE /api/v1/nodes/NAME`: true when the Node was deleted, false when there was none.
    public func deleteNode(_ name: String) async throws(KubeError) -> Bool {
        let path = try nodePath(name)
        do {
            _ = try await send(.DELETE, path, expect: [200, 202])
            return true
        } catch  where error.kind == .notFound {
            return false
        }
    }

    // MARK: Transport

    /// `/api/v1/nodes/NAME`, for a name the API server accepts (so it needs no escaping).
    func nodePath(_ name: String) throws(KubeError) -> String {
        guard Node.isValidName(name) else {
            throw KubeError(
                .invalidName, request: "\(endpoint)/api/v1/nodes",
                message:
                    "'\(name)' is not a valid node name (lowercase letters, digits, '-' and '.', at most 253 characters, starting and ending with a letter or digit)"
            )
        }
        return "/api/v1/nodes/" + name
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        .nanoseconds(duration.nanoseconds)
    }

    /// `GET path` (with its query), answered 200.
    func get(_ path: String) async throws(KubeError) -> (request: String, body: [UInt8]) {
        try await send(.GET, path, expect: [200])
    }

    /// One request; a status outside `expect` becomes the ``KubeError`` the `Status` body explains.
    func send(
        _ method: HTTPMethod, _ path: String, body: [UInt8]? = nil, contentType: String? = nil, expect: Set<Int>
    ) async throws(KubeError) -> (request: String, body: [UInt8]) {
        let url = endpoint + path
        let request = "\(method.rawValue) \(url)"
        let bearer: String
        do {
            bearer = try await token()
        } catch is CancellationError {
            throw KubeError(.cancelled, request: request, message: "cancelled")
        } catch {
            throw KubeError(.credentials, request: request, message: "no bearer token: \(error)")
        }
        var outgoing = HTTPClientRequest(url: url)
        outgoing.method = method
        outgoing.headers.add(name: "Accept", value: "application/json")
        outgoing.headers.add(name: "User-Agent", value: "nodeboot")
        outgoing.headers.add(name: "Authorization", value: "Bearer \(bearer)")
        if let body {
            outgoing.headers.add(name: "Content-Type", value: contentType ?? "application/json")
            outgoing.body = .bytes(ByteBuffer(bytes: body))
        }
        let status: Int
        let received: [UInt8]
        let deadline = ContinuousClock.now + requestTimeout
        do {
            // AsyncHTTPClient's deadline ends with the response head; the body gets the rest.
            let response = try await http.execute(outgoing, timeout: Self.timeAmount(requestTimeout))
            status = Int(response.status.code)
            received = try await Self.collect(response.body, until: deadline, request: request)
        } catch {
            throw Self.classify(error, request: request, host: host)
        }
        guard expect.contains(status) else { throw Self.statusError(status, received, request: request) }
        return (request, received)
    }

    /// The whole body, or a timeout error at `deadline` (a server that sent the head, then
    /// stalled or trickles): reading stops, which closes the connection.
    static func collect(_ body: HTTPClientResponse.Body, until deadline: ContinuousClock.Instant, request: String)
        async throws -> [UInt8]
    {
        try await withThrowingTaskGroup(of: [UInt8]?.self) { group in
            group.addTask { Array(buffer: try await body.collect(upTo: maxResponseBytes)) }
            group.addTask {
                try await Task.sleep(until: deadline, clock: .continuous)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let bytes = first else {
                throw KubeError(
                    .unreachable(.timeout), request: request,
                    message: "the answer's body did not arrive in time (the server sent the head, then stalled)")
            }
            return bytes
        }
    }

    /// The API server's `Status` body, for the message and reason.
    struct StatusBody: Decodable {
        var kind: String?
        var message: String?
        var reason: String?
    }

    static func statusError(_ status: Int, _ body: [UInt8], request: String) -> KubeError {
        let parsed = try? JSONDecoder().decode(StatusBody.self, from: Data(body))  // not a Status: use the bytes
        var message = parsed?.message ?? ""
        if message.isEmpty {
            let text = String(decoding: body.prefix(300), as: UTF8.self).filter { !$0.isNewline }
            message = text.isEmpty ? "(no message)" : text
        }
        let reason = parsed?.reason.flatMap { $0.isEmpty ? nil : $0 }
        let kind: KubeError.Kind
        switch status {
        case 401: kind = .unauthorized
        case 403: kind = .forbidden
        case 404: kind = .notFound
        case 409: kind = reason == "AlreadyExists" ? .alreadyExists : .conflict
        default: kind = .http(status)
        }
        return KubeError(kind, request: request, message: message, reason: reason)
    }

    static func decode<T: Decodable>(_ type: T.Type, _ body: [UInt8], request: String) throws(KubeError) -> T {
        do {
            return try JSONDecoder().decode(type, from: Data(body))
        } catch {
            let start = String(decoding: body.prefix(80), as: UTF8.self).filter { !$0.isNewline }
            throw KubeError(
                .invalidResponse, request: request,
                message: "the answer is not a \(type) (\(body.count) bytes starting '\(start)'): \(error)")
        }
    }

    static func encode(_ value: some Encodable, request: String) throws(KubeError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw KubeError(.invalidResponse, request: request, message: "cannot encode the request body: \(error)")
        }
    }

    // MARK: Error classification

    /// Sorts an AsyncHTTPClient, NIO or NIOSSL error into what an operator can act on.
    static func classify(_ error: any Error, request: String, host: String) -> KubeError {
        switch error {
        case let error as KubeError:
            return error
        case is CancellationError:
            return KubeError(.cancelled, request: request, message: "cancelled")
        case let error as HTTPClientError:
            switch error {
            case .deadlineExceeded, .readTimeout, .writeTimeout:
                return KubeError(.unreachable(.timeout), request: request, message: "no answer in time (\(error))")
            case .connectTimeout, .getConnectionFromPoolTimeout:
                return KubeError(
                    .unreachable(.timeout), request: request, message: "cannot connect to \(host): timed out (\(error))")
            case .tlsHandshakeTimeout:
                return KubeError(
                    .unreachable(.timeout), request: request, message: "the TLS handshake with \(host) timed out")
            case .cancelled:
                return KubeError(.cancelled, request: request, message: "cancelled")
            case .remoteConnectionClosed:
                return KubeError(
                    .unreachable(.connection), request: request, message: "the server closed the connection (\(error))")
            default:
                return KubeError(.invalidResponse, request: request, message: "\(error)")
            }
        case let error as NIOSSLError:
            return tlsError(error, request: request, host: host)
        case let error as NIOSSLExtraError:
            return KubeError(.tls, request: request, message: "TLS with \(host) failed: \(error)")
        case let error as NIOConnectionError:
            if error.connectionErrors.isEmpty, let dns = error.dnsAError ?? error.dnsAAAAError {
                return KubeError(.unreachable(.dns), request: request, message: "cannot resolve \(host) (\(dns))")
            }
            let codes = error.connectionErrors.compactMap { ($0.error as? IOError)?.errnoCode }
            if codes.contains(ECONNREFUSED) {
                return KubeError(
                    .unreachable(.connectionRefused), request: request,
                    message: "connection refused by \(host):\(error.port) (nothing listens there)")
            }
            if codes.contains(ETIMEDOUT) || error.connectionErrors.contains(where: { isTimeout($0.error) }) {
                return KubeError(
                    .unreachable(.timeout), request: request, message: "cannot connect to \(host):\(error.port): timed out")
            }
            return KubeError(.unreachable(.connection), request: request, message: "cannot connect: \(error)")
        case is SocketAddressError.UnknownHost:
            return KubeError(.unreachable(.dns), request: request, message: "cannot resolve \(host) (\(error))")
        case let error as IOError:
            switch error.errnoCode {
            case ECONNREFUSED:
                return KubeError(
                    .unreachable(.connectionRefused), request: request, message: "connection refused by \(host)")
            case ETIMEDOUT:
                return KubeError(.unreachable(.timeout), request: request, message: "cannot connect to \(host): timed out")
            default:
                return KubeError(.unreachable(.connection), request: request, message: "\(error)")
            }
        case _ where isTimeout(error):
            return KubeError(.unreachable(.timeout), request: request, message: "cannot connect to \(host): timed out")
        case let error as ChannelError:
            return KubeError(.unreachable(.connection), request: request, message: "\(error)")
        case let error as NIOTooManyBytesError:
            return KubeError(.invalidResponse, request: request, message: "the answer is too large (\(error))")
        default:
            return KubeError(.unreachable(.connection), request: request, message: "\(error)")
        }
    }

    static func isTimeout(_ error: any Error) -> Bool {
        if let error = error as? ChannelError, case .connectTimeout = error { return true }
        return false
    }

    static func tlsError(_ error: NIOSSLError, request: String, host: String) -> KubeError {
        let detail = "\(error)"
        if detail.contains("CERTIFICATE_VERIFY_FAILED") {
            return KubeError(
                .tls, request: request,
                message:
                    "TLS certificate verification failed: the certificate of \(host) is not signed by the trusted CA, or is not for \(host) (\(detail))"
            )
        }
        switch error {
        case .handshakeFailed:
            return KubeError(.tls, request: request, message: "the TLS handshake with \(host) failed (\(detail))")
        case .uncleanShutdown:
            return KubeError(
                .unreachable(.connection), request: request, message: "the connection to \(host) ended uncleanly")
        default:
            return KubeError(.tls, request: request, message: "TLS with \(host) failed (\(detail))")
        }
    }
}
