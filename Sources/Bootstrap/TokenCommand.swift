import AWS
import ExecCredential
import FoundationEssentials
import SigV4
import Support
import WireJSON

#if canImport(Glibc)
    import Glibc
#endif

/// `nodeboot token` (and `aws-iam-authenticator token`): the kubelet's exec credential plugin.
/// The executable parses the flags and prints what this returns.
public enum TokenCommand {
    /// The ExecCredential document with a k8s-aws-v1 token for `clusterName`.
    public static func document(
        clusterName: String, region: String?, roleARN: String?, sessionName: String, environment: [String: String]
    ) async throws(NodeBootError) -> String {
        let apiVersion: String
        do {
            apiVersion = try ExecCredential.requestedAPIVersion(execInfo: environment["KUBERNETES_EXEC_INFO"])
        } catch {
            throw NodeBootError(.input, "\(error)", hint: "run nodeboot token from a kubeconfig exec block")
        }
        guard !clusterName.isEmpty, !clusterName.contains(where: { $0.isWhitespace || $0.isNewline }) else {
            throw NodeBootError(.input, "--cluster-name '\(clusterName)' is not a cluster name")
        }
        let now = Date()
        // (Static keys with a known region took `fastPath` before the argument parser ran.)
        let (credentials, tokenRegion) = try await resolve(
            environment: environment, region: region, roleARN: roleARN, sessionName: sessionName)
        let token: String
        do {
            token = try ExecCredential.token(
                clusterName: clusterName, region: tokenRegion, credentials: credentials, date: now, environment: environment)
        } catch {
            throw NodeBootError(.input, "no STS endpoint for region '\(tokenRegion)': \(error)")
        }
        return ExecCredential.document(apiVersion: apiVersion, token: token, expiration: now.addingTimeInterval(14 * 60))
    }

    /// Credentials from the chain (environment, then the instance role), optionally assumed
    /// into `roleARN`; the region from the flag, the environment, IMDS, else us-east-1.
    static func resolve(environment: [String: String], region: String?, roleARN: String?, sessionName: String)
        async throws(NodeBootError) -> (SigV4Credentials, String)
    {
        let session = try Sessions().open(environment, imdsDeadline: .seconds(10))
        do {
            var tokenRegion = region ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"] ?? ""
            if tokenRegion.isEmpty {
                let document = try? await session.imds.get("/latest/dynamic/instance-identity/document")
                tokenRegion = document.flatMap { try? JSONObject(parsing: $0).string("region") } ?? "us-east-1"
            }
            let provider = try await session.credentialProvider()
            var credentials = try await provider.credentials()
            if let roleARN {
                let client = try await session.client(region: tokenRegion)
                credentials = try await client.assumeRole(roleARN: roleARN, sessionName: sessionName).credentials
            }
            await session.shutdown()
            return (credentials, tokenRegion)
        } catch {
            await session.shutdown()
            throw NodeBootError(.aws, "cannot get a token: \(error)", hint: (error as? AWSError)?.hint)
        }
    }
}

extension TokenCommand {
    /// The kubelet runs the token helper every few minutes; this path needs neither the argument
    /// parser nor the network: `token --cluster-name NAME [--region R]` (or aws-iam-authenticator's
    /// `token -i NAME [--region R]`) with static keys and a region in the environment. Anything
    /// else (a role to assume, IMDS credentials, unknown flags, errors) returns nil and goes the
    /// ordinary way.
    public static func fastPath(_ arguments: [String], invokedAs: String) -> String? {
        guard arguments.first == "token" else { return nil }
        let nameFlags = invokedAs == "aws-iam-authenticator" ? ["-i", "--cluster-id"] : ["--cluster-name"]
        var cluster: String?
        var region: String?
        var index = 1
        while index < arguments.count {
            var flag = arguments[index]
            var value: String?
            if let equals = flag.firstIndex(of: "=") {
                value = String(flag[flag.index(after: equals)...])
                flag = String(flag[..<equals])
            } else if index + 1 < arguments.count {
                index += 1
                value = arguments[index]
            }
            guard let value else { return nil }
            if nameFlags.contains(flag) {
                cluster = value
            } else if flag == "--region" {
                region = value
            } else {
                return nil
            }
            index += 1
        }
        // Only the variables this path reads (ProcessInfo's whole environment costs more).
        var environment: [String: String] = [:]
        for name in [
            "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_REGION",
            "AWS_DEFAULT_REGION", "AWS_STS_REGIONAL_ENDPOINTS", "AWS_USE_FIPS_ENDPOINT", "KUBERNETES_EXEC_INFO",
        ] {
            if let value = getenv(name).map({ String(cString: $0) }), !value.isEmpty { environment[name] = value }
        }
        guard let cluster, !cluster.isEmpty, !cluster.contains(where: { $0.isWhitespace }),
            let credentials = EnvironmentCredentialProvider(environment: environment)?.staticCredentials,
            let tokenRegion = region ?? environment["AWS_REGION"] ?? environment["AWS_DEFAULT_REGION"],
            let apiVersion = try? ExecCredential.requestedAPIVersion(execInfo: environment["KUBERNETES_EXEC_INFO"])
        else { return nil }
        let now = Date()
        guard
            let token = try? ExecCredential.token(
                clusterName: cluster, region: tokenRegion, credentials: credentials, date: now, environment: environment)
        else { return nil }
        return ExecCredential.document(apiVersion: apiVersion, token: token, expiration: now.addingTimeInterval(14 * 60))
    }
}
