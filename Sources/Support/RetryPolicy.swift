import FoundationEssentials

/// The agent's one retry policy (AWS and IMDS calls, the API server's requests and waits,
/// EC2's eventual consistency, name resolution): bounded attempts, capped exponential backoff
/// with full jitter, a total deadline, and a per-attempt timeout that never outlives the
/// deadline; `poll` for a steady look at something expected to change.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int
    public var baseDelay: Duration
    public var maxBackoff: Duration
    /// Bound on the whole operation, retries and waits included.
    public var deadline: Duration
    /// Bound on one attempt (connect, send, answer).
    public var attemptTimeout: Duration
    /// Uniform random number in 0..<1 (always 1 for a poll: the full interval); injectable for tests.
    public var random: @Sendable () -> Double
    /// When the next wait would pass the deadline: one last attempt at the deadline instead of
    /// giving up at once (a poll looks once more; an API call does not start what cannot finish).
    public internal(set) var lastAttemptAtDeadline = false
    public var sleep: @Sendable (Duration) async throws -> Void

    public init(
        maxAttempts: Int,
        baseDelay: Duration,
        maxBackoff: Duration,
        deadline: Duration,
        attemptTimeout: Duration,
        random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
        sleep: @escaping @Sendable (Duration) async throws -> Void = { try await Task.sleep(for: $0) }
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxBackoff = maxBackoff
        self.deadline = deadline
        self.attemptTimeout = attemptTimeout
        self.random = random
        self.sleep = sleep
    }

    /// IMDS: it answers in milliseconds on a healthy instance but may be slow to come up at boot
    /// (nodeadm: 60 attempts, ≤1 s backoff, 250 ms dial, 500 ms header timeout, no total bound).
    /// Here: 250 ms connect, 1 s per attempt, backoff 50 ms doubling to 1 s, 60 s in all.
    public static let imds = RetryPolicy(
        maxAttempts: 120, baseDelay: .milliseconds(50), maxBackoff: .seconds(1), deadline: .seconds(60),
        attemptTimeout: .seconds(1))

    /// AWS APIs: botocore/SDK "standard" mode shape (base 100 ms, cap 20 s), nodeadm's 30 attempts
    /// for EC2, 10 s per attempt, 2 minutes in all. `AWS_MAX_ATTEMPTS` overrides the attempts.
    public static func aws(environment: [String: String]) -> RetryPolicy {
        var policy = RetryPolicy(
            maxAttempts: 30, baseDelay: .milliseconds(100), maxBackoff: .seconds(20), deadline: .seconds(120),
            attemptTimeout: .seconds(10))
        if let value = environment["AWS_MAX_ATTEMPTS"], let attempts = Int(value), attempts > 0 {
            policy.maxAttempts = attempts
        }
        return policy
    }

    /// A poll of one thing at a steady pace: `attempts` tries (unbounded by default) `every`
    /// apart, no backoff and no jitter, until `deadline`. For waits on a local condition or a
    /// single server that is expected to change (a Node registering, a name resolving).
    public static func poll(every interval: Duration, attempts: Int = .max, deadline: Duration = .seconds(86_400))
        -> RetryPolicy
    {
        var policy = RetryPolicy(
            maxAttempts: attempts, baseDelay: interval, maxBackoff: interval, deadline: deadline,
            attemptTimeout: deadline, random: { 1 })
        policy.lastAttemptAtDeadline = true
        return policy
    }

    /// Full jitter: uniform in [0, min(cap, base × 2^(attempt-1))] (exactly the cap when
    /// `random` gives 1, as a poll's does).
    public func backoff(afterAttempt attempt: Int) -> Duration {
        let exponent = min(attempt - 1, 30)
        let ceiling = min(maxBackoff.seconds, baseDelay.seconds * Double(1 << exponent))
        return .nanoseconds(Int64(ceiling * random() * 1e9))
    }

    /// What a failed attempt means for the next one.
    public enum Verdict: Sendable {
        case retry
        /// Retry at once, not counted as an attempt (e.g. a refreshed IMDS token). Allowed once per call.
        case retryOnceImmediately
        case fail
    }

    /// Runs `operation` until it succeeds, `classify` says fail, attempts run out or the deadline
    /// passes. The error thrown is the last attempt's, wrapped in `RetryExhausted` when retries ran out.
    public nonisolated(nonsending) func run<T: Sendable>(
        operation: (_ attempt: Int, _ timeout: Duration) async throws -> T,
        classify: (any Error) -> Verdict
    ) async throws -> T {
        let clock = ContinuousClock()
        let start = clock.now
        var attempt = 0
        var usedImmediate = false
        var lastAttempt = false
        while true {
            attempt += 1
            let remaining = deadline - start.duration(to: clock.now)
            let timeout = min(attemptTimeout, max(remaining, .milliseconds(1)))
            do {
                return try await operation(attempt, timeout)
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                switch classify(error) {
                case .fail:
                    throw error
                case .retryOnceImmediately where !usedImmediate:
                    usedImmediate = true
                    attempt -= 1
                    continue
                case .retry, .retryOnceImmediately:
                    break
                }
                let elapsed = start.duration(to: clock.now)
                if attempt >= maxAttempts {
                    throw RetryExhausted(attempts: attempt, elapsed: elapsed, reason: .attempts, last: error)
                }
                var wait = backoff(afterAttempt: attempt)
                if elapsed + wait >= deadline {
                    guard lastAttemptAtDeadline && !lastAttempt && elapsed < deadline else {
                        throw RetryExhausted(attempts: attempt, elapsed: elapsed, reason: .deadline, last: error)
                    }
                    lastAttempt = true
                    wait = deadline - elapsed
                }
                try await sleep(wait)
            }
        }
    }

    /// Runs `look` (attempt numbers from 1) until it gives a value: nil means "not yet", and the
    /// policy waits and looks again; an error ends it at once. Returns nil when the attempts or
    /// the deadline ran out first (a poll's last look included). Cancellation throws.
    public nonisolated(nonsending) func firstValue<T: Sendable>(_ look: (_ attempt: Int) async throws -> T?)
        async throws -> T?
    {
        do {
            return try await run(
                operation: { attempt, _ in
                    guard let value = try await look(attempt) else { throw NotYet() }
                    return value
                }, classify: { $0 is NotYet ? .retry : .fail })
        } catch let exhausted as RetryExhausted where exhausted.last is NotYet {
            return nil
        }
    }
}

/// `firstValue`'s look found nothing yet.
private struct NotYet: Error {}

/// Retries ran out; `last` is the final attempt's error.
public struct RetryExhausted: Error, Sendable, CustomStringConvertible {
    public enum Reason: Sendable { case attempts, deadline }
    public var attempts: Int
    public var elapsed: Duration
    public var reason: Reason
    public var last: any Error

    public var description: String { "\(last) \(summary)" }

    /// `(gave up after N attempts in X.Y s)`, for the end of an error message.
    public var summary: String {
        let why = reason == .attempts ? "after \(attempts) attempts" : "at the deadline after \(attempts) attempts"
        return "(gave up \(why) in \(elapsed.tenthsOfSeconds) s)"
    }
}
