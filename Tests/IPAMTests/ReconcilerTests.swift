import AWS
import Foundation
import IPAMProtocol
import Synchronization
import Testbed
import Testing

@testable import IPAM

/// The reconciler against the testbed's EC2 ENI API (an m4.xlarge: 4 ENIs × 15 IPv4).
@Suite("ipamd reconciler against the testbed's EC2")
struct ReconcilerTests {
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var log: @Sendable (String) -> Void { { [self] line in lines.withLock { $0.append(line) } } }
        var all: [String] { lines.withLock { $0 } }
    }

    static func withReconciler(
        settings environment: [String: String] = [:],
        _ body: (IPAMCore, Reconciler, Testbed, Lines) async throws -> Void
    ) async throws {
        let testbed = try await Testbed.start()
        let session = try AWSSession(environment: testbed.environment)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rec-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let facts = try await session.imds.instanceFacts()
            let settings = try Settings.parse(environment).0
            let core = IPAMCore(
                checkpoint: Checkpoint(instance: facts.identity.instanceId, mode: .secondaryIPv4),
                enis: IPAMDaemon.enis(facts, ours: []), facts: NetworkFacts(vpcCIDRs: [], mtu: 9001, externalSNAT: false),
                cooldown: settings.cooldown, checkpointPath: directory + "/checkpoint.json", wallClock: { 1_000_000 })
            let lines = Lines()
            let reconciler = try await IPAMDaemon.reconciler(
                core: core, session: session, facts: facts, settings: settings, log: lines.log)
            try await body(core, reconciler, testbed, lines)
        } catch {
            await session.shutdown()
            try await testbed.shutdown()
            throw error
        }
        await session.shutdown()
        try await testbed.shutdown()
    }

    static func fill(_ core: IPAMCore, from start: Int = 0) async throws -> Int {
        var index = start
        while case .added = await core.handle(
            .add(
                AttachmentKey(container: "c\(index)", ifname: "eth0", network: "nodeboot"), netns: "/n",
                pod: PodReference(namespace: "d", name: "p\(index)")))
        {
            index += 1
        }
        return index
    }

    @Test("a fresh node fills the primary ENI, then grows a second ENI under demand, attached and seen in IMDS")
    func grows() async throws {
        try await Self.withReconciler { core, reconciler, testbed, lines in
            await reconciler.pass()
            #expect(await core.counts().total == 14, "WARM_ENI_TARGET=1 on an m4.xlarge: the primary ENI's 14 slots")
            #expect(await reconciler.calls["AssignPrivateIpAddresses"] == 1)
            let assigned = try await Self.fill(core)
            #expect(assigned == 14)
            await reconciler.pass()
            let enis = await core.enis
            #expect(enis.count == 2)
            #expect(enis.last?.device == 1 && enis.last?.addresses.count == 14)
            let calls = await reconciler.calls
            #expect(calls["CreateNetworkInterface"] == 1 && calls["AttachNetworkInterface"] == 1)
            // EC2 agrees: the ENI is attached at device 1, tagged by nodeboot, deleted with the instance.
            let model = await testbed.networkInterfaces()
            let created = try #require(model.first { $0.networkInterfaceId == enis.last?.id })
            #expect(created.attachment?.deviceIndex == 1 && created.attachment?.deleteOnTermination == true)
            #expect(created.tags["node.k8s.amazonaws.com/instance_id"] == "i-1234567890abcdef0")
            #expect(created.description == "nodeboot-i-1234567890abcdef0")
            // Addresses on the new ENI are handed out.
            let next = await core.handle(
                .add(
                    AttachmentKey(container: "n", ifname: "eth0", network: "nodeboot"), netns: "/n",
                    pod: PodReference(namespace: "d", name: "n")))
            guard case .added(let assignment) = next else { Issue.record("\(next)"); return }
            #expect(assignment.device == 1 && assignment.table == 2)
            #expect(lines.all.contains { $0.contains("attached \(created.networkInterfaceId) at device 1 with 14 addresses") })
        }
    }

    @Test("the instance's limits (MAX_ENI=2): full, the decision names them, no EC2 call is made")
    func limits() async throws {
        try await Self.withReconciler(settings: ["MAX_ENI": "2"]) { core, reconciler, _, lines in
            await reconciler.pass()
            var count = try await Self.fill(core)
            await reconciler.pass()
            count = try await Self.fill(core, from: count)
            #expect(count == 28)
            let before = await reconciler.calls
            await reconciler.pass()
            #expect(await reconciler.calls == before)
            let decision = await reconciler.lastDecision
            #expect(
                decision.blocked == .limits("MAX_ENI=2 allows 2 ENIs (m4.xlarge: 4) × 15 IPv4 addresses; all 28 are assigned"))
            #expect(lines.all.contains { $0.contains("cannot grow: MAX_ENI=2 allows 2 ENIs") })
        }
    }

    @Test("a spare ENI is detached (waited for, not slept) and deleted in EC2; an ENI with pods is never freed")
    func frees() async throws {
        try await Self.withReconciler { core, reconciler, testbed, _ in
            await reconciler.pass()
            _ = try await Self.fill(core)
            await reconciler.pass()
            let second = try #require(await core.enis.last?.id)
            let primary = try #require(await core.enis.first?.id)
            try await reconciler.freeENI(primary)
            #expect(await core.enis.count == 2, "the primary ENI is never freed")
            _ = await core.handle(
                .add(
                    AttachmentKey(container: "x", ifname: "eth0", network: "nodeboot"), netns: "/n",
                    pod: PodReference(namespace: "d", name: "x")))
            try await reconciler.freeENI(second)
            #expect(await core.enis.count == 2, "an ENI with an assigned address is not freed")
            _ = await core.handle(.del(AttachmentKey(container: "x", ifname: "eth0", network: "nodeboot"), pod: nil, reason: ""))
            // Cooling addresses keep it too (IP_COOLDOWN_PERIOD defaults to 30 s; the test clock does not move).
            try await reconciler.freeENI(second)
            #expect(await core.enis.count == 2, "an ENI with a cooling address is not freed")
        }
        try await Self.withReconciler { core, reconciler, testbed, _ in
            await reconciler.pass()
            _ = try await Self.fill(core)
            await reconciler.pass()
            let second = try #require(await core.enis.last?.id)
            try await reconciler.freeENI(second)
            #expect(await core.enis.map(\.id).contains(second) == false)
            let remaining = await testbed.networkInterfaces().map(\.networkInterfaceId)
            #expect(!remaining.contains(second), "deleted in EC2")
            let calls = await reconciler.calls
            #expect(calls["DetachNetworkInterface"] == 1 && calls["DeleteNetworkInterface"] == 1)
        }
    }

    @Test("a failed setup leaves no ENI behind (attached ones detached and deleted); a failed free keeps the ENI in the pool")
    func failures() async throws {
        try await Self.withReconciler { core, reconciler, testbed, lines in
            await reconciler.pass()
            _ = try await Self.fill(core)
            let before = Set(await testbed.networkInterfaces().map(\.networkInterfaceId))
            await testbed.setFaults([
                FaultRule(endpoint: .ec2, action: "ModifyNetworkInterfaceAttribute", status: 403, code: "UnauthorizedOperation")
            ])
            await reconciler.pass()
            #expect(await core.enis.count == 1, "no ENI was added to the pool")
            let after = Set(await testbed.networkInterfaces().map(\.networkInterfaceId))
            #expect(after == before, "the created and attached ENI was detached and deleted again")
            #expect(await reconciler.errors["ModifyNetworkInterfaceAttribute"] == 1)
            #expect(lines.all.contains { $0.contains("UnauthorizedOperation") })

            await testbed.setFaults([])
            await reconciler.pass()
            let second = try #require(await core.enis.last?.id)
            #expect(await core.enis.count == 2)
            await testbed.setFaults([
                FaultRule(endpoint: .ec2, action: "DetachNetworkInterface", status: 403, code: "UnauthorizedOperation")
            ])
            await #expect(throws: (any Error).self) { try await reconciler.freeENI(second) }
            #expect(await core.enis.map(\.id).contains(second), "the ENI EC2 did not detach stays in the pool")
        }
    }

    @Test("giving addresses back: recorded as an intent first; a failed unassign returns only what EC2 still lists")
    func unassign() async throws {
        try await Self.withReconciler { core, reconciler, testbed, _ in
            await reconciler.pass()
            let primary = try #require(await core.enis.first)
            #expect(primary.addresses.count == 14)
            await testbed.setFaults([
                FaultRule(endpoint: .ec2, action: "UnassignPrivateIpAddresses", status: 403, code: "UnauthorizedOperation")
            ])
            await #expect(throws: (any Error).self) { try await reconciler.perform(.unassignIPs(eni: primary.id, count: 2)) }
            #expect(await core.enis.first?.addresses.count == 14, "EC2 kept them: they are served again")
            #expect(await core.checkpoint.intents.isEmpty)
            await testbed.setFaults([])
            try await reconciler.perform(.unassignIPs(eni: primary.id, count: 2))
            #expect(await core.enis.first?.addresses.count == 12)
            let inEC2 = await testbed.networkInterfaces().first { $0.networkInterfaceId == primary.id }
            #expect(inEC2?.privateIpAddresses.count == 13, "the ENI's own address and 12 secondaries")
            #expect(await core.checkpoint.intents.isEmpty, "the intent is resolved once EC2 answered")
        }
    }
}
