public import SigV4

/// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` and optional `AWS_SESSION_TOKEN` (or the older
/// `AWS_SECURITY_TOKEN`).
public struct EnvironmentCredentialProvider: CredentialProvider {
    let value: SigV4Credentials

    /// `nil` when the environment has no complete key pair.
    public init?(environment: [String: String]) {
        guard let id = environment["AWS_ACCESS_KEY_ID"], !id.isEmpty,
            let secret = environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty
        else { return nil }
        let token = environment["AWS_SESSION_TOKEN"] ?? environment["AWS_SECURITY_TOKEN"]
        value = SigV4Credentials(
            accessKeyID: id, secretAccessKey: secret, sessionToken: token?.isEmpty == false ? token : nil)
    }

    public var source: String { "environment (AWS_ACCESS_KEY_ID \(value.accessKeyID))" }

    public func credentials() async throws -> SigV4Credentials { value }

    /// The same credentials, without suspending (they are static).
    public var staticCredentials: SigV4Credentials { value }
}
