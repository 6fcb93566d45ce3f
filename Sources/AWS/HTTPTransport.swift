public import FoundationEssentials

/// One HTTP exchange, as the AWS layer needs it: small bodies, no streaming.
public struct HTTPRequest: Sendable {
    public var method: String
    public var url: URL
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(method: String, url: URL, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// Sends one request. Implementations throw `TransportError` for anything below HTTP
/// (refused, reset, timed out), so callers can tell "the server answered" from "it did not".
public protocol HTTPTransport: Sendable {
    func send(_ request: HTTPRequest, timeout: Duration) async throws -> HTTPResponse
    /// Releases connections and threads; the transport is not used afterwards.
    func shutdown() async
}

extension HTTPTransport {
    public func shutdown() async {}
}

/// The request never got an HTTP answer.
public struct TransportError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable {
        case timeout, connection, responseTooLarge
        /// The host name does not resolve.
        case dns
        /// Nothing listens on the port.
        case refused
        /// The TLS handshake failed for another reason than the certificate (the detail says why).
        case tls
        /// The server's certificate was not trusted: not signed by the trusted CA, or not for the host.
        case certificate
    }
    public var kind: Kind
    public var url: String
    public var detail: String
    /// The HTTP proxy the request went through (`HTTP(S)_PROXY`), when one did.
    public var proxy: String?

    public init(_ kind: Kind, url: String, detail: String, proxy: String? = nil) {
        self.kind = kind
        self.url = url
        self.detail = detail
        self.proxy = proxy
    }

    public var description: String {
        let via = proxy.map { " through the proxy \($0)" } ?? ""
        return switch kind {
        case .timeout: "no answer from \(url)\(via) in time (\(detail))"
        case .connection, .dns, .refused: "cannot reach \(url)\(via): \(detail)"
        case .tls, .certificate: "TLS with \(url)\(via) failed: \(detail)"
        case .responseTooLarge: "response from \(url) is too large (\(detail))"
        }
    }
}
