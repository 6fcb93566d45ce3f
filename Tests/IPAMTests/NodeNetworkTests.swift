import Foundation
import IPAM
import Netlink
import TestSupport
import Testing

/// The node side of a secondary ENI, wired in a scratch network namespace standing for the node
/// (a veth end with the ENI's MAC stands for the hot-plugged NIC).
@Suite("ipamd node network")
struct NodeNetworkTests {
    static func ip(_ arguments: String...) async throws -> String {
        let result = try await ChildProcess.run(["/usr/bin/env", "ip"] + arguments, environment: ChildProcess.cleanEnvironment())
        try #require(result.status == 0, "ip \(arguments.joined(separator: " ")): \(result.stderr)")
        return result.stdout
    }

    static func json(_ text: String) throws -> [[String: Any]] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [[String: Any]])
    }

    @Test(
        "a secondary ENI: MTU, up, rp_filter loose, its address, table 2 via the subnet router, the rule for its address; again: nothing to do; freed: rule and table removed",
        // Root only: it creates (and deletes) a network namespace; the host's network is never touched.
        .enabled(if: KernelViewTests.unavailable == nil, Comment(rawValue: KernelViewTests.unavailable ?? "")))
    func secondaryENI() async throws {
        let namespace = "nbnode-\(getpid())"
        _ = try await Self.ip("netns", "add", namespace)
        do {
            _ = try await Self.ip(
                "-n", namespace, "link", "add", "eth1", "address", "0e:00:00:00:00:01", "type", "veth", "peer", "name", "vpc1")
            _ = try await Self.ip("-n", namespace, "link", "set", "vpc1", "up")
            let eni = ENIWiring(
                mac: "0E:00:00:00:00:01", device: 1, primaryAddress: IPAddress("10.1.2.10")!, subnet: IPPrefix("10.1.2.0/24")!,
                mtu: 9001)
            let node = try NetworkNamespace(named: namespace)
            let first = try node.runOnDedicatedThread { try NodeNetwork.ensure(eni, netlink: try RouteNetlink()) }
            #expect(first.contains("eth1: mtu 9001") && first.contains("eth1: up") && first.contains("eth1: rp_filter 2"))
            let link = try #require(try Self.json(try await Self.ip("-n", namespace, "-j", "link", "show", "eth1")).first)
            #expect(link["mtu"] as? Int == 9001)
            #expect((link["flags"] as? [String])?.contains("UP") == true)
            let addresses = try Self.json(try await Self.ip("-n", namespace, "-j", "-4", "addr", "show", "eth1"))
            let local = (addresses.first?["addr_info"] as? [[String: Any]])?.compactMap {
                "\($0["local"] ?? "")/\($0["prefixlen"] ?? "")"
            }
            #expect(local == ["10.1.2.10/24"])
            let table = try Self.json(try await Self.ip("-n", namespace, "-j", "route", "show", "table", "2"))
            #expect(
                table.map { "\($0["dst"] ?? "") \($0["gateway"] ?? "-") \($0["dev"] ?? "")" }.sorted() == [
                    "10.1.2.1 - eth1", "default 10.1.2.1 eth1",
                ])
            let main = try Self.json(try await Self.ip("-n", namespace, "-j", "route", "show", "table", "main"))
            #expect(!main.contains { $0["dst"] as? String == "10.1.2.0/24" }, "the subnet route is not in main")
            let rules = try Self.json(try await Self.ip("-n", namespace, "-j", "rule", "show"))
            #expect(
                rules.contains {
                    $0["priority"] as? Int == 32765 && $0["src"] as? String == "10.1.2.10" && "\($0["table"] ?? "")" == "2"
                })
            let rpFilter = try await Self.ip("netns", "exec", namespace, "cat", "/proc/sys/net/ipv4/conf/eth1/rp_filter")
            #expect(rpFilter.trimmingCharacters(in: .whitespacesAndNewlines) == "2")

            let again = try node.runOnDedicatedThread { try NodeNetwork.ensure(eni, netlink: try RouteNetlink()) }
            #expect(!again.contains { $0.contains("mtu") || $0.contains("up") || $0.contains("address") || $0.contains("rule") })
            let missing = ENIWiring(
                mac: "0e:00:00:00:00:09", device: 2, primaryAddress: eni.primaryAddress, subnet: eni.subnet, mtu: 9001)
            let none = try node.runOnDedicatedThread { try NodeNetwork.ensure(missing, netlink: try RouteNetlink()) }
            #expect(none == ["no link has MAC 0e:00:00:00:00:09 (yet): device 2 not wired"])

            // Freed (the NIC goes away with the detach): the rule and the table are removed too.
            _ = try await Self.ip("-n", namespace, "link", "del", "eth1")
            let removed = try node.runOnDedicatedThread { try NodeNetwork.unwire(device: 1, netlink: try RouteNetlink()) }
            #expect(removed.contains { $0.hasPrefix("rule ") && $0.hasSuffix(" removed") }, "\(removed)")
            let after = try Self.json(try await Self.ip("-n", namespace, "-j", "rule", "show"))
            #expect(!after.contains { $0["priority"] as? Int == 32765 }, "\(after)")
            #expect(try Self.json(try await Self.ip("-n", namespace, "-j", "route", "show", "table", "2")).isEmpty)
            let twice = try node.runOnDedicatedThread { try NodeNetwork.unwire(device: 1, netlink: try RouteNetlink()) }
            #expect(twice.isEmpty)
        } catch {
            _ = try? await Self.ip("netns", "del", namespace)
            throw error
        }
        _ = try await Self.ip("netns", "del", namespace)
    }
}
