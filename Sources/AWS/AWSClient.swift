public import FoundationEssentials
import SigV4
public import Support
import WireJSON

/// Signed calls to EC2, EKS and STS: endpoint resolution, SigV4, the retry policy, and errors
/// turned into `AWSError` with the service's code, message and request id.
public struct AWSClient: Sendable {
    public var region: String
    public var credentials: any CredentialProvider
    public var transport: any HTTPTransport
    public var endpoints: EndpointResolver
    public var policy: RetryPolicy
    public var now: @Sendable () -> Date

    public init(
        region: String, credentials: any CredentialProvider, transport: any HTTPTransport,
        endpoints: EndpointResolver, policy: RetryPolicy, now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.region = region
        self.credentials = credentials
        self.transport = transport
        self.endpoints = endpoints
        self.policy = policy
        self.now = now
    }

    /// How a service spells its errors.
    enum ErrorProtocol {
        /// EC2 `<Response><Errors><Error>` and STS `<ErrorResponse><Error>`.
        case query
        /// `x-amzn-ErrorType` header and a JSON `message`.
        case restJSON
    }

    /// One API operation to call.
    struct Call {
        var service: AWSService
        var name: String
        /// IAM action named in permission hints.
        var action: String
        var method: String
        var path: String
        var body: [UInt8]
        var contentType: String?
        var errorProtocol: ErrorProtocol
        /// Hint for `ResourceNotFoundException`.
        var notFoundHint: String?
    }

    /// Sends `call` with retries; returns the 2xx response or throws `AWSError`.
    func perform(_ call: Call) async throws -> HTTPResponse {
        let endpoint = try endpoints.endpoint(for: call.service, region: region)
        let operation = "\(call.service.rawValue.uppercased()) \(call.name)"
        let base =
            endpoint.url.absoluteString.hasSuffix("/")
            ? String(endpoint.url.absoluteString.dropLast()) : endpoint.url.absoluteString
        guard let url = URL(string: base + call.path), let host = url.host else {
            throw AWSError(.configuration, operation: operation, endpoint: base, message: "cannot build the request URL")
        }
        let hostHeader = url.port.map { "\(host):\($0)" } ?? host
        do {
            return try await policy.run(
                operation: { _, timeout in
                    // Credentials are read per attempt: an instance role may have rotated them.
                    let signer = SigV4Signer(
                        credentials: try await credentials.credentials(), region: endpoint.signingRegion,
                        service: call.service.signingName)
                    var headers: [(name: String, value: String)] = [("Host", hostHeader)]
                    if let contentType = call.contentType { headers.append(("Content-Type", contentType)) }
                    let signed = signer.sign(
                        SigV4Request(
                            method: call.method, path: url.path.isEmpty ? "/" : url.path, headers: headers, body: call.body),
                        date: now())
                    let response = try await transport.send(
                        HTTPRequest(method: call.method, url: url, headers: signed.headers, body: call.body), timeout: timeout)
                    guard (200..<300).contains(response.status) else {
                        throw serviceError(response, call: call, operation: operation, endpoint: base)
                    }
                    return response
                },
                classify: { error in
                    switch error {
                    case let error as AWSError: error.isRetryable ? .retry : .fail
                    case let error as TransportError: error.kind == .responseTooLarge ? .fail : .retry
                    default: .fail
                    }
                })
        } catch {
            throw AWSError.final(
                error, operation: operation, endpoint: base,
                unreachableHint:
                    "check the network path to the endpoint (security groups, VPC endpoints, HTTPS_PROXY/NO_PROXY) and AWS_ENDPOINT_URL"
            )
        }
    }

    func serviceError(_ response: HTTPResponse, call: Call, operation: String, endpoint: String) -> AWSError {
        var code: String?
        var message: String?
        var requestID = response.header("x-amzn-RequestId") ?? response.header("x-amz-request-id")
        switch call.errorProtocol {
        case .query:
            // The XML parse may fail on a proxy's HTML error page: then only the status is known.
            if let root = try? XMLReader.parse(response.body) {
                let error = root.path("Errors", "Error") ?? root.child("Error")
                code = error?.string("Code")
                message = error?.string("Message")
                requestID = root.string("RequestID") ?? root.string("RequestId") ?? requestID
            }
        case .restJSON:
            if let header = response.header("x-amzn-ErrorType") {
                code = String(header.split(separator: ":").first ?? Substring(header))
            }
            // A body that is not JSON leaves the message empty; the status still says what happened.
            if let body = try? JSONObject(parsing: response.body) {
                message = body["message"]?.string ?? body["Message"]?.string
                if code == nil, let type = body["__type"]?.string {
                    code = String(type.split(separator: "#").last ?? Substring(type))
                }
            }
        }
        if code == nil && response.status == 429 { code = "TooManyRequestsException" }
        let fallback = response.body.isEmpty ? "empty response" : "unreadable error response"
        return AWSError(
            code == nil ? .malformedResponse : .service, operation: operation, endpoint: endpoint,
            message: message ?? "HTTP \(response.status) with \(fallback)", code: code, status: response.status,
            requestID: requestID,
            hint: code.flatMap { AWSError.hint(code: $0, action: call.action, context: call.notFoundHint) })
    }

    /// `application/x-www-form-urlencoded` body of a query-protocol call.
    static func formBody(_ parameters: [(String, String)]) -> [UInt8] {
        Array(parameters.map { "\(SigV4Signer.uriEncode($0.0))=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&").utf8)
    }

    /// The endpoint of a service as text, for messages.
    func endpointText(_ service: AWSService) -> String {
        // An unresolvable endpoint fails the call itself with a clear error; here "-" is enough.
        (try? endpoints.endpoint(for: service, region: region).url.absoluteString) ?? "-"
    }

    func malformed(_ call: String, endpoint: String, _ why: String) -> AWSError {
        AWSError(.malformedResponse, operation: call, endpoint: endpoint, message: why)
    }
}
