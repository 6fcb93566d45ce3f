public import FoundationEssentials
public import SigV4

extension AWSClient {
    /// Lifetime of the presigned URL, as aws-iam-authenticator and `aws eks get-token` sign it.
    public static let presignExpiry = 60

    /// A presigned `sts:GetCallerIdentity` URL, signed over `host;x-k8s-aws-id` with the cluster
    /// name: the body of an EKS bearer token. Byte-identical to botocore's for the same inputs.
    public func presignedGetCallerIdentityURL(clusterName: String, date: Date) async throws -> String {
        let endpoint = try endpoints.endpoint(for: .sts, region: region)
        let credentials = try await credentials.credentials()
        return Self.presignedGetCallerIdentityURL(
            endpoint: endpoint, credentials: credentials, clusterName: clusterName, date: date)
    }

    /// The pure part of `presignedGetCallerIdentityURL`.
    public static func presignedGetCallerIdentityURL(
        endpoint: ServiceEndpoint, credentials: SigV4Credentials, clusterName: String, date: Date
    ) -> String {
        let host = endpoint.url.host ?? ""
        let hostHeader = endpoint.url.port.map { "\(host):\($0)" } ?? host
        let signer = SigV4Signer(credentials: credentials, region: endpoint.signingRegion, service: "sts")
        let path = endpoint.url.path.isEmpty ? "/" : endpoint.url.path
        let query = signer.presignedQuery(
            SigV4Request(
                method: "GET", path: path,
                query: [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
                headers: [("host", hostHeader), ("x-k8s-aws-id", clusterName)]),
            date: date, expires: presignExpiry)
        let scheme = endpoint.url.scheme ?? "https"
        return "\(scheme)://\(hostHeader)\(path)?\(query)"
    }
}
