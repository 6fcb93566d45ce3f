import FoundationEssentials
import KubeAPI
import NodeRender
import Support

/// What `confirm` is asked to do.
package struct RegistrationOptions: Sendable {
    /// Node path of the kubelet's kubeconfig (as `init` wrote it).
    var kubeconfigPath = KubeletConfig.kubeconfigPath
    /// `--root` (nil: `/`); every node path in the kubeconfig is taken under it.
    var root: String?
    /// The agent's environment: the exec plugin runs with it (plus the kubeconfig's `env`).
    package var environment: [String: String]
    var nodeName: String
    /// `--register-node`: create (or reconcile) the Node object ourselves instead of waiting for
    /// the kubelet to register it.
    package var register = false
    /// `--wait-ready`: wait until the node's `Ready` condition is `True`.
    package var waitReady = false
    /// One deadline for everything (registration and readiness), the exec plugin's runs included.
    package var timeout: Duration = .seconds(300)
    /// Between two polls of the node, and the first pause before retrying a failed request.
    package var pollInterval: Duration = .seconds(1)
    /// Between two progress lines while waiting.
    package var progressInterval: Duration = .seconds(10)
    /// Bound on each API request.
    package var requestTimeout: Duration = .seconds(10)
    var node: DesiredNode
    /// Asked at each poll while waiting for the kubelet's Node or for Ready: an error when the
    /// kubelet has stopped running (it crashed after systemd called it started), so the wait
    /// ends with its journal lines instead of a timeout.
    var kubeletHealth: (@Sendable () async -> NodeBootError?)?

    package init(root: String?, environment: [String: String], nodeName: String, node: DesiredNode) {
        self.root = root
        self.environment = environment
        self.nodeName = nodeName
        self.node = node
    }
}

/// What `confirm` found and did.
package struct RegistrationResult: Sendable, Equatable {
    package var nodeName: String
    /// status.json's `node.registration`: created, reconciled or unchanged (`--register-node`), or found.
    package var action: StatusReport.Node.Registration
    /// What was changed (`label topology.kubernetes.io/zone`, `taint dedicated=infra:NoSchedule`, …).
    package var changes: [String]
    /// The node's `Ready` condition was `True` when `confirm` returned.
    package var ready: Bool
    /// The API server's version (`v1.31.0-eks-…`).
    package var serverVersion: String
    /// Requests made (retries and polls included).
    package var attempts: Int
    /// Executions of the exec credential plugin.
    package var tokenExecutions: Int

    /// Readiness, the API server's version and the requests made (status.json's `node.detail`).
    var details: String {
        (ready ? "Ready" : "not Ready yet") + "; API server \(serverVersion), \(attempts) request(s)"
    }
}

/// The register phase: the Node object exists (created or reconciled with `register`, else
/// registered by the kubelet), and is Ready with `waitReady`, within one deadline.
package struct NodeRegistration: Sendable {
    package init() {}

    package func confirm(options: RegistrationOptions, log: @Sendable (String) -> Void) async throws(NodeBootError)
        -> RegistrationResult
    {
        var run = try RegistrationRun(options: options)
        let tokens = run.access.tokens
        let staticToken = run.access.kubeconfig.token
        let client: KubeClient
        do {
            client = try KubeClient(
                endpoint: run.access.kubeconfig.server, caPEM: run.access.caPEM,
                token: {
                    if let staticToken { return staticToken }
                    guard let tokens else { throw NodeBootError(.internal, "no token source") }
                    return try await tokens.token()
                }, requestTimeout: options.requestTimeout)
        } catch {
            throw NodeBootError(
                .input, "kubeconfig \(run.access.kubeconfigFile): \(error.message)",
                hint: "the server must be the cluster's https:// endpoint and the CA a PEM certificate (spec.cluster)")
        }
        do {
            let result = try await run.confirm(client, log: log)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }
}

/// One run of the register phase: the cluster access, the Node plan and the deadline.
struct RegistrationRun {
    let options: RegistrationOptions
    let access: ClusterAccess
    let plan: RegistrationPlan
    let start = ContinuousClock.now
    /// API requests made, retries and polls included.
    var attempts = 0

    var deadline: ContinuousClock.Instant { start + options.timeout }
    var nodeName: String { options.nodeName }

    init(options: RegistrationOptions) throws(NodeBootError) {
        self.options = options
        guard Node.isValidName(options.nodeName) else {
            throw NodeBootError(
                .input,
                "node name '\(options.nodeName)' is not a valid Kubernetes node name (a DNS-1123 subdomain: lowercase letters, digits, '-' and '.', at most 253 characters)",
                hint:
                    "the node name is the instance's private DNS name, or its instance ID with the InstanceIdNodeName feature gate"
            )
        }
        access = try ClusterAccess(
            kubeconfigPath: options.kubeconfigPath, paths: NodePaths(root: options.root), environment: options.environment,
            deadline: start + options.timeout)
        plan = try RegistrationPlan(options.node)
    }

    mutating func confirm(_ client: KubeClient, log: @Sendable (String) -> Void) async throws(NodeBootError)
        -> RegistrationResult
    {
        // The plugin first: its failure is its own error, not a request's.
        if let tokens = access.tokens { try await firstToken(tokens, log: log) }
        let version = try await call(client, log: log, "GET /version") { client async throws(KubeError) in
            try await client.version()
        }
        log("register: API server \(client.endpoint) is \(version)")
        var node: Node
        var action: StatusReport.Node.Registration
        var changes: [String] = []
        if options.register {
            (node, action, changes) = try await register(client, log: log)
        } else {
            node = try await waitForNode(client, log: log)
            action = .found
            log("register: node \(nodeName) is registered (\((ContinuousClock.now - start).tenthsOfSeconds) s)")
        }
        if options.waitReady && !node.isReady {
            node = try await waitForReady(client, node: node, log: log)
        }
        if options.waitReady {
            log("register: node \(nodeName) is Ready (\((ContinuousClock.now - start).tenthsOfSeconds) s)")
        }
        return RegistrationResult(
            nodeName: nodeName, action: action, changes: changes, ready: node.isReady, serverVersion: version,
            attempts: attempts, tokenExecutions: await access.tokens?.executions ?? 0)
    }

    /// `--register-node`: create the Node as the kubelet would, or reconcile the one that exists.
    mutating func register(_ client: KubeClient, log: @Sendable (String) -> Void) async throws(NodeBootError)
        -> (Node, StatusReport.Node.Registration, [String])
    {
        let name = nodeName
        if let existing = try await getNode(client, log: log) {
            return try await reconcile(client, existing, log: log)
        }
        let desired = plan.node(named: name)
        let created = try await callResult(client, log: log, "POST node", accepting: [.alreadyExists]) {
            client async throws(KubeError) in try await client.createNode(desired)
        }
        switch created {
        case .success(var node):
            log("register: created node \(name) (\(plan.providerID))")
            if node.status?.addresses == nil && node.status?.capacity == nil, let status = desired.status {
                // A server that drops status on create: the kubelet's first status update, now.
                let patch = Node(apiVersion: nil, kind: nil, metadata: .init(name: name), status: status)
                node = try await call(client, log: log, "PATCH node status") { client async throws(KubeError) in
                    try await client.patchNode(name, mergePatch: patch, status: true)
                }
            }
            return (node, .created, [])
        case .failure:
            log("register: node \(name) was created meanwhile (by the kubelet?); reconciling it")
            guard
                let existing = try await getNode(client, log: log)
            else {
                throw NodeBootError(
                    .kube,
                    "node \(name) was reported as existing on create, then not found: it is being deleted and re-created",
                    hint: "something else manages this Node object; run nodeboot init again")
            }
            return try await reconcile(client, existing, log: log)
        }
    }

    /// Patches what differs from the plan (labels and spec, then status) until nothing does: the
    /// node each patch returns is compared again. A 409 Conflict (the object changed since it was
    /// read) reads it again, at most three times; a patch the server does not keep (an admission
    /// webhook or controller reverting it) is given up after three rounds.
    mutating func reconcile(_ client: KubeClient, _ existing: Node, log: @Sendable (String) -> Void)
        async throws(NodeBootError) -> (Node, StatusReport.Node.Registration, [String])
    {
        let name = nodeName
        let limit = 3
        var current = existing
        var changes: [String] = []
        var conflicts = 0
        var rounds = 0
        while true {
            if let other = current.spec?.providerID, !other.isEmpty, other != plan.providerID {
                throw NodeBootError(
                    .kube,
                    "node \(name) exists with providerID \(other), but this instance is \(plan.providerID)",
                    hint:
                        "a Node object of another (terminated?) instance has this name; if that instance is gone, delete the object (kubectl delete node \(name)) and run nodeboot init again"
                )
            }
            let diff = plan.difference(from: current)
            if diff.isEmpty {
                if changes.isEmpty { log("register: node \(name) exists and is as desired") }
                return (current, changes.isEmpty ? .unchanged : .reconciled, changes)
            }
            guard rounds < limit else {
                throw NodeBootError(
                    .kube,
                    "node \(name) still differs after \(limit) patches: \(diff.changes.joined(separator: ", "))",
                    hint:
                        "the API server accepts the patch but the Node does not keep it: an admission webhook or a controller reverts it; look for one that manages Node labels, taints or status"
                )
            }
            if let patch = diff.objectPatch {
                let result = try await callResult(client, log: log, "PATCH node", accepting: [.conflict]) {
                    client async throws(KubeError) in try await client.patchNode(name, mergePatch: patch)
                }
                guard case .success(let patched) = result else {
                    conflicts += 1
                    guard conflicts < limit else {
                        throw NodeBootError(
                            .kube,
                            "node \(name) kept changing while it was being reconciled (\(conflicts) conflicts)",
                            hint: "another agent is updating this Node object; run nodeboot init again")
                    }
                    log("register: node \(name) changed while being reconciled; reading it again")
                    guard
                        let fresh = try await getNode(client, log: log)
                    else {
                        throw NodeBootError(
                            .kube, "node \(name) disappeared while being reconciled",
                            hint: "something deletes this Node object; run nodeboot init again")
                    }
                    current = fresh
                    continue
                }
                current = patched
            }
            if let patch = diff.statusPatch {
                current = try await call(client, log: log, "PATCH node status") { client async throws(KubeError) in
                    try await client.patchNode(name, mergePatch: patch, status: true)
                }
            }
            rounds += 1
            changes += diff.changes.filter { !changes.contains($0) }
            log("register: reconciled node \(name): \(diff.changes.joined(separator: ", "))")
        }
    }
}
