import Support
import TestSupport
import Testing

@Suite("retry policy")
struct RetryPolicyTests {
    struct Flaky: Error {}

    /// Shared mutable state for the closures under test.

    /// A policy that records its waits instead of sleeping.
    static func policy(attempts: Int, deadline: Duration = .seconds(60), waits: Locked<[Duration]>) -> RetryPolicy {
        RetryPolicy(
            maxAttempts: attempts, baseDelay: .milliseconds(100), maxBackoff: .seconds(1), deadline: deadline,
            attemptTimeout: .seconds(1), random: { 0.999_999 },
            sleep: { duration in waits.update { $0.append(duration) } })
    }

    @Test("backoff is capped exponential with full jitter")
    func backoff() {
        var policy = RetryPolicy(
            maxAttempts: 10, baseDelay: .milliseconds(100), maxBackoff: .seconds(20), deadline: .seconds(60),
            attemptTimeout: .seconds(1), random: { 1 })
        #expect(policy.backoff(afterAttempt: 1) == .milliseconds(100))
        #expect(policy.backoff(afterAttempt: 4) == .milliseconds(800))
        #expect(policy.backoff(afterAttempt: 20) == .seconds(20))
        policy.random = { 0 }
        #expect(policy.backoff(afterAttempt: 5) == .zero)
    }

    @Test("retries retryable failures, then succeeds")
    func retriesThenSucceeds() async throws {
        let waits = Locked<[Duration]>([])
        let calls = Locked(0)
        let value = try await Self.policy(attempts: 5, waits: waits).run(
            operation: { attempt, _ in
                calls.update { $0 += 1 }
                if attempt < 3 { throw Flaky() }
                return attempt
            },
            classify: { _ in RetryPolicy.Verdict.retry })
        #expect(value == 3)
        #expect(calls.current == 3)
        #expect(waits.current.count == 2)
    }

    @Test("stops after max attempts with the last error")
    func stopsAtMaxAttempts() async {
        let waits = Locked<[Duration]>([])
        await #expect {
            try await Self.policy(attempts: 3, waits: waits).run(
                operation: { _, _ -> Int in throw Flaky() }, classify: { _ in RetryPolicy.Verdict.retry })
        } throws: { error in
            guard let exhausted = error as? RetryExhausted else { return false }
            return exhausted.attempts == 3 && exhausted.reason == .attempts && exhausted.last is Flaky
        }
    }

    @Test("a failure classified as final is not retried")
    func finalFailure() async {
        let calls = Locked(0)
        await #expect(throws: Flaky.self) {
            try await Self.policy(attempts: 5, waits: Locked([])).run(
                operation: { _, _ -> Int in
                    calls.update { $0 += 1 }
                    throw Flaky()
                }, classify: { _ in RetryPolicy.Verdict.fail })
        }
        #expect(calls.current == 1)
    }

    @Test("the deadline ends retries before the attempts run out")
    func deadline() async {
        await #expect {
            try await RetryPolicy(
                maxAttempts: 1000, baseDelay: .milliseconds(20), maxBackoff: .milliseconds(20), deadline: .milliseconds(300),
                attemptTimeout: .seconds(1), random: { 1 }
            ).run(operation: { _, _ -> Int in throw Flaky() }, classify: { _ in RetryPolicy.Verdict.retry })
        } throws: { error in
            (error as? RetryExhausted)?.reason == .deadline
        }
    }

    @Test("an immediate retry (fresh token) is allowed once and not counted")
    func immediateRetry() async throws {
        let calls = Locked(0)
        let value = try await Self.policy(attempts: 1, waits: Locked([])).run(
            operation: { _, _ in
                let n = calls.update { count in
                    count += 1
                    return count
                }
                if n == 1 { throw Flaky() }
                return n
            },
            classify: { _ in RetryPolicy.Verdict.retryOnceImmediately })
        #expect(value == 2)
    }

    @Test("AWS_MAX_ATTEMPTS sets the attempts of AWS calls")
    func maxAttemptsFromEnvironment() {
        #expect(RetryPolicy.aws(environment: ["AWS_MAX_ATTEMPTS": "1"]).maxAttempts == 1)
        #expect(RetryPolicy.aws(environment: [:]).maxAttempts == 30)
        #expect(RetryPolicy.aws(environment: ["AWS_MAX_ATTEMPTS": "zero"]).maxAttempts == 30)
    }

    @Test("a poll waits the full interval each time and looks once more at the deadline")
    func poll() async throws {
        let start = ContinuousClock.now
        let attempts = Locked([Duration]())
        await #expect {
            _ = try await RetryPolicy.poll(every: .milliseconds(100), deadline: .milliseconds(250)).run(
                operation: { _, _ -> Int in
                    attempts.update { $0.append(ContinuousClock.now - start) }
                    throw Flaky()
                }, classify: { _ in .retry })
        } throws: { error in
            (error as? RetryExhausted)?.reason == .deadline
        }
        let times = attempts.update { $0 }
        // 0, 100, 200, then the last look at 250 ms; a loaded machine may miss a round, never the
        // last look (it comes whenever a wait would pass the deadline), and no wait is shortened
        // by jitter.
        #expect(times.count >= 3, "\(times)")
        for (earlier, later) in zip(times, times.dropFirst()).dropLast() {
            #expect(later - earlier >= .milliseconds(100), "\(times)")
        }
        #expect((times.last ?? .zero) >= .milliseconds(250), "\(times)")
    }

    @Test("firstValue: looks until a value comes, nil when the attempts run out, an error ends it at once")
    func firstValue() async throws {
        let policy = Self.policy(attempts: 3, waits: Locked([]))
        let looks = Locked(0)
        let found = try await policy.firstValue { attempt in
            looks.update { $0 += 1 }
            return attempt == 2 ? "here" : nil
        }
        #expect(found == "here")
        #expect(looks.current == 2)
        let never: Int? = try await policy.firstValue { _ in nil }
        #expect(never == nil)
        await #expect(throws: Flaky.self) {
            _ = try await policy.firstValue { _ -> Int? in throw Flaky() }
        }
    }
}
