import AWS
import Foundation
import IPAMProtocol
import Support
import Synchronization
import TestSupport
import Testing

@testable import IPAM

/// The reconciler's and the leak sweeper's EC2 call flow against moto (`moto_server` 5.x,
/// docs/ipamd.md §11 `IPAMMotoTests`), through the same code as against the testbed. moto has
/// no IMDS of its instances, so the reconciler's attachment observer asks EC2 here. moto's
/// deviations met on the way are asserted as such (docs/ipamd.md §10): AssignPrivateIpAddresses
/// answers every address of the ENI, the ENI's own primary address included; DeleteOnTermination
/// is accepted and not kept; its metadata service does not describe the instance's ENIs.
@Suite(
    "ipamd reconciler and leak sweeper against moto",
    .enabled(if: MotoServer.isAvailable, "moto_server is not installed (pip install 'moto[server]'; scripts/setup.sh test)"))
struct IPAMMotoTests {
    /// An m5.large launched in moto, the session and EC2 client pointed at it, and what the
    /// client sent and moto answered.
    struct Instance {
        let moto: MotoServer
        let session: AWSSession
        let client: AWSClient
        let exchanges: Exchanges
        let id: String
        let subnet: String
        let vpc: String
        /// The primary ENI as EC2 describes it.
        let primary: EC2NetworkInterface
    }

    /// One EC2 request (its form parameters) and moto's answer (the XML text).
    struct Exchange: Sendable {
        var parameters: [String: String]
        var response: String
        var action: String { parameters["Action"] ?? "" }
    }

    final class Exchanges: Sendable {
        let all = Mutex<[Exchange]>([])
        func of(_ action: String) -> [Exchange] { all.withLock { $0.filter { $0.action == action } } }
    }

    /// The client's transport, recording each exchange on the way through.
    struct RecordingTransport: HTTPTransport {
        let inner: any HTTPTransport
        let exchanges: Exchanges

        func send(_ request: HTTPRequest, timeout: Duration) async throws -> HTTPResponse {
            let response = try await inner.send(request, timeout: timeout)
            var form = URLComponents()
            form.percentEncodedQuery = String(decoding: request.body, as: UTF8.self)
            let parameters = Dictionary(
                (form.queryItems ?? []).map { ($0.name, $0.value ?? "") }, uniquingKeysWith: { _, last in last })
            exchanges.all.withLock { $0.append(Exchange(parameters: parameters, response: response.text)) }
            return response
        }

        func shutdown() async { await inner.shutdown() }
    }

    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var log: @Sendable (String) -> Void { { [self] line in lines.withLock { $0.append(line) } } }
        var all: [String] { lines.withLock { $0 } }
    }

    /// moto's view of an ENI, read with boto3 (not through the client under test).
    struct MotoENI: Decodable, Equatable {
        var id: String
        var status: String
        var description: String
        var subnet: String
        var groups: [String]
        var tags: [String: String]
        var device: Int?
        var instance: String?
        var deleteOnTermination: Bool?
        var primaryIP: String?
        var secondaryIPs: [String]
    }

    /// Every ENI moto holds, by id.
    static func motoENIs(_ moto: MotoServer) async throws -> [String: MotoENI] {
        let text = try await moto.boto3(
            """
            import json
            ec2 = boto3.client('ec2', **kw)
            out = []
            for n in ec2.describe_network_interfaces()['NetworkInterfaces']:
                a = n.get('Attachment') or {}
                ips = n.get('PrivateIpAddresses', [])
                out.append({'id': n['NetworkInterfaceId'], 'status': n['Status'], 'description': n.get('Description', ''),
                    'subnet': n['SubnetId'], 'groups': sorted(g['GroupId'] for g in n.get('Groups', [])),
                    'tags': {t['Key']: t['Value'] for t in n.get('TagSet', [])},
                    'device': a.get('DeviceIndex'), 'instance': a.get('InstanceId'),
                    'deleteOnTermination': a.get('DeleteOnTermination'),
                    'primaryIP': next((i['PrivateIpAddress'] for i in ips if i.get('Primary')), None),
                    'secondaryIPs': [i['PrivateIpAddress'] for i in ips if not i.get('Primary')]})
            print(json.dumps(out))
            """)
        let enis = try JSONDecoder().decode([MotoENI].self, from: Data(text.utf8))
        return Dictionary(uniqueKeysWithValues: enis.map { ($0.id, $0) })
    }

    /// Starts moto, launches an m5.large with boto3 and points a session at moto (its EC2, and
    /// its static metadata service, which knows nothing of the instance).
    static func withInstance(imdsPolicy: RetryPolicy = .imds, _ body: (Instance) async throws -> Void) async throws {
        let moto = try await MotoServer.start()
        let launched = try await moto.boto3(
            """
            ec2 = boto3.client('ec2', **kw)
            i = ec2.run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1, InstanceType='m5.large')['Instances'][0]
            print(i['InstanceId'], i['SubnetId'], i['VpcId'], i['NetworkInterfaces'][0]['NetworkInterfaceId'])
            """
        ).split(separator: " ").map(String.init)
        try #require(launched.count == 4, "run_instances printed \(launched)")
        let session = try AWSSession(
            environment: [
                "AWS_ENDPOINT_URL": moto.endpoint, "AWS_EC2_METADATA_SERVICE_ENDPOINT": moto.endpoint,
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_REGION": "us-west-2",
                "AWS_MAX_ATTEMPTS": "2",
            ], imdsPolicy: imdsPolicy)
        do {
            var client = try await session.client(region: "us-west-2")
            let exchanges = Exchanges()
            client.transport = RecordingTransport(inner: client.transport, exchanges: exchanges)
            let primary = try #require(try await client.describeNetworkInterfaces(ids: [launched[3]]).first)
            try await body(
                Instance(
                    moto: moto, session: session, client: client, exchanges: exchanges, id: launched[0], subnet: launched[1],
                    vpc: launched[2], primary: primary))
        } catch {
            await session.shutdown()
            throw error
        }
        await session.shutdown()
    }

    /// The core with the primary ENI as EC2 describes it (its secondary addresses, none after
    /// run_instances), and the reconciler with the context `IPAMDaemon.reconciler` would build from
    /// IMDS and EC2: m5.large's limits from moto's DescribeInstanceTypes, maxPods 29.
    static func reconciler(
        _ instance: Instance, settings environment: [String: String], directory: String, lines: Lines,
        attachWait: Duration = .seconds(10), observer: (@Sendable (String, String) async -> Bool)?
    ) async throws -> (IPAMCore, Reconciler) {
        let settings = try Settings.parse(environment).0
        let core = IPAMCore(
            checkpoint: Checkpoint(instance: instance.id, mode: .secondaryIPv4),
            enis: [
                ENIState(id: instance.primary.id, device: 0, isPrimary: true, addresses: instance.primary.secondaryIPv4s)
            ],
            facts: NetworkFacts(vpcCIDRs: [], mtu: settings.mtu, externalSNAT: false), cooldown: settings.cooldown,
            checkpointPath: directory + "/checkpoint.json",
            wallClock: { Int64(Date().timeIntervalSince1970 * 1000) })
        let type = try await instance.client.describeInstanceType("m5.large")
        let limits = InstanceLimits(
            instanceType: type.instanceType, maxENIs: type.maxENIs, ipv4PerENI: type.ipv4AddressesPerInterface,
            maxENISetting: settings.maxENI)
        #expect(limits == InstanceLimits(instanceType: "m5.large", maxENIs: 3, ipv4PerENI: 10))
        let reconciler = Reconciler(
            core: core, ec2: instance.client, imds: instance.session.imds,
            context: .init(
                instanceID: instance.id, cluster: "nb-moto", limits: limits, maxPods: 29, settings: settings,
                subnet: instance.primary.subnetId, securityGroups: instance.primary.securityGroupIds,
                vpcID: instance.primary.vpcId),
            attachWait: attachWait, attachmentSeen: observer, log: lines.log)
        return (core, reconciler)
    }

    /// The attachment observer against moto: EC2 lists the ENI attached to the instance, with
    /// an address besides its own.
    static func seenInEC2(_ instance: Instance) -> @Sendable (String, String) async -> Bool {
        let (client, id) = (instance.client, instance.id)
        return { _, eni in
            // Not described (a throttle, a blip): not seen yet, asked again by the wait's backoff.
            guard let described = try? await client.describeNetworkInterfaces(ids: [eni]).first else { return false }
            return described.attachment?.instanceId == id && described.attachment?.status == "attached"
                && !described.secondaryIPv4s.isEmpty
        }
    }

    static func key(_ index: Int) -> AttachmentKey {
        AttachmentKey(container: "c\(index)", ifname: "eth0", network: "nodeboot")
    }

    /// Adds pods from `start` until the core refuses; returns the next index.
    static func fill(_ core: IPAMCore, from start: Int = 0) async -> Int {
        var index = start
        while case .added = await core.handle(
            .add(Self.key(index), netns: "/n", pod: PodReference(namespace: "d", name: "p\(index)")))
        {
            index += 1
        }
        return index
    }

    static func temporaryDirectory() throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ipam-moto-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        return directory
    }

    /// The addresses in an AssignPrivateIpAddresses answer.
    static func assigned(in response: String) -> [String] {
        response.matches(of: /<privateIpAddress>([^<]+)<\/privateIpAddress>/).map { String($0.output.1) }
    }

    /// Default settings: the primary ENI's 9 addresses; a second ENI created, attached at device 1,
    /// tagged and served; once spare and a minute old, detached, waited for and deleted.
    @Test("grows the primary ENI, then a second ENI, and frees it when spare; moto sees each step")
    func growsAndFrees() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await Self.withInstance { instance in
            let lines = Lines()
            let (core, reconciler) = try await Self.reconciler(
                instance, settings: ["IP_COOLDOWN_PERIOD": "0"], directory: directory, lines: lines,
                observer: Self.seenInEC2(instance))
            let primaryIP = try #require(instance.primary.primaryIPv4)
            #expect(instance.primary.secondaryIPv4s.isEmpty, "run_instances gives the primary ENI its own address only")

            // 1. WARM_ENI_TARGET=1: the primary ENI's 9 slots.
            await reconciler.pass()
            let primary = try #require(await core.enis.first)
            #expect(primary.addresses.count == 9)
            #expect(Set(primary.addresses).count == 9, "no address twice")
            #expect(!primary.addresses.contains(primaryIP), "the ENI's own address is never a pod address")
            // moto's deviation: the answer lists every address of the ENI, its primary included
            // (EC2 lists the 9 new ones); the reconciler asked EC2 which are secondary.
            let answer = try #require(instance.exchanges.of("AssignPrivateIpAddresses").first)
            #expect(answer.parameters["SecondaryPrivateIpAddressCount"] == "9")
            #expect(Set(Self.assigned(in: answer.response)) == Set(primary.addresses + [primaryIP]))
            #expect(await reconciler.calls == ["AssignPrivateIpAddresses": 1, "DescribeNetworkInterfaces": 1])
            var moto = try await Self.motoENIs(instance.moto)
            #expect(Set(moto[primary.id]?.secondaryIPs ?? []) == Set(primary.addresses))
            #expect(moto[primary.id]?.primaryIP == primaryIP)

            // 2. Full: a second ENI, in the primary ENI's subnet with its security groups.
            #expect(await Self.fill(core) == 9)
            await reconciler.pass()
            let enis = await core.enis
            try #require(enis.count == 2, "\(lines.all)")
            let second = enis[1]
            #expect(second.device == 1 && !second.isPrimary)
            // Not also 9 distinct: moto draws a new ENI's secondary addresses at random with no uniqueness check
            // (CreateNetworkInterface with SecondaryPrivateIpAddressCount), so two can coincide, which EC2 never does.
            // ipamd's copy is compared with moto's own below.
            #expect(second.addresses.count == 9)
            let calls = await reconciler.calls
            for api in [
                "CreateNetworkInterface", "DescribeInstances", "AttachNetworkInterface", "ModifyNetworkInterfaceAttribute",
            ] {
                #expect(calls[api] == 1, "\(api): \(calls)")
            }
            let create = try #require(instance.exchanges.of("CreateNetworkInterface").first)
            #expect(create.parameters["SecondaryPrivateIpAddressCount"] == "9")
            #expect(create.parameters["ClientToken"]?.hasPrefix("nodeboot-") == true)
            let attach = try #require(instance.exchanges.of("AttachNetworkInterface").first)
            #expect(attach.parameters["DeviceIndex"] == "1" && attach.parameters["InstanceId"] == instance.id)
            let attachment = try #require(attach.response.firstMatch(of: /<attachmentId>([^<]+)<\/attachmentId>/)?.output.1)
            let modify = try #require(instance.exchanges.of("ModifyNetworkInterfaceAttribute").first)
            #expect(modify.parameters["NetworkInterfaceId"] == second.id)
            #expect(modify.parameters["Attachment.AttachmentId"] == String(attachment))
            #expect(modify.parameters["Attachment.DeleteOnTermination"] == "true", "DeleteOnTermination requested")
            moto = try await Self.motoENIs(instance.moto)
            let made = try #require(moto[second.id])
            #expect(made.status == "in-use" && made.instance == instance.id && made.device == 1)
            #expect(made.description == "nodeboot-\(instance.id)")
            #expect(made.subnet == instance.subnet && made.groups == instance.primary.securityGroupIds.sorted())
            #expect(!made.groups.isEmpty)
            #expect(Set(made.secondaryIPs) == Set(second.addresses))
            #expect(made.tags["node.k8s.amazonaws.com/instance_id"] == instance.id)
            #expect(made.tags["cluster.k8s.amazonaws.com/name"] == "nb-moto")
            let createdAt = try #require(made.tags["node.k8s.amazonaws.com/createdAt"])
            let stamp = try #require(LeakSweeper.parseRFC3339(createdAt), "createdAt '\(createdAt)' is RFC 3339")
            #expect(abs(stamp.timeIntervalSinceNow) < 120)
            // moto's deviation: DeleteOnTermination is accepted and not kept (EC2 keeps it).
            #expect(made.deleteOnTermination == false)
            #expect(lines.all.contains("ipamd: attached \(second.id) at device 1 with 9 addresses"), "\(lines.all)")
            #expect(
                instance.exchanges.of("DescribeNetworkInterfaces").contains {
                    $0.parameters["NetworkInterfaceId.1"] == second.id
                },
                "the attachment observer asked EC2")

            // 3. The new ENI's addresses are served, from its own route table.
            let next = await core.handle(.add(Self.key(9), netns: "/n", pod: PodReference(namespace: "d", name: "p9")))
            guard case .added(let assignment) = next else {
                Issue.record("\(next)")
                return
            }
            #expect(assignment.device == 1 && assignment.table == 2)
            #expect(second.addresses.contains(String(assignment.ips.first?.split(separator: "/").first ?? "")))

            // 4. The pods leave (no cooldown): the spare ENI is younger than a minute and is kept.
            for index in 0...9 { _ = await core.handle(.del(Self.key(index), pod: nil, reason: "test")) }
            #expect(await core.counts().assigned == 0)
            await reconciler.pass()
            #expect(await core.enis.count == 2, "an ENI younger than PoolView.minimumENIAge is not freed")
            #expect(await reconciler.calls["DetachNetworkInterface"] == nil)
            #expect(await reconciler.lastDecision.actions.isEmpty)

            // 5. A minute later (the test ages it): detached, polled until available, deleted.
            await reconciler.setCreated(second.id, at: .now - PoolView.minimumENIAge)
            await reconciler.pass()
            #expect(await reconciler.lastDecision.actions == [.freeENI(eni: second.id)])
            #expect(await core.enis.map(\.id) == [primary.id])
            let freed = await reconciler.calls
            #expect(freed["DetachNetworkInterface"] == 1 && freed["DeleteNetworkInterface"] == 1, "\(freed)")
            #expect(instance.exchanges.of("DetachNetworkInterface").first?.parameters["AttachmentId"] == String(attachment))
            moto = try await Self.motoENIs(instance.moto)
            #expect(moto[second.id] == nil, "deleted in moto")
            #expect(moto[primary.id]?.secondaryIPs.count == 9, "the primary ENI keeps its addresses")
            #expect(lines.all.contains { $0.contains("detached and deleted \(second.id)") })
            #expect(await core.checkpoint.intents.isEmpty)
        }
    }

    /// WARM_IP_TARGET=2: a second grow of the same ENI, then a decrease, then one held back.
    @Test("a grow adds only the new addresses (moto answers all); free ones above WARM_IP_TARGET go back, 30 s apart")
    func givesBack() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try await Self.withInstance { instance in
            let lines = Lines()
            let (core, reconciler) = try await Self.reconciler(
                instance, settings: ["WARM_IP_TARGET": "2", "IP_COOLDOWN_PERIOD": "0"], directory: directory,
                lines: lines, observer: Self.seenInEC2(instance))
            let primaryIP = try #require(instance.primary.primaryIPv4)
            await reconciler.pass()
            let first = try #require(await core.enis.first?.addresses)
            #expect(first.count == 2)
            #expect(await Self.fill(core) == 2)

            // Short by 2 again: moto answers the ENI's 5 addresses, the core takes the 2 new ones.
            await reconciler.pass()
            let grown = try #require(await core.enis.first?.addresses)
            #expect(grown.count == 4 && Set(grown).count == 4, "\(grown)")
            #expect(Array(grown.prefix(2)) == first, "the addresses it had stay, in order")
            #expect(!grown.contains(primaryIP))
            let second = try #require(instance.exchanges.of("AssignPrivateIpAddresses").last)
            #expect(second.parameters["SecondaryPrivateIpAddressCount"] == "2")
            #expect(Set(Self.assigned(in: second.response)) == Set(grown + [primaryIP]), "moto: every address of the ENI")
            #expect(await reconciler.calls["CreateNetworkInterface"] == nil)

            // Both pods leave: 4 free, 2 above the target, given back.
            for index in 0..<2 { _ = await core.handle(.del(Self.key(index), pod: nil, reason: "test")) }
            await reconciler.pass()
            let kept = try #require(await core.enis.first?.addresses)
            #expect(kept.count == 2)
            let unassign = try #require(instance.exchanges.of("UnassignPrivateIpAddresses").first)
            let released = unassign.parameters.filter { $0.key.hasPrefix("PrivateIpAddress.") }.map(\.value)
            #expect(Set(released).union(kept) == Set(grown) && Set(released).isDisjoint(with: kept))
            var moto = try await Self.motoENIs(instance.moto)
            #expect(Set(moto[instance.primary.id]?.secondaryIPs ?? []) == Set(kept), "moto took them back")
            #expect(await core.checkpoint.intents.isEmpty, "the unassign intent is resolved")

            // Again 2 above the target within 30 s of the last decrease: nothing goes back yet.
            #expect(await Self.fill(core, from: 2) == 4)
            await reconciler.pass()
            #expect(await core.enis.first?.addresses.count == 4)
            for index in 2..<4 { _ = await core.handle(.del(Self.key(index), pod: nil, reason: "test")) }
            await reconciler.pass()
            let held = await reconciler.lastDecision
            #expect(held.over == 2 && held.actions.isEmpty, "PoolView.decreaseInterval holds the next decrease")
            #expect(await reconciler.calls["UnassignPrivateIpAddresses"] == 1)
            moto = try await Self.motoENIs(instance.moto)
            #expect(moto[instance.primary.id]?.secondaryIPs.count == 4)
        }
    }

    /// moto's metadata service does not describe the instance's ENIs: with the daemon's IMDS
    /// observer a new ENI is never seen, and the reconciler removes it again.
    @Test("the IMDS observer never sees a new ENI in moto; the ENI is detached and deleted again")
    func imdsObserverAgainstMoto() async throws {
        let directory = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // One IMDS attempt per look: the daemon's IMDS policy retries moto's 500s for 60 s within a
        // single look, which the attach wait does not cut short.
        let quick = RetryPolicy(
            maxAttempts: 1, baseDelay: .milliseconds(50), maxBackoff: .milliseconds(50), deadline: .seconds(2),
            attemptTimeout: .seconds(2))
        try await Self.withInstance(imdsPolicy: quick) { instance in
            let lines = Lines()
            let (core, reconciler) = try await Self.reconciler(
                instance, settings: [:], directory: directory, lines: lines, attachWait: .seconds(1), observer: nil)
            let before = Set(try await Self.motoENIs(instance.moto).keys)
            await reconciler.pass()
            _ = await Self.fill(core)
            let started = ContinuousClock.now
            await reconciler.pass()
            #expect(ContinuousClock.now - started < .seconds(10), "bounded by the 1 s attach wait and the cleanup")
            #expect(await core.enis.count == 1, "no ENI joined the pool")
            let created = try #require(instance.exchanges.of("CreateNetworkInterface").first)
            let id = try #require(created.response.firstMatch(of: /<networkInterfaceId>([^<]+)<\/networkInterfaceId>/)?.output.1)
            let mac = try #require(created.response.firstMatch(of: /<macAddress>([^<]+)<\/macAddress>/)?.output.1)
            // moto's deviation: its metadata service answers no path under network/interfaces/macs.
            await #expect {
                _ = try await instance.session.imds.networkInterface(mac: String(mac))
            } throws: { error in
                (error as? AWSError)?.status == 500 && "\(error)".contains("network/interfaces/macs/\(mac)/")
            }
            #expect(lines.all.contains { $0.contains("the new ENI \(id) (") && $0.contains("did not appear on the instance") })
            let calls = await reconciler.calls
            #expect(calls["DetachNetworkInterface"] == 1 && calls["DeleteNetworkInterface"] == 1, "\(calls)")
            #expect(Set(try await Self.motoENIs(instance.moto).keys) == before, "the half-made ENI is gone from moto")
        }
    }

    /// One sweep: an old detached nodeboot ENI deleted; a young one, one without createdAt
    /// (tagged now) and aws-node's kept.
    @Test("the leak sweep deletes an old leaked nodeboot ENI in moto and keeps the young one")
    func sweeps() async throws {
        try await Self.withInstance { instance in
            let young = ISO8601DateFormatter().string(from: Date().addingTimeInterval(-60))
            let made = try await instance.moto.boto3(
                """
                ec2 = boto3.client('ec2', **kw)
                def eni(description, tags):
                    spec = [{'ResourceType': 'network-interface', 'Tags': [{'Key': k, 'Value': v} for k, v in tags.items()]}]
                    return ec2.create_network_interface(SubnetId='\(instance.subnet)', Description=description,
                        TagSpecifications=spec)['NetworkInterface']['NetworkInterfaceId']
                ours = {'node.k8s.amazonaws.com/instance_id': 'i-0gone', 'cluster.k8s.amazonaws.com/name': 'nb-moto'}
                print(eni('nodeboot-i-0gone', dict(ours, **{'node.k8s.amazonaws.com/createdAt': '2026-01-01T00:00:00Z'})),
                      eni('nodeboot-i-0gone', dict(ours, **{'node.k8s.amazonaws.com/createdAt': '\(young)'})),
                      eni('nodeboot-i-0gone', ours),
                      eni('aws-K8S-i-0gone', dict(ours, **{'node.k8s.amazonaws.com/createdAt': '2026-01-01T00:00:00Z'})))
                """
            ).split(separator: " ").map(String.init)
            try #require(made.count == 4)
            let (old, youngENI, untagged, awsNode) = (made[0], made[1], made[2], made[3])
            let lines = Lines()
            let sweeper = LeakSweeper(
                ec2: instance.client, instanceID: instance.id, vpcID: instance.vpc, cluster: "nb-moto", log: lines.log)
            let result = await sweeper.sweep()
            #expect(result.errors.isEmpty, "\(result.errors)")
            #expect(result.deleted == [old])
            #expect(result.young == [youngENI])
            #expect(result.tagged == [untagged])
            let query = try #require(instance.exchanges.of("DescribeNetworkInterfaces").last?.parameters)
            #expect(
                Set(query.filter { $0.key.hasPrefix("Filter.") && $0.key.hasSuffix(".Name") }.map(\.value)) == [
                    "tag-key", "status", "vpc-id", "tag:cluster.k8s.amazonaws.com/name",
                ])
            let moto = try await Self.motoENIs(instance.moto)
            #expect(moto[old] == nil, "deleted in moto")
            #expect(moto[youngENI] != nil && moto[awsNode] != nil && moto[instance.primary.id] != nil)
            let stamped = try #require(moto[untagged]?.tags["node.k8s.amazonaws.com/createdAt"])
            #expect(LeakSweeper.parseRFC3339(stamped) != nil, "tagged now, deleted by a later sweep")
            #expect(lines.all.contains { $0.contains("deleted \(old) (nodeboot-i-0gone, of i-0gone)") }, "\(lines.all)")
        }
    }
}
