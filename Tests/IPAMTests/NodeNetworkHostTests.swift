import Foundation
import IPAM
import Netlink
import TestSupport
import Testing

/// `NodeNetwork.ensureHost`: the mark rule, ip_forward and loose rp_filter (docs/ipamd.md §5).
@Suite("ipamd host network")
struct NodeNetworkHostTests {
    /// `nlmsghdr.nlmsg_type` of a request.
    static func type(_ request: [UInt8]) -> UInt16 { UInt16(request[4]) | UInt16(request[5]) << 8 }
    static let getLink: UInt16 = 18
    static let newRule: UInt16 = 32
    static let deleteRule: UInt16 = 33

    /// A fake kernel with no links that answers rule requests with `ruleErrno`.
    static func kernel(ruleErrno: Int32) -> RecordingNetlinkSocket {
        RecordingNetlinkSocket { request in
            type(request) == getLink
                ? [RecordingNetlinkSocket.done(for: request)]
                : [RecordingNetlinkSocket.ack(for: request, errno: ruleErrno)]
        }
    }

    /// A sysctl tree in a temporary directory: ip_forward 0, rp_filter of nothing.
    static func sysctlTree() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("nbsysctl-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root + "/net/ipv4", withIntermediateDirectories: true)
        try "0\n".write(toFile: root + "/net/ipv4/ip_forward", atomically: false, encoding: .utf8)
        return root
    }

    @Test("the rule fwmark 0x80/0x80 lookup main prio 1024 and ip_forward 1; again (EEXIST): nothing to do")
    func ruleAndForwarding() throws {
        let root = try Self.sysctlTree()
        defer { try? FileManager.default.removeItem(atPath: root) }  // a temporary directory
        let socket = Self.kernel(ruleErrno: 0)
        let notes = try NodeNetwork.ensureHost(
            eniMACs: ["0e:00:00:00:00:01"], settings: Settings(), netlink: RouteNetlink(socket: socket), sysctl: root)
        #expect(
            notes == [
                "rule from all fwmark 0x80/0x80 lookup main prio 1024", "ip_forward 1",
                "no link has MAC 0e:00:00:00:00:01 (yet): rp_filter not set",
            ])
        #expect(socket.sent.map(Self.type) == [Self.newRule, Self.getLink])
        #expect(try String(contentsOfFile: root + "/net/ipv4/ip_forward", encoding: .utf8) == "1\n")

        let again = Self.kernel(ruleErrno: EEXIST)
        let second = try NodeNetwork.ensureHost(
            eniMACs: [], settings: Settings(), netlink: RouteNetlink(socket: again), sysctl: root)
        #expect(second == [], "EEXIST is success and ip_forward is 1 already")
    }

    @Test("an IPv6 node: IPv6 forwarding on as well (ip_forward too, for the IPv4 primary address)")
    func ipv6Forwarding() throws {
        let root = try Self.sysctlTree()
        defer { try? FileManager.default.removeItem(atPath: root) }  // a temporary directory
        try FileManager.default.createDirectory(atPath: root + "/net/ipv6/conf/all", withIntermediateDirectories: true)
        try "0\n".write(toFile: root + "/net/ipv6/conf/all/forwarding", atomically: false, encoding: .utf8)
        let notes = try NodeNetwork.ensureHost(
            eniMACs: [], settings: Settings(), netlink: RouteNetlink(socket: Self.kernel(ruleErrno: EEXIST)), sysctl: root,
            ipv6: true)
        #expect(notes == ["ip_forward 1", "IPv6 forwarding 1"])
        #expect(try String(contentsOfFile: root + "/net/ipv6/conf/all/forwarding", encoding: .utf8) == "1\n")
    }

    @Test("external SNAT: the rule is deleted, and a rule already gone (ENOENT) is fine")
    func externalSNAT() throws {
        let root = try Self.sysctlTree()
        defer { try? FileManager.default.removeItem(atPath: root) }  // a temporary directory
        let (settings, _) = try Settings.parse(["AWS_VPC_K8S_CNI_EXTERNALSNAT": "true"])
        let socket = Self.kernel(ruleErrno: 0)
        let notes = try NodeNetwork.ensureHost(
            eniMACs: [], settings: settings, netlink: RouteNetlink(socket: socket), sysctl: root)
        #expect(notes == ["rule from all fwmark 0x80/0x80 lookup main prio 1024 removed (external SNAT)", "ip_forward 1"])
        #expect(socket.sent.map(Self.type) == [Self.deleteRule, Self.getLink])
        let gone = try NodeNetwork.ensureHost(
            eniMACs: [], settings: settings, netlink: RouteNetlink(socket: Self.kernel(ruleErrno: ENOENT)), sysctl: root)
        #expect(gone == [])
    }

    @Test("a sysctl that cannot be read is an error naming it and the fix")
    func sysctlMissing() throws {
        let root = "/nonexistent-\(getpid())"
        let error = #expect(throws: IPAMError.self) {
            try NodeNetwork.ensureHost(
                eniMACs: [], settings: Settings(), netlink: RouteNetlink(socket: Self.kernel(ruleErrno: EEXIST)), sysctl: root)
        }
        #expect(
            error?.description
                == "ipamd: cannot read \(root)/net/ipv4/ip_forward (sysctl net.ipv4.ip_forward = 1): No such file or directory; ipamd must run as root in the node's network namespace with /proc/sys writable"
        )
    }

    static func ip(_ arguments: String...) async throws -> String {
        let result = try await ChildProcess.run(["/usr/bin/env", "ip"] + arguments, environment: ChildProcess.cleanEnvironment())
        try #require(result.status == 0, "ip \(arguments.joined(separator: " ")): \(result.stderr)")
        return result.stdout
    }

    @Test(
        "in a network namespace: the rule once after two runs, ip_forward 1, rp_filter 2 on the ENI's link; external SNAT removes the rule",
        // Root only: it creates (and deletes) a network namespace; the host's network is never touched.
        .enabled(if: KernelViewTests.unavailable == nil, Comment(rawValue: KernelViewTests.unavailable ?? "")))
    func inNamespace() async throws {
        let namespace = "nbhost-\(getpid())"
        _ = try await Self.ip("netns", "add", namespace)
        do {
            _ = try await Self.ip(
                "-n", namespace, "link", "add", "eth1", "address", "0e:00:00:00:00:01", "type", "veth", "peer", "name", "vpc1")
            // A new namespace may inherit the host's ip_forward 1 (a runtime or a CNI plugin set it there).
            _ = try await Self.ip("netns", "exec", namespace, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
            let node = try NetworkNamespace(named: namespace)
            let macs = ["0E:00:00:00:00:01"]
            let first = try node.runOnDedicatedThread {
                try NodeNetwork.ensureHost(eniMACs: macs, settings: Settings(), netlink: try RouteNetlink())
            }
            #expect(first == ["rule from all fwmark 0x80/0x80 lookup main prio 1024", "ip_forward 1", "eth1: rp_filter 2"])
            let second = try node.runOnDedicatedThread {
                try NodeNetwork.ensureHost(eniMACs: macs, settings: Settings(), netlink: try RouteNetlink())
            }
            #expect(second == [])
            #expect(
                try node.runOnDedicatedThread { try NodeNetwork.linkName(mac: macs[0], netlink: try RouteNetlink()) } == "eth1")
            func markRules() async throws -> [String] {
                let rules = try #require(
                    try JSONSerialization.jsonObject(with: Data(try await Self.ip("-n", namespace, "-j", "rule", "show").utf8))
                        as? [[String: Any]])
                return rules.filter { $0["fwmark"] != nil }.map {
                    "\($0["priority"] ?? "") \($0["fwmark"] ?? "")/\($0["fwmask"] ?? "") \($0["table"] ?? "")"
                }
            }
            #expect(try await markRules() == ["1024 0x80/0x80 main"])
            for (name, value) in [("ip_forward", "1"), ("conf/eth1/rp_filter", "2")] {
                let text = try await Self.ip("netns", "exec", namespace, "cat", "/proc/sys/net/ipv4/\(name)")
                #expect(text.trimmingCharacters(in: .whitespacesAndNewlines) == value, "\(name)")
            }
            let (external, _) = try Settings.parse(["AWS_VPC_K8S_CNI_EXTERNALSNAT": "true"])
            let removed = try node.runOnDedicatedThread {
                try NodeNetwork.ensureHost(eniMACs: macs, settings: external, netlink: try RouteNetlink())
            }
            #expect(removed == ["rule from all fwmark 0x80/0x80 lookup main prio 1024 removed (external SNAT)"])
            #expect(try await markRules() == [])
        } catch {
            _ = try? await Self.ip("netns", "del", namespace)
            throw error
        }
        _ = try await Self.ip("netns", "del", namespace)
    }
}
