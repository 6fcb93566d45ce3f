public import SigV4

/// Where credentials come from. `source` is for people: it never contains a secret.
public protocol CredentialProvider: Sendable {
    var source: String { get }
    func credentials() async throws -> SigV4Credentials
}
