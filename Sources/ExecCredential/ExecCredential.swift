public import AWS
public import FoundationEssentials
public import SigV4

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
        struct Info: Decodable {
            var apiVersion: String?
            var kind: String?
        }
        let info: Info
        do {
            info = try JSONDecoder().decode(Info.self, from: Data(execInfo.utf8))
        } catch {
            throw ExecInfoError("KUBERNETES_EXEC_INFO is not an ExecCredential JSON object (\(error))")
        }
        if let kind = info.kind, kind != "ExecCredential" {
            throw ExecInfoError("KUBERNETES_EXEC_INFO has kind '\(kind)', not ExecCredential")
        }
        guard let version = info.apiVersion, !version.isEmpty else { return v1beta1 }
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
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        // Civil-from-days (Howard Hinnant's algorithm).
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        func two(_ value: Int64) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return
            "\(year)-\(two(month))-\(two(day))T\(two(secondOfDay / 3600)):\(two(secondOfDay % 3600 / 60)):\(two(secondOfDay % 60))Z"
    }
}

/// `KUBERNETES_EXEC_INFO` that cannot be honoured.
public struct ExecInfoError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
