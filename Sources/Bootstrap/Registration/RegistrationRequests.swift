import KubeAPI
import Support

/// The register phase's requests under the one retry policy: a 401 runs the exec plugin again
/// once and retries at once; transient failures (no answer, 429, 5xx) are retried with jittered
/// exponential backoff (from `pollInterval` up to 5 s) until the deadline, watching the kubelet
/// between retries; anything else is explained at once.
extension RegistrationRun {
    /// The policy for one request: as many attempts as the deadline allows.
    var requestPolicy: RetryPolicy {
        RetryPolicy(
            maxAttempts: .max, baseDelay: options.pollInterval, maxBackoff: .seconds(5),
            deadline: max(deadline - .now, .zero), attemptTimeout: options.requestTimeout)
    }

    /// `GET` the node this run registers; nil when it does not exist.
    mutating func getNode(_ client: KubeClient, log: @Sendable (String) -> Void) async throws(NodeBootError) -> Node? {
        let name = nodeName
        return try await call(client, log: log, "GET node") { client async throws(KubeError) in
            try await client.node(named: name)
        }
    }

    mutating func call<T: Sendable>(
        _ client: KubeClient, log: @Sendable (String) -> Void, _ what: String,
        _ body: (KubeClient) async throws(KubeError) -> T
    ) async throws(NodeBootError) -> T {
        switch try await callResult(client, log: log, what, accepting: [], body) {
        case .success(let value): return value
        case .failure(let error): throw access.explain(error, failures: 1, elapsed: .now - start)  // none accepted
        }
    }

    /// ``call(_:log:_:_:)`` that hands back errors of the `accepting` kinds instead of throwing.
    mutating func callResult<T: Sendable>(
        _ client: KubeClient, log: @Sendable (String) -> Void, _ what: String, accepting: [KubeError.Kind],
        _ body: (KubeClient) async throws(KubeError) -> T
    ) async throws(NodeBootError) -> Result<T, KubeError> {
        let tokens = access.tokens
        var refresh = false
        var refreshed = false
        var afterTransient = false
        var failures = 0
        var lastLog: ContinuousClock.Instant?
        do {
            return try await requestPolicy.run(
                operation: { _, _ in
                    attempts += 1
                    if refresh, let tokens {
                        refresh = false
                        await tokens.invalidate()
                        _ = try await tokens.token()
                    }
                    // A kubelet that stopped running says more than the next retry would.
                    if afterTransient, let failure = await options.kubeletHealth?() { throw failure }
                    do throws(KubeError) {
                        return .success(try await body(client))
                    } catch {
                        if accepting.contains(error.kind) { return .failure(error) }
                        throw error
                    }
                },
                classify: { error in
                    guard let error = error as? KubeError else { return .fail }
                    if error.kind == .unauthorized, !refreshed, tokens != nil {
                        refreshed = true
                        refresh = true
                        log("register: the API server refused the token (401); running the exec plugin again")
                        return .retryOnceImmediately
                    }
                    failures += 1
                    guard error.isTransient else { return .fail }
                    afterTransient = true
                    let now = ContinuousClock.now
                    if lastLog.map({ now - $0 >= options.progressInterval }) ?? true {
                        lastLog = now
                        log("register: \(error) — retrying (\(progress(now)))")
                    }
                    return .retry
                })
        } catch let error as NodeBootError {
            throw error
        } catch let error as KubeError {
            throw access.explain(error, failures: failures, elapsed: .now - start)
        } catch let exhausted as RetryExhausted {
            guard let last = exhausted.last as? KubeError else { throw Self.cancelled(exhausted) }
            throw access.explain(last, failures: failures, elapsed: .now - start)
        } catch {
            throw Self.cancelled(error)
        }
    }
}
