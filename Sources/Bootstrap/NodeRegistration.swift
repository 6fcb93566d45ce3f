import AWS
import FoundationEssentials
import KubeAPI
import NodeRender
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// The node as this instance should register it: what the kubelet would put into its Node
/// object at registration (`kubelet_node_status.go`'s initial node), from the discovered facts.
package struct DesiredNode: Sendable, Equatable {
    /// `aws:///<az>/<instance-id>`.
    var providerID: String
    /// The `kubernetes.io/hostname` label and the `Hostname` address (the kubelet's
    /// `--hostname-override`, i.e. the node name).
    var hostname: String
    var region: String
    var zone: String
    var instanceType: String
    var os = "linux"
    /// `amd64` or `arm64` (``DesiredNode/hostArchitecture``).
    var arch: String
    var privateIPv4: String?
    var privateIPv6: String?
    var privateDNSName: String?
    var maxPods: Int
    /// Online CPUs; nil or 0 leaves `cpu` out of capacity.
    var cpus: Int?
    /// The kubelet's flags as `NODEADM_KUBELET_ARGS` has them (`--node-labels`,
    /// `--register-with-taints`, `--node-ip` and `--cloud-provider` are read).
    var kubeletFlags: [String]

    package init(
        providerID: String, hostname: String, region: String, zone: String, instanceType: String,
        arch: String = DesiredNode.hostArchitecture, privateIPv4: String? = nil, privateIPv6: String? = nil,
        privateDNSName: String? = nil, maxPods: Int, cpus: Int? = nil, kubeletFlags: [String] = []
    ) {
        self.providerID = providerID
        self.hostname = hostname
        self.region = region
        self.zone = zone
        self.instanceType = instanceType
        self.arch = arch
        self.privateIPv4 = privateIPv4
        self.privateIPv6 = privateIPv6
        self.privateDNSName = privateDNSName
        self.maxPods = maxPods
        self.cpus = cpus
        self.kubeletFlags = kubeletFlags
    }

    /// From the render context `init` used: the same provider ID, node name, node IP, max pods
    /// and kubelet flags as the files it wrote.
    init(context: RenderContext, arch: String = DesiredNode.hostArchitecture) {
        let instance = context.instance
        self.init(
            providerID: "aws:///\(instance.availabilityZone)/\(instance.id)", hostname: context.nodeName,
            region: instance.region, zone: instance.availabilityZone, instanceType: instance.type, arch: arch,
            privateIPv4: context.isIPv6 ? nil : instance.nodeIP, privateIPv6: context.isIPv6 ? instance.nodeIP : nil,
            privateDNSName: instance.privateDnsName.isEmpty ? nil : instance.privateDnsName, maxPods: context.maxPods,
            cpus: context.onlineCPUs, kubeletFlags: KubeletConfig.flags(context))
    }

    /// The host's architecture as Kubernetes names it (`uname -m`: x86_64 → amd64, aarch64 → arm64).
    package static var hostArchitecture: String {
        var names = utsname()
        guard uname(&names) == 0 else { return "amd64" }
        let machine = withUnsafeBytes(of: &names.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return architecture(machine: machine)
    }

    static func architecture(machine: String) -> String {
        switch machine {
        case "x86_64", "amd64": "amd64"
        case "aarch64", "arm64": "arm64"
        default: machine
        }
    }
}

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
    var kubeletHealth: (@Sendable () -> NodeBootError?)?

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

/// Failure codes and messages of the register phase.
enum RegistrationFailure {
    /// Every API-side failure of registration (network, TLS, authorization, timeout): exit 1.
    static let code = NodeBootError.Code.kube
}

/// The register phase: the Node object exists (created or reconciled with `register`, else
/// registered by the kubelet), and is Ready with `waitReady`, within one deadline.
package struct NodeRegistration: Sendable {
    package init() {}

    package func confirm(options: RegistrationOptions, log: @Sendable (String) -> Void) async throws(NodeBootError)
        -> RegistrationResult
    {
        var run = try RegistrationRun(options: options)
        let tokens = run.tokens
        let staticToken = run.kubeconfig.token
        let client: KubeClient
        do {
            client = try KubeClient(
                endpoint: run.kubeconfig.server, caPEM: run.caPEM,
                token: {
                    if let staticToken { return staticToken }
                    guard let tokens else { throw NodeBootError(.internal, "no token source") }
                    return try await tokens.token()
                }, requestTimeout: options.requestTimeout)
        } catch {
            throw NodeBootError(
                .input, "kubeconfig \(run.kubeconfigFile): \(error.message)",
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

/// One run of the register phase: the kubeconfig, the CA, the token source and the deadline.
struct RegistrationRun {
    let options: RegistrationOptions
    let paths: NodePaths
    /// Host path of the kubeconfig.
    let kubeconfigFile: String
    let kubeconfig: Kubeconfig
    let caPEM: [UInt8]?
    /// Where the CA came from, for messages (a host path, or the kubeconfig's data).
    let caSource: String
    let tokens: ExecTokenSource?
    let plan: RegistrationPlan
    let start = ContinuousClock.now
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
        paths = NodePaths(root: options.root)
        kubeconfigFile = paths.node(options.kubeconfigPath)
        let bytes: [UInt8]
        do {
            guard let read = try NodeFileSystem.read(kubeconfigFile) else {
                throw NodeBootError(
                    .io, "the kubelet's kubeconfig \(kubeconfigFile) does not exist",
                    hint: "nodeboot init writes it (unless --skip config); run init without --skip config")
            }
            bytes = read
        } catch let error as NodeBootError {
            throw error
        } catch {
            throw NodeBootError(.io, "cannot read the kubelet's kubeconfig: \(error)", cause: error)
        }
        kubeconfig = try Kubeconfig.parse(String(decoding: bytes, as: UTF8.self), source: kubeconfigFile)
        if let data = kubeconfig.certificateAuthorityData {
            caPEM = data
            caSource = "the kubeconfig's certificate-authority-data (\(kubeconfigFile))"
        } else if let path = kubeconfig.certificateAuthority {
            let file = path.hasPrefix("/") ? paths.node(path) : Kubeconfig.directory(of: kubeconfigFile) + "/" + path
            do {
                guard let read = try NodeFileSystem.read(file) else {
                    throw NodeBootError(
                        .io, "the cluster CA \(file) named by \(kubeconfigFile) does not exist",
                        hint: "nodeboot init writes it from spec.cluster.certificateAuthority; run init again")
                }
                caPEM = read
            } catch let error as NodeBootError {
                throw error
            } catch {
                throw NodeBootError(.io, "cannot read the cluster CA: \(error)", cause: error)
            }
            caSource = file
        } else {
            caPEM = nil
            caSource = "the system's trusted CAs (the kubeconfig names no certificate-authority)"
        }
        if let exec = kubeconfig.exec {
            tokens = ExecTokenSource(
                exec: exec, kubeconfigPath: kubeconfigFile, paths: paths, environment: options.environment,
                deadline: start + options.timeout)
        } else {
            tokens = nil
        }
        plan = try RegistrationPlan(options.node)
    }

    // MARK: The phase

    mutating func confirm(_ client: KubeClient, log: @Sendable (String) -> Void) async throws(NodeBootError)
        -> RegistrationResult
    {
        // The plugin first: its failure is its own error, not a request's.
        if let tokens { _ = try await tokens.token() }
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
            attempts: attempts, tokenExecutions: await tokens?.executions ?? 0)
    }

    /// `--register-node`: create the Node as the kubelet would, or reconcile the one that exists.
    mutating func register(_ client: KubeClient, log: @Sendable (String) -> Void) async throws(NodeBootError)
        -> (Node, StatusReport.Node.Registration, [String])
    {
        let name = nodeName
        if let existing = try await call(
            client, log: log, "GET node",
            { client async throws(KubeError) in
                try await client.node(named: name)
            })
        {
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
                let existing = try await call(
                    client, log: log, "GET node",
                    { client async throws(KubeError) in
                        try await client.node(named: name)
                    })
            else {
                throw NodeBootError(
                    RegistrationFailure.code,
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
                    RegistrationFailure.code,
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
                    RegistrationFailure.code,
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
                            RegistrationFailure.code,
                            "node \(name) kept changing while it was being reconciled (\(conflicts) conflicts)",
                            hint: "another agent is updating this Node object; run nodeboot init again")
                    }
                    log("register: node \(name) changed while being reconciled; reading it again")
                    guard
                        let fresh = try await call(
                            client, log: log, "GET node",
                            { client async throws(KubeError) in
                                try await client.node(named: name)
                            })
                    else {
                        throw NodeBootError(
                            RegistrationFailure.code, "node \(name) disappeared while being reconciled",
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

    /// Without `--register-node`: poll until the kubelet has registered the node.
    mutating func waitForNode(_ client: KubeClient, log: @Sendable (String) -> Void) async throws(NodeBootError)
        -> Node
    {
        let name = nodeName
        var lastProgress = start
        while true {
            if let node = try await call(
                client, log: log, "GET node",
                { client async throws(KubeError) in
                    try await client.node(named: name)
                })
            {
                return node
            }
            let now = ContinuousClock.now
            if now >= deadline {
                throw NodeBootError(
                    RegistrationFailure.code,
                    "node \(name) did not register with the API server \(kubeconfig.server) within \(options.timeout.tenthsOfSeconds) s",
                    hint:
                        "the kubelet did not register: check 'journalctl -u kubelet' (is it running, can it reach the API server, is its node name \(name)?); --register-node creates the Node object without the kubelet"
                )
            }
            if let failure = options.kubeletHealth?() { throw failure }
            if now - lastProgress >= options.progressInterval {
                lastProgress = now
                log("register: waiting for node \(name) to register (\(progress(now)))")
            }
            try await pause(until: min(now + options.pollInterval, deadline))
        }
    }

    /// `--wait-ready`: poll until the node's `Ready` condition is `True`.
    mutating func waitForReady(_ client: KubeClient, node: Node, log: @Sendable (String) -> Void)
        async throws(NodeBootError) -> Node
    {
        let name = nodeName
        var latest = node
        var lastProgress = start
        while true {
            if latest.isReady { return latest }
            let now = ContinuousClock.now
            if now >= deadline {
                throw NodeBootError(
                    RegistrationFailure.code,
                    "node \(name) is registered but was not Ready within \(options.timeout.tenthsOfSeconds) s (\(Self.readiness(latest)))",
                    hint:
                        "the kubelet reports readiness: check 'journalctl -u kubelet' and the container runtime and network plugin (journalctl -u containerd); a node is Ready once its CNI is"
                )
            }
            if let failure = options.kubeletHealth?() { throw failure }
            if now - lastProgress >= options.progressInterval {
                lastProgress = now
                log("register: waiting for node \(name) to become Ready (\(Self.readiness(latest)); \(progress(now)))")
            }
            try await pause(until: min(now + options.pollInterval, deadline))
            if let fresh = try await call(
                client, log: log, "GET node",
                { client async throws(KubeError) in
                    try await client.node(named: name)
                })
            {
                latest = fresh
            } else {
                throw NodeBootError(
                    RegistrationFailure.code, "node \(name) was deleted while waiting for it to become Ready",
                    hint: "something deletes this Node object (a cloud controller that does not find the instance?)")
            }
        }
    }

    static func readiness(_ node: Node) -> String {
        guard let ready = node.condition("Ready") else { return "no Ready condition yet" }
        var text = "Ready=\(ready.status)"
        if let reason = ready.reason, !reason.isEmpty { text += " \(reason)" }
        if let message = ready.message, !message.isEmpty { text += ": \(message)" }
        return text
    }

    // MARK: Requests

    /// One API call with the phase's policy: a 401 runs the exec plugin again once; transient
    /// failures (no answer, 429, 5xx) are retried with backoff until the deadline; anything else
    /// is explained at once.
    mutating func call<T>(
        _ client: KubeClient, log: @Sendable (String) -> Void, _ what: String,
        _ body: (KubeClient) async throws(KubeError) -> T
    ) async throws(NodeBootError) -> T {
        switch try await callResult(client, log: log, what, accepting: [], body) {
        case .success(let value): return value
        case .failure(let error): throw explain(error, failures: 1)  // nothing is accepted: not reached
        }
    }

    /// ``call(_:log:_:_:)`` that hands back errors of the `accepting` kinds instead of throwing.
    mutating func callResult<T>(
        _ client: KubeClient, log: @Sendable (String) -> Void, _ what: String, accepting: [KubeError.Kind],
        _ body: (KubeClient) async throws(KubeError) -> T
    ) async throws(NodeBootError) -> Result<T, KubeError> {
        var refreshed = false
        var delay = options.pollInterval
        var failures = 0
        var lastLog: ContinuousClock.Instant?
        while true {
            attempts += 1
            do {
                return .success(try await body(client))
            } catch {
                if accepting.contains(error.kind) { return .failure(error) }
                if error.kind == .unauthorized, !refreshed, let tokens {
                    refreshed = true
                    log("register: the API server refused the token (401); running the exec plugin again")
                    await tokens.invalidate()
                    _ = try await tokens.token()
                    continue
                }
                failures += 1
                let now = ContinuousClock.now
                guard error.isTransient, now + delay < deadline else {
                    throw explain(error, failures: failures)
                }
                // A kubelet that stopped running says more than the next retry would.
                if let failure = options.kubeletHealth?() { throw failure }
                if lastLog.map({ now - $0 >= options.progressInterval }) ?? true {
                    lastLog = now
                    log("register: \(error) — retrying (\(progress(now)))")
                }
                try await pause(until: now + delay.jitteredDown())
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    func pause(until instant: ContinuousClock.Instant) async throws(NodeBootError) {
        do {
            try await Task.sleep(until: instant, clock: .continuous)
        } catch {
            throw NodeBootError(.internal, "node registration was cancelled", cause: error)
        }
    }

    func progress(_ now: ContinuousClock.Instant) -> String {
        "\((now - start).tenthsOfSeconds) s of \(options.timeout.tenthsOfSeconds) s"
    }

    // MARK: Explanations

    /// The `NodeBootError` an operator can act on.
    func explain(_ error: KubeError, failures: Int) -> NodeBootError {
        let server = kubeconfig.server
        let host = URL(string: server)?.host() ?? server
        let retried =
            failures > 1 ? " (after \(failures) attempts in \((ContinuousClock.now - start).tenthsOfSeconds) s)" : ""
        switch error.kind {
        case .unauthorized:
            return NodeBootError(
                RegistrationFailure.code,
                "the API server \(server) refused this node's token (401 Unauthorized) for \(error.request)"
                    + (tokens == nil ? "" : ", also after a fresh token from '\(commandLine)'"),
                hint: accessEntryHint, cause: error)
        case .forbidden:
            return NodeBootError(
                RegistrationFailure.code,
                "the API server \(server) does not allow this node to \(error.request) (403 Forbidden): \(error.message)",
                hint: accessEntryHint
                    + "; the access entry maps the role to system:node:<private DNS name>, so the node name must be the instance's private DNS name",
                cause: error)
        case .tls:
            return NodeBootError(
                RegistrationFailure.code, "TLS with the API server \(server) failed: \(error.message)",
                hint:
                    "the cluster CA in \(caSource)\(fingerprintText) does not match the API server's certificate: set spec.cluster.certificateAuthority to the cluster's CA (aws eks describe-cluster --name \(clusterName) --query cluster.certificateAuthority.data) and the endpoint to the cluster's",
                cause: error)
        case .unreachable(.dns):
            return NodeBootError(
                RegistrationFailure.code, "cannot resolve the API server host \(host)\(retried): \(error.message)",
                hint:
                    "cannot resolve \(host): check the endpoint (spec.cluster.apiServerEndpoint) and, for a private endpoint, that the VPC has DNS resolution and DNS hostnames enabled",
                cause: error)
        case .unreachable(.connectionRefused):
            return NodeBootError(
                RegistrationFailure.code, "the API server \(server) refused the connection\(retried): \(error.message)",
                hint:
                    "nothing listens at \(server): check the endpoint (spec.cluster.apiServerEndpoint, aws eks describe-cluster --name \(clusterName) --query cluster.endpoint)",
                cause: error)
        case .unreachable(.timeout), .unreachable(.connection):
            return NodeBootError(
                RegistrationFailure.code, "no answer from the API server \(server)\(retried): \(error.message)",
                hint:
                    "check the endpoint; with a private endpoint the cluster security group must allow HTTPS (443) from this node's security group; with a public-only endpoint the subnet needs a route to the internet (NAT gateway) and the node's address must be in publicAccessCidrs",
                cause: error)
        case .credentials:
            return NodeBootError(
                RegistrationFailure.code, "no token for the API server: \(error.message)",
                hint: "run '\(commandLine)' on the node to see why", cause: error)
        case .cancelled:
            return NodeBootError(.internal, "node registration was cancelled", cause: error)
        case .configuration:
            return NodeBootError(.input, "kubeconfig \(kubeconfigFile): \(error.message)", cause: error)
        case .invalidName:
            return NodeBootError(
                .input, "\(error.request): \(error.message)",
                hint: "the node name is the instance's private DNS name, or its instance ID", cause: error)
        default:
            var message = "the API server \(server) failed \(error.request)\(retried): "
            message += error.status.map { "\($0) " } ?? ""
            message += (error.reason.map { "\($0): " } ?? "") + error.message
            return NodeBootError(
                RegistrationFailure.code, message,
                hint: error.isTransient
                    ? "the API server is unhealthy or throttling; nodeboot init retries on the next run" : nil,
                cause: error)
        }
    }

    var clusterName: String { kubeconfig.clusterName ?? "CLUSTER" }

    var commandLine: String {
        guard let exec = kubeconfig.exec else { return "the kubeconfig's token" }
        return ([exec.command] + exec.args).joined(separator: " ")
    }

    var accessEntryHint: String {
        "the API server does not accept this node's identity: the node's IAM role is not mapped — create an EKS access entry of type EC2_LINUX for the role (aws eks create-access-entry --cluster-name \(clusterName) --principal-arn ROLE_ARN --type EC2_LINUX), or map it in the aws-auth ConfigMap"
    }

    /// ` (SHA-256 fingerprint AB:CD:…)` of the CA's first certificate, as `openssl x509
    /// -noout -fingerprint -sha256` prints it; never the CA itself.
    var fingerprintText: String {
        guard let caPEM, let fingerprint = Self.fingerprint(pem: caPEM) else { return "" }
        return " (certificate SHA-256 fingerprint \(fingerprint))"
    }

    static func fingerprint(pem: [UInt8]) -> String? {
        let text = String(decoding: pem, as: UTF8.self)
        guard let begin = text.firstRange(of: "-----BEGIN CERTIFICATE-----"),
            let end = text[begin.upperBound...].firstRange(of: "-----END CERTIFICATE-----"),
            let der = Data(base64Encoded: text[begin.upperBound..<end.lowerBound].filter { !$0.isWhitespace })
        else { return nil }
        let hex = Array(Hex.sha256(Array(der)).uppercased())
        return stride(from: 0, to: hex.count, by: 2).map { String(hex[$0..<$0 + 2]) }.joined(separator: ":")
    }
}

extension Duration {
    /// Between three quarters and all of this duration.
    fileprivate func jitteredDown() -> Duration { self * Double.random(in: 0.75...1.0) }
}

/// The Node object this instance should have, and how an existing one differs from it.
struct RegistrationPlan: Sendable, Equatable {
    var providerID: String
    var labels: [String: String]
    /// From `--register-with-taints`; reconciled.
    var taints: [Node.Taint]
    /// Added at creation only (the kubelet's `node.cloudprovider.kubernetes.io/uninitialized`
    /// with `--cloud-provider=external`: the cloud controller removes it).
    var creationTaints: [Node.Taint]
    var annotations: [String: String]
    var addresses: [Node.Address]
    var capacity: [String: String]
    var allocatable: [String: String]
    /// `allocatable.cpu`, set at creation only (the kubelet reports the real value).
    var allocatableCPU: String?

    init(_ desired: DesiredNode) throws(NodeBootError) {
        let flags = KubeletFlags(desired.kubeletFlags)
        providerID = desired.providerID
        let hostname = desired.hostname.lowercased()
        labels = [
            "kubernetes.io/hostname": hostname, "kubernetes.io/os": desired.os, "kubernetes.io/arch": desired.arch,
            "beta.kubernetes.io/os": desired.os, "beta.kubernetes.io/arch": desired.arch,
            "node.kubernetes.io/instance-type": desired.instanceType, "topology.kubernetes.io/region": desired.region,
            "topology.kubernetes.io/zone": desired.zone,
        ]
        labels.merge(try flags.nodeLabels()) { $1 }
        taints = try flags.taints()
        creationTaints = []
        if flags.last("--cloud-provider") == "external" {
            let uninitialized = Node.Taint(
                key: "node.cloudprovider.kubernetes.io/uninitialized", value: "true", effect: "NoSchedule")
            if !taints.contains(where: { $0.key == uninitialized.key && $0.effect == uninitialized.effect }) {
                creationTaints = [uninitialized]
            }
        }
        annotations = ["volumes.kubernetes.io/controller-managed-attach-detach": "true"]
        if flags.last("--cloud-provider") == "external", let nodeIP = flags.last("--node-ip"), !nodeIP.isEmpty {
            annotations["alpha.kubernetes.io/provided-node-ip"] = nodeIP
        }
        var addresses: [Node.Address] = []
        func add(_ type: String, _ address: String?) {
            guard let address, !address.isEmpty else { return }
            let entry = Node.Address(type: type, address: address)
            if !addresses.contains(entry) { addresses.append(entry) }
        }
        add("InternalIP", desired.privateIPv4)
        add("InternalIP", desired.privateIPv6)
        add("InternalDNS", desired.privateDNSName)
        add("Hostname", hostname)
        self.addresses = addresses
        capacity = ["pods": String(desired.maxPods)]
        allocatable = ["pods": String(desired.maxPods)]
        if let cpus = desired.cpus, cpus > 0 {
            capacity["cpu"] = String(cpus)
            allocatableCPU = "\(cpus * 1000 - KubeReserved.cpuMillicores(onlineCPUs: cpus))m"
        }
    }

    /// The Node to create.
    func node(named name: String) -> Node {
        var allocatable = self.allocatable
        if let allocatableCPU { allocatable["cpu"] = allocatableCPU }
        return Node(
            metadata: .init(name: name, labels: labels, annotations: annotations),
            spec: .init(providerID: providerID, taints: taints + creationTaints),
            status: .init(addresses: addresses, capacity: capacity, allocatable: allocatable))
    }

    struct Difference {
        var objectPatch: Node?
        var statusPatch: Node?
        var changes: [String] = []
        var isEmpty: Bool { objectPatch == nil && statusPatch == nil }
    }

    /// What to patch so that `node` has every desired label, taint, address and capacity;
    /// what it has besides is kept.
    func difference(from node: Node) -> Difference {
        var result = Difference()
        let name = node.metadata.name
        var object = Node(apiVersion: nil, kind: nil, metadata: .init(name: name))
        let existingLabels = node.metadata.labels ?? [:]
        var labelPatch: [String: String] = [:]
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) where existingLabels[key] != value {
            labelPatch[key] = value
            result.changes.append("label \(key)=\(value)")
        }
        if !labelPatch.isEmpty { object.metadata.labels = labelPatch }
        var spec = Node.Spec()
        if (node.spec?.providerID ?? "").isEmpty {
            spec.providerID = providerID
            result.changes.append("providerID \(providerID)")
        }
        var taints = node.spec?.taints ?? []
        var taintsChanged = false
        for taint in self.taints where !taints.contains(where: { $0.matches(taint) }) {
            taints.removeAll { $0.key == taint.key && $0.effect == taint.effect }
            taints.append(taint)
            taintsChanged = true
            result.changes.append("taint \(taint)")
        }
        if taintsChanged {
            spec.taints = taints
            // The list is replaced whole: only over the version read (a 409 reads it again).
            object.metadata.resourceVersion = node.metadata.resourceVersion
        }
        if spec != Node.Spec() { object.spec = spec }
        if object.metadata.labels != nil || object.spec != nil { result.objectPatch = object }

        var status = Node.Status()
        let existingAddresses = node.status?.addresses ?? []
        let missing = addresses.filter { !existingAddresses.contains($0) }
        if !missing.isEmpty {
            status.addresses = existingAddresses + missing
            result.changes += missing.map { "address \($0.type) \($0.address)" }
        }
        let existingCapacity = node.status?.capacity ?? [:]
        var capacityPatch: [String: String] = [:]
        for (key, value) in capacity.sorted(by: { $0.key < $1.key }) where existingCapacity[key] != value {
            capacityPatch[key] = value
            result.changes.append("capacity \(key)=\(value)")
        }
        if !capacityPatch.isEmpty { status.capacity = capacityPatch }
        let existingAllocatable = node.status?.allocatable ?? [:]
        var allocatablePatch: [String: String] = [:]
        for (key, value) in allocatable.sorted(by: { $0.key < $1.key }) where existingAllocatable[key] != value {
            allocatablePatch[key] = value
            result.changes.append("allocatable \(key)=\(value)")
        }
        if !allocatablePatch.isEmpty { status.allocatable = allocatablePatch }
        if status != Node.Status() {
            result.statusPatch = Node(apiVersion: nil, kind: nil, metadata: .init(name: name), status: status)
        }
        return result
    }
}

/// The kubelet's flags as systemd passes `$NODEADM_KUBELET_ARGS`: split at whitespace;
/// `--flag=value` or `--flag value`.
struct KubeletFlags: Sendable {
    var words: [String]

    init(_ flags: [String]) {
        words = flags.flatMap { $0.split(whereSeparator: \.isWhitespace).map(String.init) }
    }

    /// Every value given to `name`, in order.
    func values(_ name: String) -> [String] {
        var result: [String] = []
        var index = 0
        while index < words.count {
            let word = words[index]
            if word == name, index + 1 < words.count {
                result.append(words[index + 1])
                index += 2
                continue
            }
            if word.hasPrefix(name + "=") { result.append(String(word.dropFirst(name.count + 1))) }
            index += 1
        }
        return result
    }

    func last(_ name: String) -> String? { values(name).last }

    /// `--node-labels=k=v,k2=v2`: every occurrence, later keys winning (the kubelet's map flag
    /// accumulates).
    func nodeLabels() throws(NodeBootError) -> [String: String] {
        var labels: [String: String] = [:]
        for value in values("--node-labels") {
            for pair in value.split(separator: ",") where !pair.isEmpty {
                guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                    throw NodeBootError(
                        .input, "kubelet flag --node-labels: '\(pair)' is not key=value",
                        hint: "write --node-labels=key=value,key2=value2 (spec.kubelet.flags)")
                }
                labels[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
        }
        return labels
    }

    /// `--register-with-taints=key=value:Effect,key2:Effect`: the last occurrence (the flag is
    /// set, not appended).
    func taints() throws(NodeBootError) -> [Node.Taint] {
        guard let value = last("--register-with-taints") else { return [] }
        var taints: [Node.Taint] = []
        for spec in value.split(separator: ",") where !spec.isEmpty {
            guard let colon = spec.lastIndex(of: ":") else {
                throw Self.badTaint(spec, "has no :Effect")
            }
            let effect = String(spec[spec.index(after: colon)...])
            guard ["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(effect) else {
                throw Self.badTaint(spec, "effect '\(effect)' is not NoSchedule, PreferNoSchedule or NoExecute")
            }
            let keyValue = spec[..<colon]
            let parts = keyValue.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            guard !key.isEmpty else { throw Self.badTaint(spec, "has no key") }
            let taint = Node.Taint(key: key, value: parts.count > 1 ? String(parts[1]) : nil, effect: effect)
            taints.removeAll { $0.key == taint.key && $0.effect == taint.effect }
            taints.append(taint)
        }
        return taints
    }

    static func badTaint(_ spec: Substring, _ problem: String) -> NodeBootError {
        NodeBootError(
            .input, "kubelet flag --register-with-taints: '\(spec)' \(problem)",
            hint: "write --register-with-taints=key=value:NoSchedule,key2:NoExecute (spec.kubelet.flags)")
    }
}
