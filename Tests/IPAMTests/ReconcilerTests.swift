import AWS
import Foundation
import IPAMProtocol
import Synchronization
import Testbed
import Testing
import WireJSON

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
        settings environment: [String: String] = [:], configuration: TestbedConfiguration = .default, ipv6: Bool = false,
        _ body: (IPAMCore, Reconciler, Testbed, Lines) async throws -> Void
    ) async throws {
        let testbed = try await Testbed.start(configuration)
        let session = try AWSSession(environment: testbed.environment)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rec-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let facts = try await session.imds.instanceFacts()
            let settings = try Settings.parse(environment).0
            let mode = IPAMDaemon.mode(settings: settings, ipv6: ipv6)
            let core = IPAMCore(
                checkpoint: Checkpoint(instance: facts.identity.instanceId, mode: mode),
                enis: IPAMDaemon.enis(facts, ours: [], mode: mode),
                facts: NetworkFacts(vpcCIDRs: [], mtu: 9001, externalSNAT: false),
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
            // The plugin's error says the same (one line the operator can act on).
            let refused = await core.handle(
                .add(
                    AttachmentKey(container: "x", ifname: "eth0", network: "nodeboot"), netns: "/n",
                    pod: PodReference(namespace: "d", name: "x")))
            guard case .failed(let error) = refused else { Issue.record("\(refused)"); return }
            #expect(
                error.message
                    == "no free address: ipamd has 0 of 28 free and cannot grow: MAX_ENI=2 allows 2 ENIs (m4.xlarge: 4) × 15 IPv4 "
                    + "addresses; all 28 are assigned")
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

extension ReconcilerTests {
    @Test("after a restart an adopted ENI keeps its age (its createdAt tag): a young spare is not freed at once")
    func adoptedAge() async throws {
        let testbed = try await Testbed.start()
        let session = try AWSSession(environment: testbed.environment)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("rec-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        do {
            let settings = try Settings.parse([:]).0
            func start() async throws -> (IPAMCore, Reconciler) {
                let facts = try await session.imds.instanceFacts()
                let core = IPAMCore(
                    checkpoint: Checkpoint(instance: facts.identity.instanceId, mode: .secondaryIPv4),
                    enis: IPAMDaemon.enis(facts, ours: []), facts: NetworkFacts(vpcCIDRs: [], mtu: 9001, externalSNAT: false),
                    cooldown: settings.cooldown, checkpointPath: directory + "/checkpoint.json", wallClock: { 1_000_000 })
                let reconciler = try await IPAMDaemon.reconciler(
                    core: core, session: session, facts: facts, settings: settings, log: { _ in })
                return (core, reconciler)
            }
            let (core, reconciler) = try await start()
            await reconciler.pass()
            _ = try await Self.fill(core)
            await reconciler.pass()
            #expect(await core.enis.count == 2)
            // A restart: the second ENI is adopted (nodeboot's description), its age from the tag.
            let (_, restarted) = try await start()
            let adopted = try #require(await restarted.view().enis.first { !$0.isPrimary })
            #expect(adopted.age < PoolView.minimumENIAge, "\(adopted.age)")
        } catch {
            await session.shutdown()
            try await testbed.shutdown()
            throw error
        }
        await session.shutdown()
        try await testbed.shutdown()
    }
}

/// Prefix delegation and IPv6 pools against the testbed's EC2.
@Suite("ipamd reconciler: prefix delegation and IPv6")
struct ReconcilerPrefixTests {
    /// nodeadm's E2E instance as an m5.large (Nitro: prefixes are allowed; 3 ENIs × 10 IPv4).
    static func m5large() throws -> TestbedConfiguration {
        try JSONDecoder().decode(
            TestbedConfiguration.self,
            from: Data(
                """
                {"instance": {"metadata": {"values": {"instance-id": "i-1234567890abcdef0", "instance-type": "m5.large",
                  "local-ipv4": "172.16.34.43", "mac": "0e:49:61:0f:c3:11"}},
                  "dynamic": {"values": {"instance-identity-document": {"region": "us-west-2",
                    "availabilityZone": "us-west-2f", "instanceId": "i-1234567890abcdef0", "instanceType": "m5.large"}}}}}
                """.utf8))
    }

    @Test("prefix delegation: one /28 (WARM_PREFIX_TARGET=1), a second under demand, a free one given back; EC2 agrees")
    func prefixes() async throws {
        let settings = ["ENABLE_PREFIX_DELEGATION": "true", "IP_COOLDOWN_PERIOD": "0"]
        try await ReconcilerTests.withReconciler(settings: settings, configuration: try Self.m5large()) {
            core, reconciler, testbed, _ in
            await reconciler.pass()
            let primary = try #require(await core.enis.first)
            #expect(primary.prefixes.count == 1 && primary.addresses.count == 16)
            #expect(await reconciler.calls["AssignPrivateIpAddresses"] == 1)
            let served = try await ReconcilerTests.fill(core)
            #expect(served == 16)
            await reconciler.pass()
            #expect(await core.enis.first?.prefixes.count == 2, "a second /28 on the primary ENI, not a new ENI")
            #expect(await reconciler.calls["CreateNetworkInterface"] == nil)
            var model = await testbed.networkInterfaces()
            #expect(model.first { $0.networkInterfaceId == primary.id }?.ipv4Prefixes.count == 2)
            // The first /28's pods leave: two free /28s, one above the target, goes back to EC2.
            for index in 0..<16 {
                _ = await core.handle(
                    .del(
                        AttachmentKey(container: "c\(index)", ifname: "eth0", network: "nodeboot"), pod: nil, reason: "test"))
            }
            await reconciler.pass()
            #expect(await core.enis.first?.prefixes.count == 1)
            model = await testbed.networkInterfaces()
            #expect(model.first { $0.networkInterfaceId == primary.id }?.ipv4Prefixes.count == 1)
            #expect(await core.checkpoint.intents.isEmpty)
        }
    }

    @Test("IPv6: one /80 on the primary ENI and nothing else; pods get /128s from it; a Xen type's refusal is one line")
    func ipv6() async throws {
        try await ReconcilerTests.withReconciler(ipv6: true) { _, reconciler, _, lines in
            await reconciler.pass()
            await reconciler.pass()
            #expect(await reconciler.calls == ["AssignIpv6Addresses": 2])
            #expect(lines.all.filter { $0.contains("not built on the Nitro System") }.count == 1, "logged once, counted")
            let errors = await reconciler.report().first { $0.key == "errors" }?.value
            #expect(errors?.array?.first?["count"]?.int == 2)
        }
        try await ReconcilerTests.withReconciler(configuration: try Self.m5large(), ipv6: true) {
            core, reconciler, testbed, lines in
            await reconciler.pass()
            await reconciler.pass()
            #expect(await reconciler.calls == ["AssignIpv6Addresses": 1], "\(lines.all)")
            let primary = try #require(await core.enis.first)
            #expect(primary.prefixes == ["2001:db8:0:0:1::/80"])
            let model = await testbed.networkInterfaces()
            #expect(model.first { $0.networkInterfaceId == primary.id }?.ipv6Prefixes == ["2001:db8:0:0:1::/80"])
            let reply = await core.handle(
                .add(
                    AttachmentKey(container: "v6", ifname: "eth0", network: "nodeboot"), netns: "/n",
                    pod: PodReference(namespace: "d", name: "v6")))
            guard case .added(let assignment) = reply else { Issue.record("\(reply)"); return }
            #expect(assignment.ips == ["2001:db8::1:0:0:1/128"] && assignment.table == 254)
            #expect(await core.counts().total == 29, "an m5.large's maxPods (3 × 9 + 2)")
        }
    }
}
