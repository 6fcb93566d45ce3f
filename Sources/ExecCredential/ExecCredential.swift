public import AWS
public import FoundationEssentials
public import SigV4
import Support
import WireJSON

/// An EKS bearer token and the `ExecCredential` document client-go reads from an exec plugin.
///
/// The token is `k8s-aws-v1.` + unpadded base64url of a presigned STS `GetCallerIdentity` URL,
/// signed over `host;x-k8s-aws-id` with the cluster name and `X-Amz-Expires=60`
/// (byte-identical to botocore's `aws eks get-token`). STS honours such a URL for 15 minutes, so
/// the credential says it expires after 14.
public enum ExecCredential {
    public static let tokenPrefix = "k8s-aws-v1."
    public static let v1beta1 = "client.authentication.k8s.io/v1beta1"
    public static let v1 = "client.authentication.k8s.io/v1"
    public static let v1alpha1 = "client.authentication.k8s.io/v1alpha1"
    /// 15 minutes of STS validity minus one of slack, as both reference tools.
    public static let lifetime: Duration = .seconds(14 * 60)

    /// `k8s-aws-v1.` + base64url without padding.
    public static func token(presignedURL: String) -> String {
        tokenPrefix
            + Data(presignedURL.utf8).base64EncodedString()
            .replacing("+", with: "-").replacing("/", with: "_").replacing("=", with: "")
    }

    /// The STS endpoint the token names: the regional host (`sts.<region>.amazonaws.com`, the
    /// partition's suffix for `cn-*`/GovCloud/…), or `sts.amazonaws.com` signed for us-east-1
    /// with `AWS_STS_REGIONAL_ENDPOINTS=legacy` in us-east-1. `AWS_ENDPOINT_URL*` never apply:
    /// the API server's authenticator accepts only real STS hosts.
    public static func stsEndpoint(region: String, environment: [String: String]) throws -> ServiceEndpoint {
        var clean = environment.filter { !$0.key.hasPrefix("AWS_ENDPOINT_URL") }
        clean["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"] = "true"
        return try EndpointResolver(environment: clean).endpoint(for: .sts, region: region)
    }

    /// The token for `clusterName` with these credentials at `date`.
    public static func token(
        clusterName: String, region: String, credentials: SigV4Credentials, date: Date, environment: [String: String]
    ) throws -> String {
        let endpoint = try stsEndpoint(region: region, environment: environment)
        return token(
            presignedURL: AWSClient.presignedGetCallerIdentityURL(
                endpoint: endpoint, credentials: credentials, clusterName: clusterName, date: date))
    }

    /// The apiVersion the caller asks for in `KUBERNETES_EXEC_INFO` (v1beta1 when unset).
    public static func requestedAPIVersion(execInfo: String?) throws(ExecInfoError) -> String {
        guard let execInfo, !execInfo.allSatisfy(\.isWhitespace) else { return v1beta1 }
        let kind: String?
        let apiVersion: String?
        do {
            let info = try JSONObject(parsing: execInfo.utf8)
            kind = try info.optionalString("kind")
            apiVersion = try info.optionalString("apiVersion")
        } catch {
            throw ExecInfoError("KUBERNETES_EXEC_INFO is not an ExecCredential JSON object (\(error))")
        }
        if let kind, kind != "ExecCredential" {
            throw ExecInfoError("KUBERNETES_EXEC_INFO has kind '\(kind)', not ExecCredential")
        }
        guard let version = apiVersion, !version.isEmpty else { return v1beta1 }
        guard [v1, v1beta1, v1alpha1].contains(version) else {
            throw ExecInfoError(
                "KUBERNETES_EXEC_INFO asks for apiVersion '\(version)'; supported: \(v1), \(v1beta1), \(v1alpha1)")
        }
        return version
    }

    /// The ExecCredential JSON (one line, newline-terminated).
    public static func document(apiVersion: String, token: String, expiration: Date) -> String {
        "{\"kind\":\"ExecCredential\",\"apiVersion\":\"\(apiVersion)\",\"spec\":{},\"status\":{\"expirationTimestamp\":\"\(timestamp(expiration))\",\"token\":\"\(token)\"}}\n"
    }

    /// RFC 3339 in UTC with second precision (`2024-01-01T00:14:00Z`).
    public static func timestamp(_ date: Date) -> String {
        UTCTime.iso8601(date)
    }
}

/// `KUBERNETES_EXEC_INFO` that cannot be honoured.
public struct ExecInfoError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
