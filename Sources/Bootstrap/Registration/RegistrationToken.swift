import Support

extension RegistrationRun {
    /// Runs of the exec plugin at most for the first token.
    static let pluginRuns = 4

    /// The exec plugin's first token, before any request. A plugin that ran and failed (a non-zero
    /// exit or a timeout, code `aws`: the token helper could not get the instance role's
    /// credentials from IMDS in its own time, as on an instance still booting or a crowded host)
    /// runs again after a jittered backoff (1 s doubling to 8 s), `pluginRuns` times in all and
    /// within the registration deadline, as the kubelet runs it again on its next request. A
    /// plugin that cannot run or prints no credential fails at once.
    func firstToken(_ tokens: ExecTokenSource, log: @Sendable (String) -> Void) async throws(NodeBootError) {
        let remaining = max(deadline - .now, .zero)
        let policy = RetryPolicy(
            maxAttempts: Self.pluginRuns, baseDelay: .seconds(1), maxBackoff: .seconds(8), deadline: remaining,
            attemptTimeout: remaining)
        do {
            _ = try await policy.run(
                operation: { _, _ in try await tokens.token() },
                classify: { error in
                    guard let error = error as? NodeBootError, error.code == .aws else { return .fail }
                    log("register: \(error.message) — running it again")
                    return .retry
                })
        } catch let error as NodeBootError {
            throw error
        } catch let exhausted as RetryExhausted {
            guard var last = exhausted.last as? NodeBootError else { throw Self.cancelled(exhausted) }
            last.message += " (\(exhausted.attempts) runs in \(exhausted.elapsed.tenthsOfSeconds) s)"
            throw last
        } catch {
            throw Self.cancelled(error)
        }
    }
}
