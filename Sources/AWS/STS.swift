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

/// Temporary credentials from `sts:AssumeRole`.
public struct AssumedRole: Sendable {
    public var credentials: SigV4Credentials
    public var expiration: Date?
}

extension AWSClient {
    /// `sts:AssumeRole` (query protocol): temporary credentials for `roleARN`.
    public func assumeRole(roleARN: String, sessionName: String, durationSeconds: Int = 900) async throws -> AssumedRole {
        let operation = "STS AssumeRole"
        let call = Call(
            service: .sts, name: "AssumeRole", action: "sts:AssumeRole", method: "POST", path: "/",
            body: Self.formBody([
                ("Action", "AssumeRole"), ("Version", "2011-06-15"), ("RoleArn", roleARN),
                ("RoleSessionName", sessionName), ("DurationSeconds", String(durationSeconds)),
            ]),
            contentType: "application/x-www-form-urlencoded; charset=utf-8", errorProtocol: .query)
        let response = try await perform(call)
        let root: XMLElement
        do {
            root = try XMLReader.parse(response.body)
        } catch {
            throw malformed(operation, endpoint: endpointText(.sts), "the response is not XML (\(error))")
        }
        guard let result = root.path("AssumeRoleResult", "Credentials"),
            let accessKeyId = result.string("AccessKeyId"), let secret = result.string("SecretAccessKey")
        else {
            throw malformed(operation, endpoint: endpointText(.sts), "the response has no Credentials")
        }
        let expiration = result.string("Expiration").flatMap { try? Date($0, strategy: .iso8601) }
        return AssumedRole(
            credentials: SigV4Credentials(
                accessKeyID: accessKeyId, secretAccessKey: secret, sessionToken: result.string("SessionToken")),
            expiration: expiration)
    }
}
