import KubeAPI
import Support

/// The register phase's waits: for the kubelet to register the Node, for the Node to be Ready.
/// Each is a poll under the one retry policy (`RetryPolicy.poll`, a last look at the deadline),
/// watching the kubelet unit at every round and printing progress every `progressInterval`.
extension RegistrationRun {
    /// The poll has not seen what it waits for yet.
    struct NotYet: Error {}

    var pollPolicy: RetryPolicy {
        RetryPolicy.poll(every: options.pollInterval, deadline: max(deadline - .now, .zero))
    }

    /// Without `--register-node`: poll until the kubelet has registered the node.
    mutating func waitForNode(_ client: KubeClient, log: @Sendable (String) -> Void) async throws(NodeBootError)
        -> Node
    {
        let name = nodeName
        var lastProgress = start
        do {
            return try await pollPolicy.run(
                operation: { _, _ in
                    if let node = try await call(
                        client, log: log, "GET node", { client async throws(KubeError) in try await client.node(named: name) })
                    {
                        return node
                    }
                    if let failure = await options.kubeletHealth?() { throw failure }
                    let now = ContinuousClock.now
                    if now - lastProgress >= options.progressInterval {
                        lastProgress = now
                        log("register: waiting for node \(name) to register (\(progress(now)))")
                    }
                    throw NotYet()
                }, classify: { $0 is NotYet ? .retry : .fail })
        } catch let error as NodeBootError {
            throw error
        } catch is RetryExhausted {
            throw NodeBootError(
                .kube,
                "node \(name) did not register with the API server \(access.kubeconfig.server) within \(options.timeout.tenthsOfSeconds) s",
                hint:
                    "the kubelet did not register: check 'journalctl -u kubelet' (is it running, can it reach the API server, is its node name \(name)?); --register-node creates the Node object without the kubelet"
            )
        } catch {
            throw Self.cancelled(error)
        }
    }

    /// `--wait-ready`: poll until the node's `Ready` condition is `True`.
    mutating func waitForReady(_ client: KubeClient, node: Node, log: @Sendable (String) -> Void)
        async throws(NodeBootError) -> Node
    {
        let name = nodeName
        var latest = node
        var lastProgress = start
        do {
            return try await pollPolicy.run(
                operation: { attempt, _ in
                    if attempt > 1 {
                        guard
                            let fresh = try await call(
                                client, log: log, "GET node",
                                { client async throws(KubeError) in try await client.node(named: name) })
                        else {
                            throw NodeBootError(
                                .kube, "node \(name) was deleted while waiting for it to become Ready",
                                hint: "something deletes this Node object (a cloud controller that does not find the instance?)")
                        }
                        latest = fresh
                    }
                    if latest.isReady { return latest }
                    if let failure = await options.kubeletHealth?() { throw failure }
                    let now = ContinuousClock.now
                    if now - lastProgress >= options.progressInterval {
                        lastProgress = now
                        log("register: waiting for node \(name) to become Ready (\(Self.readiness(latest)); \(progress(now)))")
                    }
                    throw NotYet()
                }, classify: { $0 is NotYet ? .retry : .fail })
        } catch let error as NodeBootError {
            throw error
        } catch is RetryExhausted {
            throw NodeBootError(
                .kube,
                "node \(name) is registered but was not Ready within \(options.timeout.tenthsOfSeconds) s (\(Self.readiness(latest)))",
                hint:
                    "the kubelet reports readiness: check 'journalctl -u kubelet' and the container runtime and network plugin (journalctl -u containerd); a node is Ready once its CNI is"
            )
        } catch {
            throw Self.cancelled(error)
        }
    }

    static func readiness(_ node: Node) -> String {
        guard let ready = node.condition("Ready") else { return "no Ready condition yet" }
        var text = "Ready=\(ready.status)"
        if let reason = ready.reason, !reason.isEmpty { text += " \(reason)" }
        if let message = ready.message, !message.isEmpty { text += ": \(message)" }
        return text
    }

    func progress(_ now: ContinuousClock.Instant) -> String {
        "\((now - start).tenthsOfSeconds) s of \(options.timeout.tenthsOfSeconds) s"
    }

    /// A wait that ended without an answer: the run was cancelled (SIGTERM to nodeboot.service).
    static func cancelled(_ error: any Error) -> NodeBootError {
        NodeBootError(.internal, "node registration was cancelled", cause: error)
    }
}
