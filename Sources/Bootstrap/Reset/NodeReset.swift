import AWS
import FoundationEssentials
import KubeAPI
public import Logging
public import NodeRender
import Support
public import Systemd

#if canImport(Glibc)
    import Glibc
#endif

/// `nodeboot reset`'s options.
public struct ResetOptions: Sendable {
    /// The daemons to stop (default: all three); empty: none (`--daemon=`).
    public var daemons: Set<Daemon> = Set(Daemon.allCases)
    /// `--delete-node`: delete the Node object with the node's own credentials.
    public var deleteNode = false
    /// `--node-name`: the Node to delete (default: the name the last init used).
    public var nodeName: String?
    /// `--keep-network`: leave ipamd's addresses and ENIs in EC2 and its state in the node's kernel.
    public var keepNetwork = false
    public var dryRun = false
    public var root: String?
    /// Whether services are stopped: by default yes, except under `--root`; tests with a fake manager set true.
    public var manageServices: Bool?
    /// Whether ipamd's kernel state (rules, tables, pod veths, the nft table) is removed: by
    /// default yes, except under `--root` (the tree's network is this machine's); tests that
    /// give a namespace's `kernelNetwork` set true.
    public var manageNetwork: Bool?
    public var unitTimeout: Duration = .seconds(90)
    public var imdsDeadline: Duration = .seconds(20)
    /// Bound on waiting for a detached ENI to become `available`.
    public var detachTimeout: Duration = .seconds(30)
    public var requestTimeout: Duration = .seconds(10)
    /// How long to wait for an init that holds the node's lock.
    public var lockTimeout: Duration = .seconds(60)

    public init() {}
}

/// The request to `NodeReset.kernelNetwork`: remove (`dryRun`: list) ipamd's state in the
/// node's kernel.
public struct KernelNetworkRequest: Sendable {
    public var dryRun: Bool
    /// `/etc/nodeboot/ipamd.json` or ipamd's run state is on the node.
    public var ipamdConfigured: Bool
    /// The pods were stopped (kubelet.service and kubepods.slice): their veths may go.
    public var pods: Bool
}

/// What `NodeReset.kernelNetwork` removed (or would), and what failed, one line each.
public struct KernelNetworkOutcome: Sendable {
    public var lines: [String]
    public var failures: [String]

    public init(lines: [String], failures: [String]) {
        self.lines = lines
        self.failures = failures
    }
}

/// What reset did, step by step: `done` lines, and the steps that failed (the run then exits 1).
public struct ResetReport: Sendable {
    public var lines: [String] = []
    public var failures: [NodeBootError] = []

    public func text(dryRun: Bool) -> String {
        var out = dryRun ? "nodeboot reset --dry-run: nothing was changed; it would:\n" : ""
        for line in lines { out += (dryRun ? "  " : "") + line + "\n" }
        if lines.isEmpty { out += dryRun ? "  nothing: no trace of nodeboot init on this node\n" : "nothing to reset\n" }
        return out
    }
}

/// `nodeboot reset` (kubeadm reset's counterpart): undo `init` so that the next `init` runs as
/// on a first boot. In order: stop the kubelet (and the pods' `kubepods.slice`), delete the Node
/// (`--delete-node`), stop ipamd, give ipamd's addresses and ENIs back to EC2, stop containerd,
/// remove ipamd's state in the node's kernel (`kernelNetwork`: its nft table, rules, ENI tables,
/// the pods' veths), remove what init recorded in `installed.json` (restoring files that were
/// there before it), the ipamd conflist, the caches (`/var/lib/nodeboot`, `/run/nodeboot`, the
/// config cache) and nodeadm's run marker. A failed step does not stop the others; each is reported.
public struct NodeReset: Sendable {
    public var options: ResetOptions
    public var environment: [String: String]
    public var logger: Logger
    public var serviceManager: @Sendable () throws(SystemdError) -> any ServiceManager
    /// Removes ipamd's kernel state (nft table, rules, ENI tables, pod veths). Bootstrap may not
    /// import IPAM (docs/architecture.md): the `nodeboot` executable passes `IPAM.NodeTeardown`
    /// here; nil: the step is left out.
    public var kernelNetwork: (@Sendable (KernelNetworkRequest) async -> KernelNetworkOutcome)?

    public init(
        options: ResetOptions, environment: [String: String], logger: Logger,
        serviceManager: @escaping @Sendable () throws(SystemdError) -> any ServiceManager = {
            () throws(SystemdError) -> any ServiceManager in try SystemdServiceManager()
        },
        kernelNetwork: (@Sendable (KernelNetworkRequest) async -> KernelNetworkOutcome)? = nil
    ) {
        self.options = options
        self.environment = environment
        self.logger = logger
        self.serviceManager = serviceManager
        self.kernelNetwork = kernelNetwork
    }

    var paths: NodePaths { NodePaths(root: options.root) }

    /// ipamd's outputs that init does not write: the conflist (IPAM.Conflist.path).
    static let conflist = "/etc/cni/net.d/10-nodeboot.conflist"
    static let podSlice = "kubepods.slice"

    public func run() async throws(NodeBootError) -> ResetReport {
        var report = ResetReport()
        let record = try InstallRecord.load(paths)
        let status = try? StatusReport.read(paths).1  // no report (rebooted) or a damaged one: the record suffices
        let nodeName = options.nodeName ?? (record?.nodeName).flatMap { $0.isEmpty ? nil : $0 } ?? status?.node.name ?? ""
        let ipamdConfigured =
            NodeFileSystem.exists(paths.node(IPAMDSpec.path))
            || NodeFileSystem.exists(paths.node(NodePaths.runDirectory + "/ipamd"))

        // One init or reset at a time: an init starting now would write while files go.
        let lock =
            options.dryRun
            ? nil
            : try await InitLock.acquire(paths, timeout: options.lockTimeout) { holder in
                logger.notice(
                    "waiting for the nodeboot init\(holder.map { " (pid \($0))" } ?? "") that holds \(InitLock.path)",
                    metadata: ["phase": "reset"])
            }
        defer { withExtendedLifetime(lock) {} }
        let manager = try openManager(&report)
        // 1. The kubelet, and every pod's processes with it (else they run on without a node).
        if options.daemons.contains(.kubelet) {
            await stop(ServiceUnit.kubelet.rawValue, manager, &report)
            await stop(Self.podSlice, manager, &report, optional: true)
        }
        // 2. The Node, with the kubeconfig init wrote (before it is removed).
        if options.deleteNode {
            if !options.daemons.contains(.kubelet) {
                report.lines.append(
                    "note: kubelet.service is not among the daemons to stop: a running kubelet registers the Node again")
            }
            await deleteNode(nodeName, &report)
        }
        // 3. ipamd, then what it holds in EC2 (a running ipamd would grow its pool again).
        if options.daemons.contains(.ipamd) {
            await stop(ServiceUnit.ipamd.rawValue, manager, &report, optional: true)
            if ipamdConfigured && !options.keepNetwork { await releaseNetwork(&report) }
        } else if ipamdConfigured && !options.keepNetwork {
            report.lines.append(
                "keep ipamd's addresses, ENIs and kernel state: nodeboot-ipamd is not among the daemons to stop (a running ipamd would make them again)"
            )
        }
        // 4. containerd.
        if options.daemons.contains(.containerd) { await stop(ServiceUnit.containerd.rawValue, manager, &report) }
        // 5. ipamd's state in the kernel: with ipamd stopped (else it makes it again), after
        // containerd (no CNI call meanwhile) and before its files go (they say ipamd was here).
        if options.daemons.contains(.ipamd) && !options.keepNetwork { await resetKernelNetwork(ipamdConfigured, &report) }
        // 6. Files, links, caches.
        removeFiles(record: record, status: status, &report)
        return report
    }

    // MARK: Services

    func openManager(_ report: inout ResetReport) throws(NodeBootError) -> (any ServiceManager)? {
        guard !options.daemons.isEmpty else { return nil }
        guard options.manageServices ?? (options.root == nil) else {
            report.lines.append("leave this machine's services alone (--root)")
            return nil
        }
        if options.dryRun { return nil }
        do {
            return try serviceManager()
        } catch {
            throw NodeBootError(
                .systemd, "cannot stop the node's services: \(error.message)",
                hint: "nodeboot reset stops units through systemd (PID 1); use --daemon= to stop none", cause: error)
        }
    }

    func stop(_ unit: String, _ manager: (any ServiceManager)?, _ report: inout ResetReport, optional: Bool = false) async {
        guard options.manageServices ?? (options.root == nil) else { return }
        if options.dryRun {
            report.lines.append("stop \(unit)")
            return
        }
        guard let manager else { return }
        do {
            let state = try await manager.state(of: unit)
            if state.loadState == "not-found" {
                if !optional { report.lines.append("\(unit): not installed") }
                return
            }
            if state.activeState == "inactive" || state.activeState == "failed" {
                report.lines.append("\(unit): not running")
                return
            }
            _ = try await manager.perform(.stop, unit: unit, timeout: options.unitTimeout)
            report.lines.append("stopped \(unit)")
            logger.notice("stopped \(unit)", metadata: ["phase": "reset", "unit": "\(unit)"])
        } catch {
            report.failures.append(
                NodeBootError(
                    .systemd, "cannot stop \(unit): \(error.message)",
                    hint: "see journalctl -u \(unit); stop it with systemctl stop \(unit), then run nodeboot reset again",
                    cause: error))
        }
    }

    // MARK: The Node

    func deleteNode(_ name: String, _ report: inout ResetReport) async {
        guard !name.isEmpty else {
            report.failures.append(
                NodeBootError(
                    .input, "--delete-node: the node name is not known (no record of a previous init on this node)",
                    hint: "give it with --node-name NAME (kubectl get nodes)"))
            return
        }
        let kubeconfig = [KubeletConfig.kubeconfigPath, KubeletConfig.bootstrapKubeconfigPath].first {
            NodeFileSystem.exists(paths.node($0))
        }
        guard let kubeconfig else {
            report.failures.append(
                NodeBootError(
                    .kube,
                    "--delete-node: no kubeconfig at \(paths.node(KubeletConfig.kubeconfigPath)) to reach the API server as this node",
                    hint: "delete the Node as a cluster administrator: kubectl delete node \(name)"))
            return
        }
        if options.dryRun {
            report.lines.append("delete the Node \(name) (as this node, with \(kubeconfig))")
            return
        }
        let start = ContinuousClock.now
        let access: ClusterAccess
        do {
            access = try ClusterAccess(
                kubeconfigPath: kubeconfig, paths: paths, environment: environment, deadline: start + .seconds(60))
        } catch {
            report.failures.append(error)
            return
        }
        let tokens = access.tokens
        let staticToken = access.kubeconfig.token
        let client: KubeClient
        do {
            client = try KubeClient(
                endpoint: access.kubeconfig.server, caPEM: access.caPEM,
                token: {
                    if let staticToken { return staticToken }
                    guard let tokens else { throw NodeBootError(.internal, "no token source") }
                    return try await tokens.token()
                }, requestTimeout: options.requestTimeout)
        } catch {
            report.failures.append(NodeBootError(.input, "kubeconfig \(access.kubeconfigFile): \(error.message)"))
            return
        }
        do {
            let deleted = try await client.deleteNode(name)
            report.lines.append(deleted ? "deleted the Node \(name)" : "the Node \(name) was not in the API server")
        } catch  where error.kind == .forbidden {
            report.failures.append(
                NodeBootError(
                    .kube,
                    "the API server \(access.kubeconfig.server) does not allow this node to delete the Node \(name) (403 Forbidden): \(error.message)",
                    hint:
                        "a node's identity (system:node:<its name>) may delete only its own Node: check --node-name; otherwise delete it as a cluster administrator: kubectl delete node \(name)",
                    cause: error))
        } catch {
            report.failures.append(access.explain(error, failures: 1, elapsed: ContinuousClock.now - start))
        }
        await client.shutdown()
    }

    // MARK: ipamd's addresses and ENIs

    /// With ipamd stopped: the ENIs ipamd created (description `nodeboot-…`, attached to this
    /// instance) detached and deleted, and the secondary addresses and /28 prefixes of the primary
    /// ENI (ipamd's pool) unassigned; through EC2 with the instance's own credentials, the
    /// permissions ipamd itself needs.
    func releaseNetwork(_ report: inout ResetReport) async {
        if options.dryRun {
            report.lines.append(
                "give back to EC2 the ENIs ipamd created (description nodeboot-<instance id>) and the primary ENI's secondary addresses and prefixes"
            )
            return
        }
        let sessions = Sessions()
        do {
            let session = try sessions.open(environment, imdsDeadline: options.imdsDeadline)
            let identity = try await session.imds.identity()
            let ec2 = try await session.client(region: session.region(identity: identity).region)
            let attached = try await ec2.describeNetworkInterfaces(filters: [
                "attachment.instance-id": [identity.instanceId]
            ])
            for eni in attached.sorted(by: { ($0.attachment?.deviceIndex ?? 0) > ($1.attachment?.deviceIndex ?? 0) }) {
                guard let attachment = eni.attachment else { continue }
                if attachment.deviceIndex == 0 && attachment.networkCardIndex == 0 {
                    if !eni.secondaryIPv4s.isEmpty {
                        try await ec2.unassignPrivateIPs(eni: eni.id, addresses: eni.secondaryIPv4s)
                        report.lines.append(
                            "unassigned \(eni.secondaryIPv4s.count) secondary address(es) of the primary ENI \(eni.id)")
                    }
                    if !eni.ipv4Prefixes.isEmpty {
                        try await ec2.unassignIPv4Prefixes(eni: eni.id, prefixes: eni.ipv4Prefixes)
                        report.lines.append("unassigned \(eni.ipv4Prefixes.count) prefix(es) of the primary ENI \(eni.id)")
                    }
                } else if eni.description.hasPrefix("nodeboot-") {
                    try await ec2.detachNetworkInterface(attachment: attachment.id)
                    let deadline = ContinuousClock.now + options.detachTimeout
                    while ContinuousClock.now < deadline {
                        let current = try await ec2.describeNetworkInterfaces(ids: [eni.id]).first
                        if current == nil || current?.status == "available" { break }
                        try await Task.sleep(for: .milliseconds(500))
                    }
                    _ = try await ec2.deleteNetworkInterface(eni.id)
                    report.lines.append("detached and deleted ipamd's ENI \(eni.id) (device \(attachment.deviceIndex))")
                }
            }
        } catch let error as NodeBootError {
            report.failures.append(error)
        } catch {
            report.failures.append(
                NodeBootError(
                    .aws, "cannot give ipamd's addresses and ENIs back to EC2: \(error)",
                    hint:
                        "the instance role needs ec2:DescribeNetworkInterfaces, DetachNetworkInterface, DeleteNetworkInterface, UnassignPrivateIpAddresses (as ipamd); run nodeboot reset again, or --keep-network to leave them",
                    cause: error))
        }
        await sessions.shutdown()
    }

    // MARK: ipamd's kernel state

    /// ipamd's nft table, rules, ENI tables and the pods' veths, through `kernelNetwork`; the pods'
    /// veths only when the pods were stopped with the kubelet.
    func resetKernelNetwork(_ ipamdConfigured: Bool, _ report: inout ResetReport) async {
        guard options.manageNetwork ?? (options.root == nil), let kernelNetwork else { return }
        let outcome = await kernelNetwork(
            KernelNetworkRequest(
                dryRun: options.dryRun, ipamdConfigured: ipamdConfigured, pods: options.daemons.contains(.kubelet)))
        report.lines += outcome.lines
        for line in outcome.lines where !options.dryRun { logger.info("\(line)", metadata: ["phase": "reset"]) }
        for failure in outcome.failures {
            report.failures.append(
                NodeBootError(
                    .io, "ipamd's kernel state: \(failure)",
                    hint:
                        "run nodeboot reset again (it finds what is left by ipamd's markers), or reboot: none of it survives one"
                ))
        }
    }

    // MARK: Files

    func removeFiles(record: InstallRecord?, status: StatusReport?, _ report: inout ResetReport) {
        var entries = record?.entries ?? []
        if record == nil, let status {
            // A node set up before the record existed: what the last run reported.
            entries = status.files.map { InstallRecord.Entry(path: $0.path, kind: .file) }
        }
        for entry in entries.reversed() {
            let full = paths.node(entry.path)
            let present = NodeFileSystem.exists(full) || NodeFileSystem.linkTarget(full) != nil
            if entry.original {
                let copy = paths.node(InstallRecord.originalDirectory + entry.path)
                guard let bytes = try? NodeFileSystem.read(copy) ?? nil else {  // a missing copy: leave the file
                    report.failures.append(
                        NodeBootError(
                            .io, "the copy of \(full) from before nodeboot init is missing (\(copy)); the file was left"))
                    continue
                }
                change(&report, "restore \(entry.path) (as it was before nodeboot init)") { () throws(NodeBootError) in
                    do {
                        try NodeFileSystem.writeAtomically(full, bytes, mode: entry.originalMode ?? 0o644)
                    } catch {
                        throw NodeBootError(.io, "cannot restore \(full): \(error)", cause: error)
                    }
                }
            } else if let target = entry.originalTarget {
                change(&report, "point \(entry.path) at \(target) again") { () throws(NodeBootError) in
                    do {
                        try NodeFileSystem.linkAtomically(full, target: target)
                    } catch {
                        throw NodeBootError(.io, "cannot restore the link \(full): \(error)", cause: error)
                    }
                }
            } else if present {
                remove(full, as: entry.path, &report)
            }
        }
        remove(paths.node(Self.conflist), as: Self.conflist, &report)
        for cache in record?.configCaches ?? [] { remove(cache, as: cache, &report) }
        remove(paths.node(NodePaths.runMarker), as: NodePaths.runMarker, &report)
        let markerDirectory = String(
            NodePaths.runMarker[..<(NodePaths.runMarker.lastIndex(of: "/") ?? NodePaths.runMarker.endIndex)])
        if NodeFileSystem.list(paths.node(markerDirectory))?.isEmpty == true && !options.dryRun {
            rmdir(paths.node(markerDirectory))  // nodeadm's directory held only the marker
        }
        for directory in [NodePaths.runDirectory, NodePaths.stateDirectory] {
            let full = paths.node(directory)
            guard NodeFileSystem.exists(full) else { continue }
            change(&report, "remove \(directory)/ (nodeboot's \(directory.hasPrefix("/run") ? "run state" : "caches"))") {
                () throws(NodeBootError) in try Self.removeTree(full)
            }
        }
        // The directories init created, innermost first, when nothing else was put in them.
        if options.dryRun, let directories = record?.directories, !directories.isEmpty {
            report.lines.append("remove the directories init created, those left empty: \(directories.joined(separator: ", "))")
            return
        }
        for directory in (record?.directories ?? []).reversed() {
            let full = paths.node(directory)
            guard let listing = NodeFileSystem.list(full), listing.isEmpty else { continue }
            change(&report, "remove the empty directory \(directory)") { () throws(NodeBootError) in
                guard rmdir(full) == 0 else {
                    throw NodeBootError(.io, "cannot remove \(full): \(String(cString: strerror(errno)))")
                }
            }
        }
    }

    func remove(_ full: String, as path: String, _ report: inout ResetReport) {
        guard NodeFileSystem.exists(full) || NodeFileSystem.linkTarget(full) != nil else { return }
        change(&report, "remove \(path)") { () throws(NodeBootError) in
            do {
                try NodeFileSystem.remove(full)
            } catch {
                throw NodeBootError(.io, "cannot remove \(full): \(error)", cause: error)
            }
        }
    }

    /// One change: listed in a dry run, else made and listed, or recorded as a failure.
    func change(_ report: inout ResetReport, _ what: String, _ body: () throws(NodeBootError) -> Void) {
        if options.dryRun {
            report.lines.append(what)
            return
        }
        do {
            try body()
            report.lines.append(what.replacingFirstVerb())
            logger.info("\(what)", metadata: ["phase": "reset"])
        } catch {
            report.failures.append(error)
        }
    }

    /// Removes `path` and everything under it, never following a symbolic link.
    static func removeTree(_ path: String) throws(NodeBootError) {
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        if info.st_mode & S_IFMT == S_IFDIR {
            for name in NodeFileSystem.list(path) ?? [] { try removeTree(path + "/" + name) }
            guard rmdir(path) == 0 else {
                throw NodeBootError(.io, "cannot remove \(path): \(String(cString: strerror(errno)))")
            }
        } else if unlink(path) != 0 && errno != ENOENT {
            throw NodeBootError(.io, "cannot remove \(path): \(String(cString: strerror(errno)))")
        }
    }
}

extension String {
    /// "remove X" → "removed X", for the lines of what was done.
    fileprivate func replacingFirstVerb() -> String {
        for (verb, past) in [("remove ", "removed "), ("restore ", "restored "), ("point ", "pointed ")]
        where hasPrefix(verb) {
            return past + dropFirst(verb.count)
        }
        return self
    }
}
