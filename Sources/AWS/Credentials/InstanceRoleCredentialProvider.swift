public import FoundationEssentials
public import SigV4
import Support
import WireJSON

/// The instance role's credentials from IMDS (`iam/security-credentials/<role>`), cached and
/// renewed (`ExpiringValue`) `refreshMargin` before they expire (or at half their lifetime, if that is sooner),
/// with at most one refresh in flight.
public actor InstanceRoleCredentialProvider: CredentialProvider {
    public nonisolated let roleName: String
    let imds: IMDSClient
    let refreshMargin: TimeInterval
    let now: @Sendable () -> Date
    let cache: ExpiringValue<Fetched>

    struct Fetched: Sendable {
        var credentials: SigV4Credentials
        var expiration: Date
    }

    public init(
        roleName: String, imds: IMDSClient, refreshMargin: TimeInterval = 10 * 60,
        now: @escaping @Sendable () -> Date = Date.init
    ) {
        self.roleName = roleName
        self.imds = imds
        self.refreshMargin = refreshMargin
        self.now = now
        self.cache = ExpiringValue(now: now)
    }

    /// The provider for the instance's role, or `nil` when no role is attached.
    public static func discover(imds: IMDSClient) async throws -> InstanceRoleCredentialProvider? {
        guard let role = try await imds.roleName() else { return nil }
        return InstanceRoleCredentialProvider(roleName: role, imds: imds)
    }

    public nonisolated var source: String { "instance role \(roleName) (IMDS)" }

    /// When the cached credentials expire (`nil` before the first fetch).
    public var expiration: Date? { get async { await cache.held?.expiration } }

    public func credentials() async throws -> SigV4Credentials {
        try await cache.value { try await self.fetch() }.credentials
    }

    /// The role's credentials document (every member optional: what is missing is refused below).
    struct Document {
        var Code: String?
        var AccessKeyId: String?
        var SecretAccessKey: String?
        var Token: String?
        var Expiration: String?
        var Message: String?

        init(json: JSONObject) throws(JSONShapeError) {
            Code = try json.optionalString("Code")
            AccessKeyId = try json.optionalString("AccessKeyId")
            SecretAccessKey = try json.optionalString("SecretAccessKey")
            Token = try json.optionalString("Token")
            Expiration = try json.optionalString("Expiration")
            Message = try json.optionalString("Message")
        }
    }

    func fetch() async throws -> (value: Fetched, refreshAt: Date) {
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
            document = try Document(json: JSONObject(parsing: body))
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
        let fetched = Fetched(
            credentials: SigV4Credentials(accessKeyID: id, secretAccessKey: secret, sessionToken: document.Token),
            expiration: expiration)
        return (fetched, expiration.addingTimeInterval(-min(refreshMargin, lifetime / 2)))
    }

    static func parseExpiration(_ text: String) -> Date? {
        // IMDS's own form without Foundation's parser (and the calendar machinery it loads); any other form with it.
        if let date = UTCTime.parseISO8601Seconds(text) { return date }
        if let date = try? Date(text, strategy: .iso8601) { return date }
        // Fractional seconds: try without them. (`try?`: a parse failure just means "not this format".)
        return try? Date(text, strategy: Date.ISO8601FormatStyle(includingFractionalSeconds: true))
    }
}
