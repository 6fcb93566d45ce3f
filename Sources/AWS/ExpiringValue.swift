import FoundationEssentials

/// A value fetched on demand and kept until its refresh time, with at most one fetch in flight:
/// the IMDS session token, instance-role credentials, the resolved credential provider.
actor ExpiringValue<Value: Sendable> {
    typealias Fetched = (value: Value, refreshAt: Date)

    private var current: Fetched?
    private var pending: Task<Fetched, any Error>?
    private let now: @Sendable () -> Date

    init(now: @escaping @Sendable () -> Date = Date.init) {
        self.now = now
    }

    /// The value held, fresh or not (`nil` before the first fetch).
    var held: Value? { current?.value }

    /// The held value while it is fresh; otherwise the result of `fetch`, shared by every caller
    /// that asks while it runs.
    func value(fetch: @escaping @Sendable () async throws -> Fetched) async throws -> Value {
        if let current, now() < current.refreshAt { return current.value }
        if let pending { return try await pending.value.value }
        let task = Task { try await fetch() }
        pending = task
        defer { pending = nil }
        let fetched = try await task.value
        current = fetched
        return fetched.value
    }

    /// Forgets the held value (an IMDS 401): the next caller fetches.
    func invalidate() { current = nil }
}
