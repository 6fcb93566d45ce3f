import AWS
import Bootstrap
import Foundation
import Logging
import NodeRender
import Systemd
import TestSupport
import Testbed
import Testing

/// `nodeboot reset` against a node root, the in-process testbed and a recording service
/// manager: init → reset leaves the tree as before init (a replaced file restored), init → reset →
/// init writes the same files as the first init, the daemons stopped in order, `--dry-run`
/// changes nothing, the Node deleted as the node (403 explained), ipamd's ENIs and addresses
/// given back to EC2 and nobody else's. (The same on real systemd: scripts/systemd-test.py.)
@Suite("nodeboot reset", .serialized)
struct ResetTests {
    struct Node {
        var root: String
        var config: String
        var testbed: Testbed
        var manager = RecordingServiceManager()

        func initialize(daemons: Set<Daemon>? = nil, register: Bool = false) async throws -> InitReport {
            var options = InitOptions()
            options.root = root
            options.sources = [.file(config)]
            options.manageServices = true
            options.daemons = daemons
            options.unitTimeout = .seconds(5)
            options.registerNode = register
            options.registerTimeout = .seconds(20)
            options.nodebootPath = Paths.debugBinaries.appendingPathComponent("nodeboot").path
            let manager = self.manager
            return try await NodeInit(
                options: options, environment: testbed.environment,
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                serviceManager: { () throws(SystemdError) -> any ServiceManager in manager }
            ).run()
        }

        func reset(_ change: (inout ResetOptions) -> Void = { _ in }) async throws -> ResetReport {
            var options = ResetOptions()
            options.root = root
            options.manageServices = true
            options.unitTimeout = .seconds(5)
            change(&options)
            let manager = self.manager
            return try await NodeReset(
                options: options, environment: testbed.environment,
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                serviceManager: { () throws(SystemdError) -> any ServiceManager in manager }
            ).run()
        }
    }

    static func withNode(_ body: (Node) async throws -> Void) async throws {
        let testbed = try await Testbed.start()
        do {
            let root = try NodeFixture.root()
            // What Debian's containerd package ships: init replaces it, reset puts it back.
            try FileManager.default.createDirectory(atPath: root + "/etc/containerd", withIntermediateDirectories: true)
            try Data("# the package's config\n".utf8).write(to: URL(fileURLWithPath: root + "/etc/containerd/config.toml"))
            try FileManager.default.setAttributes(
                [.posixPermissions: 0o640], ofItemAtPath: root + "/etc/containerd/config.toml")
            let config = root + "-config.yaml"
            try Data(
                "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: \(testbed.kubeClusterName)\n"
                    .utf8
            )
            .write(to: URL(fileURLWithPath: config))
            try await body(Node(root: root, config: config, testbed: testbed))
        } catch {
            try await testbed.shutdown()
            throw error
        }
        try await testbed.shutdown()
    }

    /// Files and links under `root` with their bytes (links: their target) and mode; directories
    /// listed as such. `except`: relative paths left out.
    static func tree(_ root: String, except: Set<String> = []) throws -> [String: String] {
        var result: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            guard !except.contains(relative) else { continue }
            let path = root + "/" + relative
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            let mode = (attributes[.posixPermissions] as? Int).map { String($0, radix: 8) } ?? "?"
            switch attributes[.type] as? FileAttributeType {
            case .typeSymbolicLink?: result[relative] = "-> " + (try FileManager.default.destinationOfSymbolicLink(atPath: path))
            case .typeDirectory?: result[relative] = "dir"
            default:
                result[relative] = mode + " " + (FileManager.default.contents(atPath: path)?.base64EncodedString() ?? "")
            }
        }
        return result
    }

    /// What init leaves that a fresh node has anyway (`/run`, `/var/lib`): empty system directories.
    static let systemDirectories: Set<String> = ["run", "var", "var/lib"]

    @Test("init → reset: the tree is as before init; the replaced file is back with its bytes and mode")
    func undoes() async throws {
        try await Self.withNode { node in
            let before = try Self.tree(node.root)
            let report = try await node.initialize()
            #expect(report.files.contains { $0.path == "/etc/containerd/config.toml" && $0.action == .updated })
            let reset = try await node.reset()
            #expect(reset.failures.isEmpty, "\(reset.failures)")
            #expect(try Self.tree(node.root, except: Self.systemDirectories) == before)
            #expect(reset.lines.contains("restored /etc/containerd/config.toml (as it was before nodeboot init)"))
            #expect(reset.lines.contains("removed /var/lib/kubelet/kubeconfig"))
            #expect(reset.lines.contains("removed /usr/local/bin/aws-iam-authenticator"))
            #expect(reset.lines.contains("removed the empty directory /etc/kubernetes"))
            // A second reset finds nothing left to do (but the lock it took itself in /run/nodeboot).
            let again = try await node.reset()
            let removed = again.lines.filter { $0.hasPrefix("removed") && !$0.contains("/run/nodeboot/") }
            #expect(again.failures.isEmpty && removed.isEmpty, "\(again.lines)")
        }
    }

    @Test("init → reset → init writes the same files as the first init (a first boot again)")
    func firstBootAgain() async throws {
        try await Self.withNode { node in
            let first = try await node.initialize()
            // The report differs in its times; the lock file is the lock's.
            let volatile: Set<String> = ["run/nodeboot/status.json", "run/nodeboot/init.lock"]
            let afterFirst = try Self.tree(node.root, except: volatile)
            _ = try await node.reset()
            let second = try await node.initialize()
            #expect(try Self.tree(node.root, except: volatile) == afterFirst)
            #expect(second.files.map(\.action) == first.files.map(\.action), "created/updated as on the first boot")
            func actions(_ report: InitReport) -> [String] {
                report.services.actions.map { "\($0.unit) \($0.action.rawValue) (\($0.reason))" }
            }
            #expect(actions(second) == actions(first), "the daemons started as on the first boot")
        }
    }

    @Test("the daemons are stopped kubelet first, then the pods' slice, ipamd and containerd; --daemon= stops none")
    func stopsInOrder() async throws {
        try await Self.withNode { node in
            _ = try await node.initialize(daemons: [.containerd, .ipamd, .kubelet])
            node.manager.clearCalls()
            node.manager.set("kubepods.slice", UnitState(loadState: "loaded", activeState: "active", subState: "active"))
            let reset = try await node.reset { $0.keepNetwork = true }
            #expect(
                node.manager.actions == [
                    "stop kubelet.service", "stop kubepods.slice", "stop nodeboot-ipamd.service", "stop containerd.service",
                ])
            #expect(
                reset.lines.prefix(4) == [
                    "stopped kubelet.service", "stopped kubepods.slice", "stopped nodeboot-ipamd.service",
                    "stopped containerd.service",
                ])
            _ = try await node.initialize()
            node.manager.clearCalls()
            _ = try await node.reset { $0.daemons = [] }
            #expect(node.manager.calls.isEmpty)
        }
    }

    @Test("--dry-run lists every step and changes nothing")
    func dryRun() async throws {
        try await Self.withNode { node in
            _ = try await node.initialize(daemons: [.containerd, .ipamd, .kubelet])
            let before = try Self.tree(node.root)
            node.manager.clearCalls()
            let report = try await node.reset {
                $0.dryRun = true
                $0.deleteNode = true
            }
            #expect(try Self.tree(node.root) == before)
            #expect(node.manager.actions.isEmpty)
            for line in [
                "stop kubelet.service", "stop nodeboot-ipamd.service", "stop containerd.service",
                "remove /etc/kubernetes/kubelet/config.json",
                "restore /etc/containerd/config.toml (as it was before nodeboot init)",
                "remove /var/lib/nodeboot/ (nodeboot's caches)", "remove /run/nodeboot/ (nodeboot's run state)",
            ] {
                #expect(report.lines.contains(line), "\(line) in \(report.lines)")
            }
            #expect(report.lines.contains { $0.hasPrefix("delete the Node ip-") })
            #expect(report.lines.contains { $0.hasPrefix("give back to EC2 the ENIs ipamd created") })
            #expect(report.text(dryRun: true).hasPrefix("nodeboot reset --dry-run: nothing was changed; it would:\n"))
        }
    }

    @Test("--delete-node deletes the Node as the node; another node's Node is refused with the fix")
    func deleteNode() async throws {
        try await Self.withNode { node in
            let report = try await node.initialize(register: true)
            let name = report.nodeName
            let forbidden = try await node.reset {
                $0.deleteNode = true
                $0.nodeName = "ip-10-0-0-1.us-west-2.compute.internal"
                $0.daemons = []
            }
            let failure = try #require(forbidden.failures.first)
            #expect(failure.code == .kube)
            #expect(
                failure.message.contains(
                    "does not allow this node to delete the Node ip-10-0-0-1.us-west-2.compute.internal (403 Forbidden)"))
            #expect(failure.hint?.contains("kubectl delete node ip-10-0-0-1.us-west-2.compute.internal") == true)

            _ = try await node.initialize(register: true)
            let deleted = try await node.reset { $0.deleteNode = true }
            #expect(deleted.failures.isEmpty, "\(deleted.failures)")
            #expect(deleted.lines.contains("deleted the Node \(name)"))
            let requests = await node.testbed.requests().filter { $0.method == "DELETE" && $0.path.hasSuffix("/nodes/\(name)") }
            #expect(requests.map(\.status) == [200])
            // The record and the kubeconfig are gone with the rest: the next --delete-node says how else to do it.
            let unnamed = try await node.reset { $0.deleteNode = true }
            #expect(unnamed.failures.first?.hint == "give it with --node-name NAME (kubectl get nodes)")
            let named = try await node.reset {
                $0.deleteNode = true
                $0.nodeName = name
            }
            #expect(named.failures.first?.hint == "delete the Node as a cluster administrator: kubectl delete node \(name)")
        }
    }

    @Test("ipamd's ENIs are detached and deleted, the primary ENI's secondaries unassigned; other ENIs kept")
    func releasesNetwork() async throws {
        try await Self.withNode { node in
            _ = try await node.initialize(daemons: [.containerd, .ipamd, .kubelet])
            let session = try AWSSession(environment: node.testbed.environment)
            let ec2 = try await session.client(region: node.testbed.region)
            let instance = "i-1234567890abcdef0"
            let interfaces = await node.testbed.networkInterfaces()
            let primary = try #require(interfaces.first { $0.attachment?.deviceIndex == 0 })
            _ = try await ec2.assignPrivateIPs(eni: primary.networkInterfaceId, count: 3)
            let ours = try await ec2.createNetworkInterface(
                subnet: primary.subnetId, groups: primary.securityGroupIds, description: "nodeboot-\(instance)",
                addresses: .secondaryIPv4(count: 2))
            _ = try await ec2.attachNetworkInterface(eni: ours.id, instance: instance, deviceIndex: 1)
            let other = try await ec2.createNetworkInterface(
                subnet: primary.subnetId, groups: primary.securityGroupIds, description: "launch template ENI")
            _ = try await ec2.attachNetworkInterface(eni: other.id, instance: instance, deviceIndex: 2)
            await session.shutdown()

            let report = try await node.reset()
            #expect(report.failures.isEmpty, "\(report.failures)")
            #expect(report.lines.contains("detached and deleted ipamd's ENI \(ours.id) (device 1)"))
            #expect(report.lines.contains("unassigned 3 secondary address(es) of the primary ENI \(primary.networkInterfaceId)"))
            let after = await node.testbed.networkInterfaces()
            #expect(!after.contains { $0.networkInterfaceId == ours.id })
            #expect(after.first { $0.networkInterfaceId == other.id }?.attachment?.deviceIndex == 2)
            #expect(after.first { $0.networkInterfaceId == primary.networkInterfaceId }?.privateIpAddresses.count == 1)
        }
    }

    @Test("without ipamd on the node, reset makes no EC2 call")
    func noIPAMD() async throws {
        try await Self.withNode { node in
            _ = try await node.initialize()
            await node.testbed.clearRequests()
            _ = try await node.reset()
            let ec2 = await node.testbed.requests().filter { $0.action != nil && $0.endpoint.contains("aws") }
            #expect(ec2.isEmpty, "\(ec2.map { $0.action ?? "" })")
        }
    }
}
