/// A Kubernetes API call that did not give the answer asked for. `request` names the call
/// (`GET https://host:443/api/v1/nodes/NAME`), `message` is the API server's `Status` message or
/// what went wrong below HTTP. Never holds the bearer token.
public struct KubeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Why a request got no HTTP answer.
    public enum Unreachable: String, Sendable, Equatable {
        /// The host name does not resolve.
        case dns
        /// Nothing listens on the port (connection refused).
        case connectionRefused
        /// No answer within the time limit (connect, TLS handshake, or the whole request).
        case timeout
        /// Anything else below HTTP: reset, closed, no route.
        case connection
    }

    public enum Kind: Sendable, Equatable {
        /// 401: the API server does not accept the token.
        case unauthorized
        /// 403: authenticated, but not allowed (`message` says what).
        case forbidden
        /// 404.
        case notFound
        /// 409 `AlreadyExists`: create of an object that exists.
        case alreadyExists
        /// 409 `Conflict`: the object changed since the `resourceVersion` given.
        case conflict
        /// Any other HTTP error status.
        case http(Int)
        /// The TLS handshake failed: the server's certificate is not signed by the trusted CA, or is
        /// not for the endpoint's host.
        case tls
        /// No HTTP answer at all.
        case unreachable(Unreachable)
        /// An answer that is not what the API returns (not JSON, not the object asked for).
        case invalidResponse
        /// The bearer token could not be obtained.
        case credentials
        /// The client cannot be built (endpoint not https, no certificate in the CA PEM).
        case configuration
        /// The node name is not one the API server accepts (``Node/isValidName(_:)``); nothing was sent.
        case invalidName
        /// The task was cancelled.
        case cancelled
    }

    public var kind: Kind
    /// `METHOD URL` of the call, or the endpoint for configuration errors.
    public var request: String
    public var message: String
    /// The `Status` reason (`Forbidden`, `AlreadyExists`, `InternalError`), when the server sent one.
    public var reason: String?

    public init(_ kind: Kind, request: String, message: String, reason: String? = nil) {
        self.kind = kind
        self.request = request
        self.message = message
        self.reason = reason
    }

    /// The HTTP status the server answered with, if it answered.
    public var status: Int? {
        switch kind {
        case .unauthorized: 401
        case .forbidden: 403
        case .notFound: 404
        case .alreadyExists, .conflict: 409
        case .http(let status): status
        default: nil
        }
    }

    /// Whether the same call may succeed later: no answer, throttling, server errors.
    public var isTransient: Bool {
        switch kind {
        case .unreachable: return true
        case .http(let status): return status == 429 || status >= 500
        default: return false
        }
    }

    public var description: String {
        switch kind {
        case .configuration:
            return "Kubernetes API client for \(request): \(message)"
        case .unreachable, .tls, .credentials, .cancelled, .invalidResponse, .invalidName:
            return "\(request): \(message)"
        default:
            let status = self.status.map { "\($0) " } ?? ""
            return "\(request): \(status)\(reason ?? "error"): \(message)"
        }
    }
}
