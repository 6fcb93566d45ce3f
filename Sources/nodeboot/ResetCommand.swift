import Bootstrap
import FoundationEssentials
import IPAM
import Logging
import NodeRender
import Support
import Systemd

#if canImport(Glibc)
    import Glibc
#endif

/// `nodeboot reset`: undo `init` (kubeadm reset's counterpart).
struct Reset {
    static let command = Command(
        "reset",
        abstract:
            "Undo init: stop the daemons, release ipamd's addresses and ENIs, remove what init wrote; the next init is a first boot.",
        discussion:
            "Stops the kubelet (and the pods' kubepods.slice), nodeboot-ipamd and containerd; with ipamd, gives its ENIs and the "
            + "primary ENI's secondary addresses back to EC2 and removes its kernel state (the nft table ip nodeboot, its "
            + "rules and ENI route tables, the pods' veths); removes the files and links init recorded (restoring those that "
            + "were there before it), ipamd's conflist, /var/lib/nodeboot, /run/nodeboot, the config cache and /run/nodeadm/init. "
            + "Exit 1 when a step failed (every step is tried).",
        options: [
            .value(
                "daemon", short: "d", "daemon",
                "Stop only these daemons (containerd, kubelet, nodeboot-ipamd; default all three); '--daemon=' for none."),
            .flag("no-daemons", "", hidden: true),
            .flag("delete-node", "Delete the Node object from the API server, as this node (its kubeconfig and token helper)."),
            .value("node-name", "node-name", "The Node to delete (default: the name the last init used)."),
            .flag("keep-network", "Leave ipamd's addresses and ENIs assigned in EC2, and its rules, tables and nft table."),
            .flag("dry-run", "List what reset would do; change nothing."),
            .value("root", "root", "Node root: reset the tree under this directory (this machine's services are not touched)."),
            .value("unit-timeout", "unit-timeout", "Seconds each unit stop may take (default 90)."),
        ] + IMDSOptions.options)

    let arguments: Arguments

    init(_ arguments: Arguments) { self.arguments = arguments }

    func options() throws -> ResetOptions {
        var options = ResetOptions()
        if arguments.flag("no-daemons") { options.daemons = [] }
        let named = arguments.strings("daemon").filter { !$0.isEmpty }
        if !named.isEmpty && !arguments.flag("no-daemons") {
            options.daemons = []
            for name in named {
                guard let daemon = Daemon(rawValue: name) else {
                    throw Failure(
                        NodeBootError(.input, "--daemon \(name): not a daemon", hint: "use containerd, kubelet or nodeboot-ipamd")
                    )
                }
                options.daemons.insert(daemon)
            }
        }
        options.deleteNode = arguments.flag("delete-node")
        if let name = arguments.string("node-name") {
            guard !name.isEmpty else {
                throw Failure(NodeBootError(.input, "--node-name is empty", hint: "give the Node's name"))
            }
            options.nodeName = name
        }
        options.keepNetwork = arguments.flag("keep-network")
        options.dryRun = arguments.flag("dry-run")
        if let root = arguments.string("root") {
            guard !root.isEmpty else { throw Failure(NodeBootError(.input, "--root is empty", hint: "give a directory")) }
            options.root = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
            guard NodeFileSystem.status(options.root ?? root)?.isDirectory == true else {
                throw Failure(
                    NodeBootError(.input, "--root \(root): no such directory", hint: "give the node tree init wrote under"))
            }
        }
        options.unitTimeout = .milliseconds(Int64(try arguments.seconds("unit-timeout", default: 90) * 1000))
        options.imdsDeadline = try IMDSOptions.deadline(arguments)
        return options
    }

    func run() async throws {
        let options = try options()
        if options.root == nil && !options.dryRun && getuid() != 0 {
            throw Failure(
                NodeBootError(.io, "must run as root", hint: "use sudo, --dry-run to see what reset would do, or --root DIR"))
        }
        let reset = NodeReset(
            options: options, environment: ProcessInfo.processInfo.environment, logger: Init.logger(),
            kernelNetwork: { request in
                let outcome = await NodeTeardown.onNode(
                    dryRun: request.dryRun, ipamdConfigured: request.ipamdConfigured, pods: request.pods)
                return KernelNetworkOutcome(lines: outcome.lines, failures: outcome.failures)
            })
        let report: ResetReport
        do {
            report = try await reset.run()
        } catch {
            throw Failure(error)
        }
        StandardStreams.output(report.text(dryRun: options.dryRun))
        guard let last = report.failures.last else { return }
        for failure in report.failures.dropLast() { StandardStreams.error("nodeboot: error: \(failure)\n") }
        throw Failure(last)
    }
}
