import Foundation
import Synchronization

/// Request throttling as AWS does it: a token bucket per API (EC2, EKS, STS) and, optionally,
/// per action. A request takes one token; a bucket holds at most `burst` tokens and gains
/// `ratePerSecond` a second; a request that finds its bucket empty gets the service's
/// throttling error (EC2 `RequestLimitExceeded` 503, EKS `ThrottlingException` 429, STS
/// `Throttling` 400) and takes nothing. Off unless configured.
///
/// JSON (the configuration file's `rateLimits`, or `PUT /_testbed/rate-limits`):
///
/// ```json
/// {"ec2": {"ratePerSecond": 20, "burst": 100,
///          "actions": {"DescribeInstances": {"ratePerSecond": 10, "burst": 50}}},
///  "eks": {"ratePerSecond": 10, "burst": 20},
///  "sts": {"ratePerSecond": 50, "burst": 100}}
/// ```
///
/// An action with a bucket of its own uses only that one (as EC2's per-action buckets); the
/// others share the service's bucket; a service without `ratePerSecond` limits only its actions.
public struct RateLimits: Codable, Sendable, Equatable {
    public var ec2: ServiceLimit?
    public var eks: ServiceLimit?
    public var sts: ServiceLimit?

    public init(ec2: ServiceLimit? = nil, eks: ServiceLimit? = nil, sts: ServiceLimit? = nil) {
        self.ec2 = ec2
        self.eks = eks
        self.sts = sts
    }

    /// One token bucket.
    public struct Bucket: Codable, Sendable, Equatable {
        public var ratePerSecond: Double
        public var burst: Int

        public init(ratePerSecond: Double, burst: Int) {
            self.ratePerSecond = ratePerSecond
            self.burst = burst
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case ratePerSecond, burst }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ratePerSecond = try c.decode(Double.self, forKey: .ratePerSecond)
            burst = try c.decode(Int.self, forKey: .burst)
        }

        func validationErrors(at location: String) -> [String] {
            var problems: [String] = []
            if !(ratePerSecond > 0) { problems.append("\(location).ratePerSecond: must be more than 0") }
            if burst < 1 { problems.append("\(location).burst: must be at least 1") }
            return problems
        }
    }

    /// A service's bucket (both fields, or neither) and its actions' own buckets.
    public struct ServiceLimit: Codable, Sendable, Equatable {
        public var ratePerSecond: Double?
        public var burst: Int?
        public var actions: [String: Bucket]

        public init(ratePerSecond: Double? = nil, burst: Int? = nil, actions: [String: Bucket] = [:]) {
            self.ratePerSecond = ratePerSecond
            self.burst = burst
            self.actions = actions
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case ratePerSecond, burst, actions }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            ratePerSecond = try c.decodeIfPresent(Double.self, forKey: .ratePerSecond)
            burst = try c.decodeIfPresent(Int.self, forKey: .burst)
            actions = try c.decodeIfPresent([String: Bucket].self, forKey: .actions) ?? [:]
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encodeIfPresent(ratePerSecond, forKey: .ratePerSecond)
            try c.encodeIfPresent(burst, forKey: .burst)
            if !actions.isEmpty { try c.encode(actions, forKey: .actions) }
        }

        var bucket: Bucket? {
            guard let ratePerSecond, let burst else { return nil }
            return Bucket(ratePerSecond: ratePerSecond, burst: burst)
        }
    }

    enum CodingKeys: String, CodingKey, CaseIterable { case ec2, eks, sts }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        ec2 = try c.decodeIfPresent(ServiceLimit.self, forKey: .ec2)
        eks = try c.decodeIfPresent(ServiceLimit.self, forKey: .eks)
        sts = try c.decodeIfPresent(ServiceLimit.self, forKey: .sts)
    }

    public var isEmpty: Bool { ec2 == nil && eks == nil && sts == nil }

    func limit(_ service: String) -> ServiceLimit? {
        switch service {
        case "ec2": ec2
        case "eks": eks
        case "sts": sts
        default: nil
        }
    }

    /// Problems, each naming the field (`rateLimits.ec2.burst: …`).
    func validationErrors(at location: String = "rateLimits") -> [String] {
        var problems: [String] = []
        for (name, limit) in [("ec2", ec2), ("eks", eks), ("sts", sts)] {
            guard let limit else { continue }
            let here = "\(location).\(name)"
            if (limit.ratePerSecond == nil) != (limit.burst == nil) {
                problems.append("\(here): give both ratePerSecond and burst, or neither")
            }
            if let bucket = limit.bucket { problems += bucket.validationErrors(at: here) }
            for action in limit.actions.keys.sorted() {
                guard let bucket = limit.actions[action] else { continue }
                if action.isEmpty { problems.append("\(here).actions: an action name must not be empty") }
                problems += bucket.validationErrors(at: "\(here).actions.\(action)")
            }
        }
        return problems
    }
}

/// The token buckets of ``RateLimits`` and what they let through or refused. Buckets start full
/// and are made when first used; setting new limits starts them (and the counts) afresh.
final class RateLimiter: Sendable {
    struct BucketState {
        var tokens: Double
        var updated: ContinuousClock.Instant
        var allowed = 0
        var throttled = 0
    }

    struct State {
        var limits: RateLimits
        var buckets: [String: BucketState] = [:]
    }

    let state: Mutex<State>

    init(_ limits: RateLimits) {
        state = Mutex(State(limits: limits))
    }

    var limits: RateLimits { state.withLock { $0.limits } }

    func set(_ limits: RateLimits) {
        state.withLock { $0 = State(limits: limits) }
    }

    /// The bucket a request of `service` and `action` draws from: `ec2:DescribeInstances` for an
    /// action with its own, else `ec2`; nil when it is not limited.
    static func key(_ limits: RateLimits, service: String, action: String?) -> (String, RateLimits.Bucket)? {
        guard let limit = limits.limit(service) else { return nil }
        if let action, let bucket = limit.actions[action] { return ("\(service):\(action)", bucket) }
        if let bucket = limit.bucket { return (service, bucket) }
        return nil
    }

    /// Takes a token for the request: true when it may go on, false when it is throttled.
    func take(service: String, action: String?, now: ContinuousClock.Instant = .now) -> Bool {
        state.withLock { state in
            guard let (key, bucket) = RateLimiter.key(state.limits, service: service, action: action) else {
                return true
            }
            var current = state.buckets[key] ?? BucketState(tokens: Double(bucket.burst), updated: now)
            let elapsed = current.updated.duration(to: now)
            let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
            if seconds > 0 {
                current.tokens = min(Double(bucket.burst), current.tokens + seconds * bucket.ratePerSecond)
                current.updated = now
            }
            let allowed = current.tokens >= 1
            if allowed {
                current.tokens -= 1
                current.allowed += 1
            } else {
                current.throttled += 1
            }
            state.buckets[key] = current
            return allowed
        }
    }

    /// `{"limits": …, "buckets": {"ec2": {"allowed": N, "throttled": N, "tokens": X}, …}}`.
    func status() -> JSONValue {
        state.withLock { state in
            let limits: JSONValue
            if let data = try? JSONEncoder().encode(state.limits),  // plain values always encode
                let value = try? JSONDecoder().decode(JSONValue.self, from: data)
            {
                limits = value
            } else {
                limits = .object([])
            }
            let buckets = state.buckets.keys.sorted().compactMap { key -> (String, JSONValue)? in
                guard let bucket = state.buckets[key] else { return nil }
                return (
                    key,
                    .object([
                        ("allowed", .number(Double(bucket.allowed))),
                        ("throttled", .number(Double(bucket.throttled))),
                        ("tokens", .number((bucket.tokens * 1000).rounded(.down) / 1000)),
                    ])
                )
            }
            return .object([("limits", limits), ("buckets", .object(buckets))])
        }
    }
}
