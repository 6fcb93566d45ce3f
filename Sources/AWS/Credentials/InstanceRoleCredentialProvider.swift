public import FoundationEssentials
public import SigV4

/// The instance role's credentials from IMDS (`iam/security-credentials/<role>`), cached and
/// renewed `refreshMargin` before they expire (or at half their lifetime, if that is sooner),
/// with at most one refresh in flight.
public actor InstanceRoleCredentialProvider: CredentialProvider {
    public nonisolated let roleName: String
    let imds: IMDSClient
    let refreshMargin: TimeInterval
    let now: @Sendable () -> Date
    var cached: Fetched?
    var refresh: Task<Fetched, any Error>?

    struct Fetched: Sendable {
        var credentials: SigV4Credentials
        var expiration: Date
        /// When to fetch again: `refreshMargin` before expiry, or half-way for short-lived credentials.
        var refreshAt: Date
    }

    public init(
        roleName: String, imds: IMDSClient, refreshMargin: TimeInterval = 10 * 60,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.roleName = roleName
        self.imds = imds
        self.refreshMargin = refreshMargin
        self.now = now
    }

    /// The provider for the instance's role, or `nil` when no role is attached.
    public static func discover(imds: IMDSClient) async throws -> InstanceRoleCredentialProvider? {
        guard let role = try await imds.roleName() else { return nil }
        return InstanceRoleCredentialProvider(roleName: role, imds: imds)
    }

    public nonisolated var source: String { "instance role \(roleName) (IMDS)" }

    /// When the cached credentials expire (`nil` before the first fetch).
    public var expiration: Date? { cached?.expiration }

    public func credentials() async throws -> SigV4Credentials {
        if let cached, now() < cached.refreshAt {
            return cached.credentials
        }
        if let refresh { return try await refresh.value.credentials }
        let task = Task { try await self.fetch() }
        refresh = task
        defer { refresh = nil }
        let fresh = try await task.value
        cached = fresh
        return fresh.credentials
    }

    struct Document: Decodable {
        var Code: String?
        var AccessKeyId: String?
        var SecretAccessKey: String?
        var Token: String?
        var Expiration: String?
        var Message: String?
    }

    func fetch() async throws -> Fetched {
        let fetchedAt = now()
        let path = "/latest/meta-data/iam/security-credentials/\(roleName)"
        let body = try await imds.get(path, retryNotFound: true)
        func malformed(_ why: String) -> AWSError {
            AWSError(
                .malformedResponse, operation: "IMDS GET \(path)", endpoint: imds.endpoint,
                message: "the role credentials document \(why)")
        }
        let document: Document
        do {
            document = try JSONDecoder().decode(Document.self, from: Data(body))
        } catch {
            throw malformed("is not JSON")
        }
        guard document.Code == nil || document.Code == "Success" else {
            throw AWSError(
                .noCredentials, operation: "IMDS GET \(path)", endpoint: imds.endpoint,
                message: "the metadata service reports \(document.Code ?? "-"): \(document.Message ?? "")",
                hint: "check the instance profile attached to this instance")
        }
        guard let id = document.AccessKeyId, let secret = document.SecretAccessKey else {
            throw malformed("has no AccessKeyId/SecretAccessKey")
        }
        guard let text = document.Expiration, let expiration = Self.parseExpiration(text) else {
            throw malformed("has no valid Expiration")
        }
        let lifetime = max(0, expiration.timeIntervalSince(fetchedAt))
        return Fetched(
            credentials: SigV4Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: document.Token),
            expiration: expiration, refreshAt: expiration.addingTimeInterval(-min(refreshMargin, lifetime / 2)))
    }

    static func parseExpiration(_ text: String) -> Date? {
        if let date = try? Date(text, strategy: .iso8601) { return date }
        // Fractional seconds: try without them. (`try?`: a parse failure just means "not this format".)
        return try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
