import FoundationEssentials
public import Support

/// The AWS effects of one agent run: the environment it reads, the IMDS client (direct, never
/// proxied), the API transport (proxied per `HTTP(S)_PROXY`/`NO_PROXY`), the retry policies.
/// Create one, use it, `shutdown()` it.
public final class AWSSession: Sendable {
    public let environment: [String: String]
    public let imds: IMDSClient
    public let apiPolicy: RetryPolicy
    let imdsTransport: any HTTPTransport
    let apiTransport: ProxyingTransport
    /// The chain is resolved once per session; concurrent callers share the resolution.
    let provider = ExpiringValue<any CredentialProvider>()

    public init(
        environment: [String: String], imdsPolicy: RetryPolicy = .imds, apiPolicy: RetryPolicy? = nil,
        imdsConnectTimeout: Duration = .milliseconds(250)
    ) throws(AWSError) {
        self.environment = environment
        let endpoint = try IMDSClient.endpoint(environment: environment)
        // IMDS is plain HTTP on a link-local address (an https endpoint given by hand goes through TLS).
        imdsTransport =
            endpoint.hasPrefix("http://")
            ? PlainHTTPTransport(connectTimeout: imdsConnectTimeout)
            : AsyncHTTPTransport(connectTimeout: imdsConnectTimeout)
        imds = IMDSClient(endpoint: endpoint, transport: imdsTransport, policy: imdsPolicy)
        self.apiPolicy = apiPolicy ?? .aws(environment: environment)
        apiTransport = ProxyingTransport(settings: ProxySettings(environment: environment))
    }

    public func shutdown() async {
        await imdsTransport.shutdown()
        await apiTransport.shutdown()
    }

    /// Where the region came from, for `facts`.
    public enum RegionSource: String, Sendable, Codable {
        case environment = "AWS_REGION"
        case defaultEnvironment = "AWS_DEFAULT_REGION"
        case imds = "IMDS identity document"
    }

    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the identity document's region.
    public func region(identity: InstanceIdentity) -> (region: String, source: RegionSource) {
        if let region = environment["AWS_REGION"], !region.isEmpty { return (region, .environment) }
        if let region = environment["AWS_DEFAULT_REGION"], !region.isEmpty { return (region, .defaultEnvironment) }
        return (identity.region, .imds)
    }

    /// The credential chain's provider (resolved once per session).
    public func credentialProvider() async throws -> any CredentialProvider {
        try await provider.value { [environment, imds] in
            (try await CredentialChain.resolve(environment: environment, imds: imds), .distantFuture)
        }
    }

    /// A client for EC2/EKS/STS in `region`, with the chain's credentials.
    public func client(region: String) async throws -> AWSClient {
        AWSClient(
            region: region, credentials: try await credentialProvider(), transport: apiTransport,
            endpoints: EndpointResolver(environment: environment), policy: apiPolicy)
    }
}
