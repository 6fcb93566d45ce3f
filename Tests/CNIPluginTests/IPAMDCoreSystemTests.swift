import CNIPlugin
import Foundation
import IPAM
import IPAMProtocol
import NIOCore
import NIOPosix
import TestSupport
import Testing
import WireJSON

/// The plugin binary against ipamd's own pool and socket server (`IPAMCore`, `SocketServer`: the
/// code `nodeboot ipamd` serves with, without EC2), so the replies are the daemon's: its
/// addresses and tables, its idempotent add, its refusal text, its check and del.
@Suite(
    "nodeboot-cni against ipamd's core and socket server",
    .serialized,
    // Root only, as the namespace tests; skipped with the reason otherwise.
    .enabled(if: Namespaces.unavailable == nil, Comment(rawValue: Namespaces.unavailable ?? "")))
struct IPAMDCoreSystemTests {
    @Test(
        "pods get ipamd's addresses on the primary and a secondary ENI, wired with ipamd's table; the pool empty, ADD is code 11 with ipamd's text; CHECK and DEL through ipamd; the address cools down"
    )
    func realCore() async throws {
        let directory = try temporaryDirectory("nbcni")
        defer { removeTree(directory) }
        let socket = directory + "/ipamd.sock"
        let core = IPAMCore(
            checkpoint: Checkpoint(instance: "i-1", mode: .secondaryIPv4),
            enis: [
                ENIState(id: "eni-p", device: 0, isPrimary: true, addresses: ["10.0.0.11"]),
                ENIState(id: "eni-1", device: 1, isPrimary: false, addresses: ["10.0.1.21"]),
            ],
            facts: NetworkFacts(vpcCIDRs: ["10.0.0.0/16"], mtu: 9001, externalSNAT: false), cooldown: .seconds(30),
            checkpointPath: directory + "/checkpoint.json", wallClock: { Int64(Date().timeIntervalSince1970 * 1000) })
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let server = try await SocketServer.start(core: core, path: socket, group: group)
        do {
            try await Namespaces.with(["node", "h", "i", "j"]) { names in
                let node = names[0]
                let pods = (1...3).map { index in
                    TestPod(
                        container: "core\(index)", namespace: names[index], name: "core-\(index)",
                        assignment: TestPod.assignment("unused/32", device: 0))
                }
                var addresses: [String: String] = [:]
                for pod in pods.prefix(2) {
                    let added = try await PodWiringSystemTests.cni("ADD", pod, node: node, socket: socket)
                    try #require(added.status == 0, "\(added.stdout) \(added.stderr)")
                    let result = try CNIResult(try JSON(parsing: added.stdout))
                    addresses[pod.container] = try #require(result.addresses(on: "eth0").first)
                    let again = try await PodWiringSystemTests.cni("ADD", pod, node: node, socket: socket)
                    #expect(again.stdout == added.stdout, "ipamd's add is idempotent, so is the plugin's")
                }
                #expect(Set(addresses.values) == ["10.0.0.11/32", "10.0.1.21/32"])
                let secondary = try #require(addresses.first { $0.value == "10.0.1.21/32" }?.key)
                let primary = try #require(addresses.first { $0.value == "10.0.0.11/32" }?.key)
                #expect(
                    Namespaces.lines(try await Namespaces.json(node, "rule", "show"), "priority", "src", "dst", "table")
                        .filter { $0.contains("10.0.") }
                        == [
                            "priority=512 src=all dst=10.0.0.11 table=main", "priority=512 src=all dst=10.0.1.21 table=main",
                            "priority=1536 src=10.0.1.21 table=2",
                        ])

                // The pool is empty: ipamd's own refusal, verbatim, retryable.
                let refused = try await PodWiringSystemTests.cni("ADD", pods[2], node: node, socket: socket)
                #expect(refused.status == 1)
                let error = try JSON(parsing: refused.stdout)
                #expect(error["code"] == 11)
                #expect(error["msg"]?.string?.hasPrefix("no free address: ipamd has 0 of 2 free") == true, "\(error.text)")
                #expect(error["details"] == "ipamd answered noAddress to add")
                #expect(try await Namespaces.json(pods[2].namespace, "link", "show").count == 1, "nothing wired")
                #expect(try await PodWiringSystemTests.cni("DEL", pods[2], node: node, socket: socket).status == 0)

                for pod in pods.prefix(2) {
                    #expect(try await PodWiringSystemTests.cni("CHECK", pod, node: node, socket: socket).status == 0)
                }
                let first = try #require(pods.first { $0.container == secondary })
                #expect(try await PodWiringSystemTests.cni("DEL", first, node: node, socket: socket).status == 0)
                let unknown = try await PodWiringSystemTests.cni("CHECK", first, node: node, socket: socket)
                #expect(try JSON(parsing: unknown.stdout)["code"] == 3, "ipamd no longer knows it: \(unknown.stdout)")
                #expect(await core.checkpoint.allocations.map(\.key.container) == [primary])
                #expect(await core.checkpoint.cooling.map(\.address) == ["10.0.1.21"])
                let other = try #require(pods.first { $0.container == primary })
                #expect(try await PodWiringSystemTests.cni("DEL", other, node: node, socket: socket).status == 0)
                #expect(await core.checkpoint.allocations.isEmpty)
                #expect(try await Namespaces.json(node, "link", "show").map { $0["ifname"] as? String } == ["lo"])
                #expect(try await Namespaces.json(node, "rule", "show").count == 3)
            }
        } catch {
            await server.close()
            try await group.shutdownGracefully()
            throw error
        }
        await server.close()
        try await group.shutdownGracefully()
    }
}
