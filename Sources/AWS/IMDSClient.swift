import FoundationEssentials
public import Support

/// IMDSv2 client: a session token from `PUT /latest/api/token`, sent on every request, renewed
/// before it expires and once on a 401. No IMDSv1 fallback. Never goes through a proxy (the
/// transport it is given must be a direct one).
public actor IMDSClient {
    public static let defaultEndpoint = "http://169.254.169.254"
    public static let ipv6Endpoint = "http://[fd00:ec2::254]"
    /// Token lifetime asked for (the maximum IMDS allows, as the AWS CLI asks).
    public static let tokenTTLSeconds = 21600

    public nonisolated let endpoint: String
    let transport: any HTTPTransport
    let policy: RetryPolicy
    let token = ExpiringValue<String>()

    public init(endpoint: String, transport: any HTTPTransport, policy: RetryPolicy = .imds) {
        self.endpoint = endpoint.hasSuffix("/") ? String(endpoint.dropLast()) : endpoint
        self.transport = transport
        self.policy = policy
    }

    /// The same endpoint and transport with another retry policy: a short one for a caller that
    /// polls and bounds the whole wait itself.
    public nonisolated func with(policy: RetryPolicy) -> IMDSClient {
        IMDSClient(endpoint: endpoint, transport: transport, policy: policy)
    }

    /// The endpoint from `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE`
    /// (`IPv4`/`IPv6`), else the IPv4 link-local address.
    public static func endpoint(environment: [String: String]) throws(AWSError) -> String {
        if environment["AWS_EC2_METADATA_DISABLED"]?.lowercased() == "true" {
            throw AWSError(
                .configuration, operation: "IMDS", endpoint: "-", message: "the metadata service is disabled",
                hint: "unset AWS_EC2_METADATA_DISABLED")
        }
        if let value = environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"], !value.isEmpty {
            guard let url = URL(string: value), let scheme = url.scheme, scheme == "http" || scheme == "https",
                url.host != nil
            else {
                throw AWSError(
                    .configuration, operation: "IMDS", endpoint: value,
                    message: "AWS_EC2_METADATA_SERVICE_ENDPOINT is not an http(s) URL",
                    hint: "use a URL like http://169.254.169.254")
            }
            return value
        }
        switch environment["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE"]?.lowercased() {
        case nil, "", "ipv4": return defaultEndpoint
        case "ipv6": return ipv6Endpoint
        case let other?:
            throw AWSError(
                .configuration, operation: "IMDS", endpoint: "-",
                message: "AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE '\(other)' is not IPv4 or IPv6",
                hint: "set it to IPv4 or IPv6")
        }
    }

    /// The body of a metadata path. Throws `AWSError` with kind `.notFound` on 404.
    /// - Parameter retryNotFound: also retry 404s (instance-role credentials can take a moment to
    ///   appear after boot; nodeadm retries them for the same reason).
    public func get(_ path: String, retryNotFound: Bool = false) async throws -> [UInt8] {
        let operation = "IMDS GET \(path)"
        do {
            return try await policy.run(
                operation: { _, timeout in try await attempt(path, timeout: timeout) },
                classify: { error in
                    switch error {
                    case is TokenRejected: return .retryOnceImmediately
                    case let error as AWSError where error.kind == .notFound: return retryNotFound ? .retry : .fail
                    case let error as AWSError: return error.isRetryable ? .retry : .fail
                    case let error as TransportError: return error.kind == .responseTooLarge ? .fail : .retry
                    default: return .fail
                    }
                })
        } catch {
            throw AWSError.final(
                error, operation: operation, endpoint: endpoint,
                unreachableHint:
                    "is this an EC2 instance with the metadata service enabled? Check the instance's metadata options, or AWS_EC2_METADATA_SERVICE_ENDPOINT"
            )
        }
    }

    /// The text of a path; `nil` when IMDS has no such path.
    public func string(_ path: String) async throws -> String? {
        do {
            return String(decoding: try await get(path), as: UTF8.self)
        } catch let error as AWSError where error.kind == .notFound {
            return nil
        }
    }

    /// The text of a path that must exist.
    public func require(_ path: String) async throws -> String {
        String(decoding: try await get(path), as: UTF8.self)
    }

    /// A 401: the session token is no longer valid.
    struct TokenRejected: Error, CustomStringConvertible {
        var description: String { "the metadata service rejected the session token (401)" }
    }

    func attempt(_ path: String, timeout: Duration) async throws -> [UInt8] {
        let token = try await self.token.value { try await self.fetchToken(timeout: timeout) }
        guard let url = URL(string: endpoint + path) else {
            throw AWSError(.configuration, operation: "IMDS GET \(path)", endpoint: endpoint, message: "not a valid URL")
        }
        let response = try await transport.send(
            HTTPRequest(method: "GET", url: url, headers: [("X-aws-ec2-metadata-token", token)]), timeout: timeout)
        switch response.status {
        case 200:
            return response.body
        case 401:
            await self.token.invalidate()
            throw TokenRejected()
        case 404:
            throw AWSError(.notFound, operation: "IMDS GET \(path)", endpoint: endpoint, message: "no such path", status: 404)
        default:
            throw AWSError(
                .service, operation: "IMDS GET \(path)", endpoint: endpoint,
                message: "unexpected answer \(response.status)", status: response.status)
        }
    }

    /// A new session token and when to renew it.
    func fetchToken(timeout: Duration) async throws -> (value: String, refreshAt: Date) {
        guard let url = URL(string: endpoint + "/latest/api/token") else {
            throw AWSError(
                .configuration, operation: "IMDS PUT /latest/api/token", endpoint: endpoint, message: "not a valid URL")
        }
        let requested = Date()
        let response = try await transport.send(
            HTTPRequest(
                method: "PUT", url: url, headers: [("X-aws-ec2-metadata-token-ttl-seconds", String(Self.tokenTTLSeconds))]),
            timeout: timeout)
        switch response.status {
        case 200 where !response.body.isEmpty:
            let ttl = response.header("X-aws-ec2-metadata-token-ttl-seconds").flatMap(Int.init) ?? Self.tokenTTLSeconds
            // Renew a minute early (or at half life for short tokens) so a request never carries a dying token.
            let margin = min(60, ttl / 2)
            return (response.text, requested.addingTimeInterval(TimeInterval(ttl - margin)))
        case 403, 404, 405:
            throw AWSError(
                .service, operation: "IMDS PUT /latest/api/token", endpoint: endpoint,
                message: "the metadata service refused an IMDSv2 session token", status: response.status,
                hint:
                    "nodeboot uses IMDSv2 only: enable the instance's metadata endpoint (HttpEndpoint=enabled) and, in a container, a hop limit of 2"
            )
        default:
            throw AWSError(
                .service, operation: "IMDS PUT /latest/api/token", endpoint: endpoint,
                message: "unexpected answer \(response.status)", status: response.status)
        }
    }
}
