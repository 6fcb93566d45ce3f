import KubeAPI
import Support

/// The register phase's waits: for the kubelet to register the Node, for the Node to be Ready.
/// Each is a poll under the one retry policy (`RetryPolicy.poll`, a last look at the deadline),
/// watching the kubelet unit at every round and printing progress every `progressInterval`.
extension RegistrationRun {
    var pollPolicy: RetryPolicy {
        RetryPolicy.poll(every: options.pollInterval, deadline: max(deadline - .now, .zero))
    }

    /// Without `--register-node`: poll until the kubelet has registered the node.
    mutating func waitForNode(_ client: KubeClient, log: @Sendable (String) -> Void) async throws(NodeBootError)
        -> Node
    {
        let name = nodeName
        return try await poll(log: log, waiting: { "to register (\($0))" }) { run, _ async throws(NodeBootError) in
            try await run.getNode(client, log: log)
        } timeout: { run in
            NodeBootError(
                .kube,
                "node \(name) did not register with the API server \(run.access.kubeconfig.server) within \(run.options.timeout.tenthsOfSeconds) s",
                hint:
                    "the kubelet did not register: check 'journalctl -u kubelet' (is it running, can it reach the API server, is its node name \(name)?); --register-node creates the Node object without the kubelet"
            )
        }
    }

    /// `--wait-ready`: poll until the node's `Ready` condition is `True`.
    mutating func waitForReady(_ client: KubeClient, node: Node, log: @Sendable (String) -> Void)
        async throws(NodeBootError) -> Node
    {
        let name = nodeName
        var latest = node
        return try await poll(log: log, waiting: { "to become Ready (\(Self.readiness(latest)); \($0))" }) {
            run, attempt async throws(NodeBootError) in
            if attempt > 1 {
                let fresh = try await run.getNode(client, log: log)
                guard let fresh else {
                    throw NodeBootError(
                        .kube, "node \(name) was deleted while waiting for it to become Ready",
                        hint: "something deletes this Node object (a cloud controller that does not find the instance?)")
                }
                latest = fresh
            }
            return latest.isReady ? latest : nil
        } timeout: { run in
            NodeBootError(
                .kube,
                "node \(name) is registered but was not Ready within \(run.options.timeout.tenthsOfSeconds) s (\(Self.readiness(latest)))",
                hint:
                    "the kubelet reports readiness: check 'journalctl -u kubelet' and the container runtime and network plugin (journalctl -u containerd); a node is Ready once its CNI is"
            )
        }
    }

    /// Runs `look` (attempt numbers from 1) under the poll policy until it gives a node; between
    /// looks asks whether the kubelet still runs and says what it waits for every
    /// `progressInterval`; at the deadline throws what `timeout` says.
    mutating func poll(
        log: @Sendable (String) -> Void, waiting: (_ progress: String) -> String,
        _ look: (inout RegistrationRun, Int) async throws(NodeBootError) -> Node?,
        timeout: (RegistrationRun) -> NodeBootError
    ) async throws(NodeBootError) -> Node {
        var lastProgress = start
        let node: Node?
        do {
            node = try await pollPolicy.firstValue { attempt in
                if let node = try await look(&self, attempt) { return node }
                if let failure = await options.kubeletHealth?() { throw failure }
                let now = ContinuousClock.now
                if now - lastProgress >= options.progressInterval {
                    lastProgress = now
                    log("register: waiting for node \(nodeName) \(waiting(progress(now)))")
                }
                return nil
            }
        } catch let error as NodeBootError {
            throw error
        } catch {
            throw Self.cancelled(error)
        }
        guard let node else { throw timeout(self) }
        return node
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

    /// A wait that ended without an answer: the run was cancelled (SIGTERM to nodeboot-run.service).
    static func cancelled(_ error: any Error) -> NodeBootError {
        NodeBootError(.internal, "node registration was cancelled", cause: error)
    }
}
