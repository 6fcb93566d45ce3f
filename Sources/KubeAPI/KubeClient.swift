import AWS
import FoundationEssentials
import Support
import WireJSON

#if canImport(Glibc)
    import Glibc
#endif

/// The few Kubernetes API calls the agent makes, over HTTPS trusting only the cluster CA (host
/// name verified), with a bearer token from `token` on every request. No retries: the caller
/// decides (``KubeError/isTransient``). Call ``shutdown()`` once when done.
///
/// The requests go over `PlainHTTPTransport` with TLS (BoringSSL through `TLSContext`), one kept-alive connection
/// at a time; a request in flight is bounded by `requestTimeout`, not by task cancellation.
public final class KubeClient: Sendable {
    /// The API server, `https://host[:port]` without a trailing slash.
    public let endpoint: String
    /// The endpoint's host (for messages).
    public let host: String
    let http: PlainHTTPTransport
    let token: @Sendable () async throws -> String
    let requestTimeout: Duration

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
        let tls: TLSContext
        do {
            tls = try TLSContext(caPEM: caPEM)
        } catch {
            throw KubeError(.configuration, request: endpoint, message: error.description)
        }
        self.endpoint = trimmed
        self.host = host
        // Redirects are not followed and answers are not decompressed: the transport does neither.
        self.http = PlainHTTPTransport(connectTimeout: requestTimeout, tls: tls)
        self.token = token
        self.requestTimeout = requestTimeout
    }

    public func shutdown() async {
        await http.shutdown()
    }

    // MARK: Calls

    /// `GET /version`: the server's `gitVersion` (`v1.31.0-eks-…`).
    public func version() async throws(KubeError) -> String {
        let (request, body) = try await get("/version")
        return try Self.decode("Version", body, request: request) { (json) throws(JSONShapeError) in try json.string("gitVersion")
        }
    }

    /// `GET /api/v1/nodes/NAME`; nil when there is no such node.
    public func node(named name: String) async throws(KubeError) -> Node? {
        let path = try nodePath(name)
        do {
            let (request, body) = try await get(path)
            return try Self.decode("Node", body, request: request, Node.init(json:))
        } catch  where error.kind == .notFound {
            return nil
        }
    }

    /// `POST /api/v1/nodes`: the created Node, as the server stored it.
    public func createNode(_ node: Node) async throws(KubeError) -> Node {
        let (request, body) = try await send(
            .POST, "/api/v1/nodes", body: Array(node.json.sortedKeys.text.utf8),
            contentType: "application/json", expect: [200, 201, 202])
        return try Self.decode("Node", body, request: request, Node.init(json:))
    }

    /// `PATCH /api/v1/nodes/NAME[/status]` with a JSON merge patch (RFC 7386). With `status`,
    /// the status subresource (only `status` changes, as the kubelet reports it).
    public func patchNode(_ name: String, mergePatch: [UInt8], status: Bool = false) async throws(KubeError) -> Node {
        let path = try nodePath(name) + (status ? "/status" : "")
        let (request, body) = try await send(
            .PATCH, path, body: mergePatch, contentType: "application/merge-patch+json", expect: [200])
        return try Self.decode("Node", body, request: request, Node.init(json:))
    }

    /// A merge patch given as a Node: its nil fields are left out, so they do not change (lists
    /// given, such as `spec.taints` or `status.addresses`, replace the server's whole list).
    public func patchNode(_ name: String, mergePatch: Node, status: Bool = false) async throws(KubeError) -> Node {
        try await patchNode(name, mergePatch: Array(mergePatch.json.sortedKeys.text.utf8), status: status)
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

    enum Method: String { case GET, POST, PATCH, DELETE }

    /// `GET path` (with its query), answered 200.
    func get(_ path: String) async throws(KubeError) -> (request: String, body: [UInt8]) {
        try await send(.GET, path, expect: [200])
    }

    /// One request; a status outside `expect` becomes the ``KubeError`` the `Status` body explains.
    func send(
        _ method: Method, _ path: String, body: [UInt8]? = nil, contentType: String? = nil, expect: Set<Int>
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
        var headers: [(name: String, value: String)] = [
            ("Accept", "application/json"), ("User-Agent", "nodeboot"), ("Authorization", "Bearer \(bearer)"),
        ]
        if body != nil { headers.append(("Content-Type", contentType ?? "application/json")) }
        guard let target = URL(string: url) else {
            throw KubeError(.configuration, request: request, message: "not a URL: \(url)")
        }
        let response: HTTPResponse
        do {
            response = try await http.send(
                HTTPRequest(method: method.rawValue, url: target, headers: headers, body: body ?? []),
                timeout: requestTimeout)
        } catch {
            throw Self.classify(error, request: request, host: host)
        }
        guard expect.contains(response.status) else {
            throw Self.statusError(response.status, response.body, request: request)
        }
        return (request, response.body)
    }

    /// The API server's `Status` body, for the message and reason.
    static func statusError(_ status: Int, _ body: [UInt8], request: String) -> KubeError {
        let parsed = try? JSONObject(parsing: body)  // not a Status: use the bytes
        var message = parsed?["message"]?.string ?? ""
        if message.isEmpty {
            let text = String(decoding: body.prefix(300), as: UTF8.self).filter { !$0.isNewline }
            message = text.isEmpty ? "(no message)" : text
        }
        let reason = parsed?["reason"]?.string.flatMap { $0.isEmpty ? nil : $0 }
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

    /// An answer read as `what` by `read`; one that is not JSON, or not of that shape, is an invalid response.
    static func decode<T>(
        _ what: String, _ body: [UInt8], request: String, _ read: (JSONObject) throws(JSONShapeError) -> T
    ) throws(KubeError) -> T {
        do {
            return try read(JSONObject(parsing: body))
        } catch {
            let start = String(decoding: body.prefix(80), as: UTF8.self).filter { !$0.isNewline }
            throw KubeError(
                .invalidResponse, request: request,
                message: "the answer is not a \(what) (\(body.count) bytes starting '\(start)'): \(error)")
        }
    }

    // MARK: Error classification

    /// Sorts a transport error into what an operator can act on.
    static func classify(_ error: any Error, request: String, host: String) -> KubeError {
        switch error {
        case let error as KubeError:
            return error
        case is CancellationError:
            return KubeError(.cancelled, request: request, message: "cancelled")
        case let error as TransportError:
            switch error.kind {
            case .timeout:
                return KubeError(.unreachable(.timeout), request: request, message: error.detail)
            case .dns:
                return KubeError(.unreachable(.dns), request: request, message: error.detail)
            case .refused:
                return KubeError(
                    .unreachable(.connectionRefused), request: request,
                    message: "\(error.detail) (nothing listens there)")
            case .connection:
                return KubeError(.unreachable(.connection), request: request, message: error.detail)
            case .responseTooLarge:
                return KubeError(.invalidResponse, request: request, message: "the answer is too large (\(error.detail))")
            case .certificate:
                return KubeError(
                    .tls, request: request,
                    message:
                        "TLS certificate verification failed: the certificate of \(host) is not signed by the trusted CA, or is not for \(host) (\(error.detail))"
                )
            case .tls:
                return KubeError(.tls, request: request, message: "the TLS handshake with \(host) failed (\(error.detail))")
            }
        default:
            return KubeError(.unreachable(.connection), request: request, message: "\(error)")
        }
    }
}
