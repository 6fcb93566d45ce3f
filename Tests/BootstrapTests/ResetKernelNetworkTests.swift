import Bootstrap
import CNIPlugin
import Foundation
import IPAM
import IPAMProtocol
import Logging
import Netlink
import NodeRender
import Systemd
import TestSupport
import Testbed
import Testing

/// `nodeboot reset` removes ipamd's kernel state (docs/compat.md, the reset section) in a network
/// namespace this test makes: the state is made by ipamd's and the CNI plugin's own code
/// (`NodeNetwork.ensureHost`, `NodeNetwork.ensure`, `PacketFilter.apply`, `PodNetwork.add`), the
/// reset runs as `nodeboot reset` does (`NodeReset` with `NodeTeardown` as its kernel step), and
/// the namespace's nft ruleset, rules, routes and links are compared with what they were before
/// ipamd: an operator's nft table, rules, route table and `eni`-named link survive.
@Suite("nodeboot reset: ipamd's kernel state", .serialized)
struct ResetKernelNetworkTests {
    static let unavailable: String? = {
        guard geteuid() == 0 else { return "needs root for network namespaces (running as uid \(geteuid()))" }
        guard ChildProcess.exists("ip") else { return "needs iproute2's ip" }
        guard PacketFilter.Command.nft() != nil else { return "needs nftables' nft" }
        return nil
    }()

    @discardableResult
    static func run(_ arguments: String...) async throws -> String {
        let result = try await ChildProcess.run(arguments, environment: ChildProcess.cleanEnvironment())
        try #require(result.status == 0, "\(arguments.joined(separator: " ")): \(result.stderr)")
        return result.stdout
    }

    /// `nft` inside `namespace`, as ipamd's code runs it.
    static func nft(in namespace: String) -> PacketFilter.Command {
        let candidates: [String] = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        let ip = candidates.first { FileManager.default.isExecutableFile(atPath: $0) } ?? "/usr/sbin/ip"
        return PacketFilter.Command(program: ip, arguments: ["netns", "exec", namespace, "nft"])
    }

    /// What the namespace's kernel holds that reset must put back: the nft ruleset, the rules and
    /// routes (every table) of both families, the link names.
    struct Snapshot: Equatable, CustomStringConvertible {
        var nft: String
        var rules: String
        var routes: String
        var links: [String]

        var description: String { "nft:\n\(nft)\nrules:\n\(rules)\nroutes:\n\(routes)\nlinks: \(links)" }
    }

    static func snapshot(_ namespace: String) async throws -> Snapshot {
        let links = try await run("ip", "-n", namespace, "-br", "link")
        return Snapshot(
            nft: try await run("ip", "netns", "exec", namespace, "nft", "list", "ruleset"),
            rules: try await run("ip", "-n", namespace, "-4", "rule") + (try await run("ip", "-n", namespace, "-6", "rule")),
            routes: try await run("ip", "-n", namespace, "-4", "route", "show", "table", "all")
                + (try await run("ip", "-n", namespace, "-6", "route", "show", "table", "all")),
            links: links.split(separator: "\n").map { String($0.split(separator: " ")[0].split(separator: "@")[0]) }.sorted())
    }

    /// A node namespace: the primary ENI `ens5` (10.0.0.5/24) and a secondary ENI's link `eth1`
    /// (no address: ipamd gives it one), veths standing in for the NICs (this kernel may lack
    /// dummy links); and what an operator made there: an nft table, rules, a route table and a
    /// link whose name starts with `eni` without being a pod's.
    static func withNode(_ body: (_ node: String, _ pod: String) async throws -> Void) async throws {
        let node = "nbreset-\(getpid())"
        let pod = "nbresetpod-\(getpid())"
        try await run("ip", "netns", "add", node)
        do {
            try await run("ip", "netns", "add", pod)
            for (name, mac, peer) in [("ens5", "0e:00:00:00:00:05", "vpc0"), ("eth1", "0e:00:00:00:00:01", "vpc1")] {
                try await run(
                    "ip", "-n", node, "link", "add", name, "address", mac, "mtu", "9001", "type", "veth", "peer", "name", peer)
            }
            try await run("ip", "-n", node, "link", "add", "enioperator", "type", "veth", "peer", "name", "operatorside")
            for link in ["lo", "ens5", "vpc0", "eth1", "vpc1", "enioperator", "operatorside"] {
                try await run("ip", "-n", node, "link", "set", link, "up")
            }
            try await run("ip", "-n", node, "address", "add", "10.0.0.5/24", "dev", "ens5")
            try await run("ip", "-n", node, "route", "add", "default", "via", "10.0.0.1", "dev", "ens5")
            // The operator's: a rule to its own table, a mark rule of another bit, a from-host rule
            // at ipamd's ENI priority but to a table no ENI has.
            try await run("ip", "-n", node, "route", "add", "198.51.100.0/24", "dev", "ens5", "table", "100")
            try await run("ip", "-n", node, "rule", "add", "prio", "1000", "from", "192.0.2.0/24", "lookup", "100")
            try await run("ip", "-n", node, "rule", "add", "prio", "1024", "fwmark", "0x40/0x40", "lookup", "main")
            try await run("ip", "-n", node, "rule", "add", "prio", "32765", "from", "192.0.2.9", "lookup", "300")
            try await run(
                "ip", "netns", "exec", node, "nft",
                "table inet operator {\n\tchain input {\n\t\ttype filter hook input priority 0; policy accept;\n\t}\n}\n")
            try await body(node, pod)
        } catch {
            _ = try? await run("ip", "netns", "del", pod)
            _ = try? await run("ip", "netns", "del", node)
            throw error
        }
        try await run("ip", "netns", "del", pod)
        try await run("ip", "netns", "del", node)
    }

    /// What ipamd and the CNI plugin make on a node, by their own code: the mark rule, ip_forward
    /// and rp_filter; the secondary ENI (device 1: its address, table 2, the rule at 32765); the
    /// table `ip nodeboot`; two pods, one on the secondary ENI (rules at 512 and 1536), one on the
    /// primary (a rule at 512).
    static func ipamdWires(_ node: String, pod: String, pods: Bool = true) async throws {
        let namespace = try NetworkNamespace(named: node)
        _ = try namespace.runOnDedicatedThread {
            try NodeNetwork.ensureHost(
                eniMACs: ["0e:00:00:00:00:05", "0e:00:00:00:00:01"], settings: Settings(), netlink: try RouteNetlink())
        }
        let eni = ENIWiring(
            mac: "0e:00:00:00:00:01", device: 1, primaryAddress: IPAddress("10.0.1.20")!, subnet: IPPrefix("10.0.1.0/24")!,
            mtu: 9001)
        let wired = try namespace.runOnDedicatedThread {
            try NodeNetwork.ensure(eni, netlink: try RouteNetlink(), requireLink: true)
        }
        #expect(wired.contains("eth1: table 2 via 10.0.1.1"))
        try await PacketFilter(
            primaryInterface: "ens5", primaryAddress: IPAddress("10.0.0.5")!, vpcCIDRs: [IPPrefix("10.0.0.0/16")!]
        ).apply(command: nft(in: node))
        guard pods else { return }
        let host = try namespace.runOnDedicatedThread { try RouteNetlink() }
        let podNamespace = try NetworkNamespace(named: pod)
        let inPod = try podNamespace.runOnDedicatedThread { try RouteNetlink() }
        // Two sandboxes sharing one namespace stand for two pods: only the names differ.
        for (name, address, table, ifname) in [
            ("web-1", "10.0.1.30/32", UInt32(2), "eth0"), ("web-2", "10.0.0.40/32", Route.mainTable, "eth9"),
        ] {
            _ = try PodNetwork(host: host).add(
                PodAttachment(
                    hostVeth: hostVethName(namespace: "default", name: name), ifname: ifname,
                    addresses: [IPPrefix(address)!], table: table, mtu: 9001),
                namespace: podNamespace, pod: inPod)
        }
    }

    /// `nodeboot reset` as the executable builds it, its kernel step in `node`.
    static func reset(
        root: String, node: String, environment: [String: String] = [:], manager: RecordingServiceManager? = nil,
        _ change: (inout ResetOptions) -> Void = { _ in }
    ) async throws -> ResetReport {
        var options = ResetOptions()
        options.root = root
        options.manageServices = manager != nil
        options.manageNetwork = true
        options.unitTimeout = .seconds(5)
        change(&options)
        let services = manager ?? RecordingServiceManager()
        let netlink = try NetworkNamespace(named: node).runOnDedicatedThread { try RouteNetlink() }
        let nft = nft(in: node)
        let vethPrefix = NodeTeardown.vethPrefix(specPath: root + NodeSpec.path)
        return try await NodeReset(
            options: options, environment: environment,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
            serviceManager: { () throws(SystemdError) -> any ServiceManager in services },
            kernelNetwork: { request in
                let outcome = await NodeTeardown(
                    netlink: netlink, nft: nft, vethPrefix: vethPrefix, ipamdConfigured: request.ipamdConfigured,
                    pods: request.pods
                ).run(dryRun: request.dryRun)
                return KernelNetworkOutcome(lines: outcome.lines, failures: outcome.failures)
            }
        ).run()
    }

    @Test(
        "init with ipamd, ipamd's and the plugin's state made by their code: --dry-run lists it, reset removes exactly it, a second reset finds nothing",
        .enabled(if: unavailable == nil, Comment(rawValue: unavailable ?? "")))
    func resetRemovesIPAMDState() async throws {
        try await Self.withNode { node, pod in
            let pristine = try await Self.snapshot(node)
            try await ResetTests.withNode { fixture in
                _ = try await fixture.initialize(daemons: [.containerd, .ipamd, .kubelet])
                #expect(FileManager.default.fileExists(atPath: fixture.root + NodeSpec.path))
                try await Self.ipamdWires(node, pod: pod)
                let made = try await Self.snapshot(node)
                #expect(made.nft.contains("table ip nodeboot"))
                #expect(made.rules.contains("1024:\tfrom all fwmark 0x80/0x80 lookup main"))
                #expect(made.rules.contains("32765:\tfrom 10.0.1.20 lookup 2"))
                #expect(made.rules.contains("1536:\tfrom 10.0.1.30 lookup 2"))
                #expect(made.links.filter { $0.hasPrefix("eni") }.count == 3)
                let veths = ["web-1", "web-2"].map { hostVethName(namespace: "default", name: $0) }

                let dry = try await Self.reset(
                    root: fixture.root, node: node, environment: fixture.testbed.environment, manager: fixture.manager
                ) { $0.dryRun = true }
                #expect(dry.failures.isEmpty, "\(dry.failures)")
                for line in [
                    "delete the pod veth \(veths[0])", "delete the pod veth \(veths[1])",
                    "delete rule from all to 10.0.1.30/32 lookup main prio 512",
                    "delete rule from 10.0.1.30/32 lookup 2 prio 1536",
                    "delete rule from all to 10.0.0.40/32 lookup main prio 512",
                    "delete rule from all fwmark 0x80/0x80 lookup main prio 1024",
                    "delete rule from 10.0.1.20/32 lookup 2 prio 32765",
                    "delete the nft table ip nodeboot",
                ] {
                    #expect(dry.lines.contains(line), "\(line) in \(dry.lines)")
                }
                #expect(!dry.lines.contains { $0.contains("enioperator") || $0.contains("192.0.2") })
                #expect(try await Self.snapshot(node) == made, "--dry-run changed nothing")

                let report = try await Self.reset(
                    root: fixture.root, node: node, environment: fixture.testbed.environment, manager: fixture.manager)
                #expect(report.failures.isEmpty, "\(report.failures)")
                #expect(report.lines.contains("deleted the nft table ip nodeboot"))
                #expect(report.lines.contains("deleted address 10.0.1.20/24 of eth1 (ipamd's, device 1)"))
                #expect(report.lines.contains("deleted route default via 10.0.1.1 dev eth1 table 2"))
                let after = try await Self.snapshot(node)
                #expect(after == pristine, "after reset:\n\(after)\nbefore ipamd:\n\(pristine)")
                #expect(after.nft.contains("table inet operator"))
                #expect(after.links.contains("enioperator"))

                let again = try await Self.reset(
                    root: fixture.root, node: node, environment: fixture.testbed.environment, manager: fixture.manager)
                #expect(again.failures.isEmpty, "\(again.failures)")
                #expect(!again.lines.contains { $0.hasPrefix("deleted") }, "\(again.lines)")
                #expect(try await Self.snapshot(node) == pristine)
            }
        }
    }

    @Test(
        "ipamd never ran: aws-node's rule of ipamd's shape stays; --keep-network leaves ipamd's state; the kubelet left running keeps its pods' part; the table alone marks ipamd's node",
        .enabled(if: unavailable == nil, Comment(rawValue: unavailable ?? "")))
    func markers() async throws {
        try await Self.withNode { node, pod in
            let root = try NodeFixture.root()
            defer { try? FileManager.default.removeItem(atPath: root) }  // a temporary directory
            // aws-node's mark rule is ipamd's: with no ipamd file and no table it is not ipamd's.
            try await Self.run("ip", "-n", node, "rule", "add", "prio", "1024", "fwmark", "0x80/0x80", "lookup", "main")
            let awsNode = try await Self.snapshot(node)
            let untouched = try await Self.reset(root: root, node: node)
            #expect(untouched.failures.isEmpty, "\(untouched.failures)")
            #expect(try await Self.snapshot(node) == awsNode)
            try await Self.run("ip", "-n", node, "rule", "del", "prio", "1024", "fwmark", "0x80/0x80", "lookup", "main")
            let pristine = try await Self.snapshot(node)

            // ipamd's state on a node whose files an earlier reset removed: its table marks it.
            try await Self.ipamdWires(node, pod: pod)
            let made = try await Self.snapshot(node)
            let kept = try await Self.reset(root: root, node: node) { $0.keepNetwork = true }
            #expect(kept.failures.isEmpty)
            #expect(try await Self.snapshot(node) == made, "--keep-network leaves it")
            // The kubelet left running: its pods keep their veths and rules, and the table stays as the marker.
            let kubeletRunning = try await Self.reset(root: root, node: node) { $0.daemons = [.ipamd] }
            #expect(kubeletRunning.failures.isEmpty, "\(kubeletRunning.failures)")
            #expect(kubeletRunning.lines.contains { $0.hasPrefix("keep 2 pod veth(s) (eni…) and their rules") })
            #expect(kubeletRunning.lines.contains("deleted rule from all fwmark 0x80/0x80 lookup main prio 1024"))
            #expect(!kubeletRunning.lines.contains { $0.contains("prio 512") || $0.contains("prio 1536") })
            let partly = try await Self.snapshot(node)
            #expect(partly.nft.contains("table ip nodeboot"))
            #expect(partly.rules.contains("512:\tfrom all to 10.0.1.30 lookup main"))
            #expect(!partly.rules.contains("32765:\tfrom 10.0.1.20 lookup 2"))
            #expect(partly.links.filter { $0.hasPrefix("eni") }.count == 3)
            let rest = try await Self.reset(root: root, node: node)
            #expect(rest.failures.isEmpty, "\(rest.failures)")
            #expect(rest.lines.contains("deleted the nft table ip nodeboot"))
            #expect(try await Self.snapshot(node) == pristine)
        }
    }
}
