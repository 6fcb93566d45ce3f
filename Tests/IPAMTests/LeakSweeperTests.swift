import AWS
import Foundation
import Synchronization
import Testbed
import Testing

@testable import IPAM

/// The leak sweep (docs/ipamd.md §4) against the testbed's EC2: leaked ENIs made directly in its
/// network model with `createDetachedNetworkInterface`, the model read back afterwards.
@Suite("ipamd leak sweep against the testbed's EC2")
struct LeakSweeperTests {
    static let instance = "i-1234567890abcdef0"
    static let otherInstance = "i-0aaaaaaaaaaaaaaaa"

    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var log: @Sendable (String) -> Void { { [self] line in lines.withLock { $0.append(line) } } }
        var all: [String] { lines.withLock { $0 } }
    }

    /// A clock the test moves.
    final class Clock: Sendable {
        let date = Mutex(Date())
        var now: @Sendable () -> Date { { [self] in date.withLock { $0 } } }
        func advance(_ seconds: TimeInterval) { date.withLock { $0 += seconds } }
    }

    struct World {
        var testbed: Testbed
        var client: AWSClient
        var vpc: String
        var lines: Lines

        func sweeper(cluster: String? = nil, vpc: String? = nil, now: @escaping @Sendable () -> Date = { Date() })
            -> LeakSweeper
        {
            LeakSweeper(
                ec2: client, instanceID: LeakSweeperTests.instance, vpcID: vpc ?? self.vpc, cluster: cluster, now: now,
                log: lines.log)
        }

        /// A leaked ENI: detached, `age` seconds old, tagged with its creator's instance id (and
        /// `createdAt` unless `createdAt: false`).
        func leak(
            _ description: String = "nodeboot-\(LeakSweeperTests.otherInstance)", age: TimeInterval = 600,
            tags: [String: String] = [LeakSweeper.instanceTag: LeakSweeperTests.otherInstance], createdAt: Bool = true
        ) async throws -> String {
            try await testbed.createDetachedNetworkInterface(
                DetachedNetworkInterface(description: description, tags: tags, ageSeconds: age, tagCreatedAt: createdAt)
            ).networkInterfaceId
        }

        func ids() async -> Set<String> { Set(await testbed.networkInterfaces().map(\.networkInterfaceId)) }

        func tags(_ id: String) async -> [String: String]? {
            await testbed.networkInterfaces().first { $0.networkInterfaceId == id }?.tags
        }

        /// EC2 requests of `action` answered so far.
        func requests(_ action: String) async -> Int {
            await testbed.requests().filter { $0.action == action }.count
        }
    }

    /// The instance role's secrets, known here so that tests can look for them in log lines.
    static let secretAccessKey = "leak-sweep-secret-access-key-0123456789"
    static let sessionToken = "leak-sweep-session-token-0123456789"

    static func withWorld(_ body: (World) async throws -> Void) async throws {
        var configuration = TestbedConfiguration.default
        configuration.role = .init(
            accessKeyId: "ASIALEAKSWEEP0000000", secretAccessKey: secretAccessKey, sessionToken: sessionToken)
        let testbed = try await Testbed.start(configuration)
        let session = try AWSSession(environment: testbed.environment)
        do {
            let client = try await session.client(region: testbed.region)
            let vpc = await testbed.networkState().vpc.vpcId
            try await body(World(testbed: testbed, client: client, vpc: vpc, lines: Lines()))
        } catch {
            await session.shutdown()
            try await testbed.shutdown()
            throw error
        }
        await session.shutdown()
        try await testbed.shutdown()
    }

    @Test("an old nodeboot ENI is deleted, with one log line naming it, its creator and its age")
    func deletesOld() async throws {
        try await Self.withWorld { world in
            let leaked = try await world.leak(age: 600)
            let own = try await world.leak(
                "nodeboot-\(Self.instance)", age: 3 * 3600 + 300, tags: [LeakSweeper.instanceTag: Self.instance])
            let sweeper = world.sweeper()
            let result = await sweeper.sweep()
            #expect(result.deleted == [leaked, own].sorted())
            #expect(result.tagged.isEmpty && result.young.isEmpty && result.errors.isEmpty)
            let remaining = await world.ids()
            #expect(!remaining.contains(leaked) && !remaining.contains(own), "deleted in EC2")
            let other = "nodeboot-\(Self.otherInstance), of \(Self.otherInstance)"
            #expect(
                world.lines.all.sorted()
                    == [
                        "ipamd leak sweep: deleted \(leaked) (\(other)), created 10 min ago",
                        "ipamd leak sweep: deleted \(own) (nodeboot-\(Self.instance), of this instance), created 3 h 5 min ago",
                    ].sorted())
            #expect(await sweeper.calls == ["DescribeNetworkInterfaces": 1, "DeleteNetworkInterface": 2])
            #expect(await sweeper.errors.isEmpty)
        }
    }

    @Test("an ENI created less than 5 minutes ago is kept, and deleted once it is 5 minutes old")
    func keepsYoung() async throws {
        try await Self.withWorld { world in
            let clock = Clock()
            let young = try await world.leak(age: 60)
            let sweeper = world.sweeper(now: clock.now)
            let first = await sweeper.sweep()
            #expect(first.young == [young] && first.deleted.isEmpty)
            #expect(await world.ids().contains(young))
            #expect(await world.requests("DeleteNetworkInterface") == 0)
            #expect(world.lines.all.isEmpty, "a young ENI is not worth a line every hour")
            clock.advance(239)
            #expect(await sweeper.sweep().young == [young], "4 min 59 s old")
            clock.advance(2)
            #expect(await sweeper.sweep().deleted == [young], "5 min 1 s old")
            #expect(await !world.ids().contains(young))
        }
    }

    @Test(
        "an ENI with no or an unreadable createdAt is tagged now, kept, and deleted by a sweep 5 minutes later",
        arguments: [nil, "", "yesterday", "2024-13-01T00:00:00Z"] as [String?])
    func tagsThenDeletes(createdAt: String?) async throws {
        try await Self.withWorld { world in
            let clock = Clock()
            var tags = [LeakSweeper.instanceTag: Self.otherInstance]
            if let createdAt { tags[LeakSweeper.createdAtTag] = createdAt }
            // Days old to EC2, but nothing says so in the tags: the sweep cannot know.
            let leaked = try await world.leak(age: 86_400 * 3, tags: tags, createdAt: false)
            let sweeper = world.sweeper(now: clock.now)
            let stamp = clock.now().formatted(.iso8601)

            let first = await sweeper.sweep()
            #expect(first.tagged == [leaked] && first.deleted.isEmpty && first.errors.isEmpty)
            #expect(await world.tags(leaked)?[LeakSweeper.createdAtTag] == stamp)
            #expect(await world.tags(leaked)?[LeakSweeper.instanceTag] == Self.otherInstance, "other tags are kept")
            let line = try #require(world.lines.all.first)
            #expect(
                line.hasPrefix("ipamd leak sweep: tagged \(leaked) (nodeboot-\(Self.otherInstance), of \(Self.otherInstance))"))
            #expect(line.contains("createdAt=\(stamp)"))

            clock.advance(60)
            let second = await sweeper.sweep()
            #expect(second.young == [leaked] && second.tagged.isEmpty, "tagged a minute ago: young now")
            #expect(await world.ids().contains(leaked))

            clock.advance(240)
            let third = await sweeper.sweep()
            #expect(third.deleted == [leaked])
            #expect(await !world.ids().contains(leaked))
            let other = "nodeboot-\(Self.otherInstance), of \(Self.otherInstance)"
            #expect(world.lines.all.last == "ipamd leak sweep: deleted \(leaked) (\(other)), created 5 min ago")
            #expect(await sweeper.calls["CreateTags"] == 1)
        }
    }

    @Test("aws-node's aws-K8S- ENIs, ENIs in use, untagged or unmarked ENIs and other VPCs are never touched")
    func neverTouched() async throws {
        try await Self.withWorld { world in
            let awsNode = try await world.leak("aws-K8S-\(Self.otherInstance)", age: 86_400)
            let awsNodeUntagged = try await world.leak("aws-K8S-\(Self.otherInstance)", age: 86_400, createdAt: false)
            let noInstanceTag = try await world.leak(age: 86_400, tags: [:])
            let otherDescription = try await world.leak("launch-template eni", age: 86_400)
            // A nodeboot ENI attached to the instance: in use, so EC2 does not list it as available.
            let inUse = try await world.leak(age: 86_400)
            _ = try await world.client.attachNetworkInterface(eni: inUse, instance: Self.instance, deviceIndex: 1)
            let inUseUntagged = try await world.leak(age: 86_400, createdAt: false)
            _ = try await world.client.attachNetworkInterface(eni: inUseUntagged, instance: Self.instance, deviceIndex: 2)
            let before = await world.testbed.networkInterfaces()
            #expect(before.first { $0.networkInterfaceId == inUse }?.status == "in-use")

            let result = await world.sweeper().sweep()
            #expect(result == SweepResult())
            #expect(await world.testbed.networkInterfaces() == before, "nothing deleted, nothing tagged")
            #expect(await world.requests("DeleteNetworkInterface") == 0)
            #expect(await world.requests("CreateTags") == 0)
            #expect(world.lines.all.isEmpty)
            for id in [awsNode, awsNodeUntagged, noInstanceTag, otherDescription, inUse, inUseUntagged] {
                #expect(before.contains { $0.networkInterfaceId == id })
            }

            // The same leak, as the sweep sees it, is deleted; a sweeper of another VPC does not see it.
            let leaked = try await world.leak(age: 86_400)
            #expect(await world.sweeper(vpc: "vpc-00000000").sweep() == SweepResult())
            #expect(await world.sweeper().sweep().deleted == [leaked])
        }
    }

    @Test("with the cluster known, another cluster's ENI and an ENI without a cluster tag are left alone")
    func otherCluster() async throws {
        try await Self.withWorld { world in
            let ours = try await world.leak(
                tags: [LeakSweeper.instanceTag: Self.otherInstance, LeakSweeper.clusterTag: "my-cluster"])
            let theirs = try await world.leak(
                tags: [LeakSweeper.instanceTag: Self.otherInstance, LeakSweeper.clusterTag: "their-cluster"])
            let unmarked = try await world.leak()
            let sweeper = world.sweeper(cluster: "my-cluster")
            #expect(
                await sweeper.filters == [
                    "tag-key": ["node.k8s.amazonaws.com/instance_id"], "status": ["available"], "vpc-id": [world.vpc],
                    "tag:cluster.k8s.amazonaws.com/name": ["my-cluster"],
                ])
            let result = await sweeper.sweep()
            #expect(result.deleted == [ours])
            let remaining = await world.ids()
            #expect(remaining.contains(theirs) && remaining.contains(unmarked))
            // Without the cluster (as aws-node without CLUSTER_NAME) the sweep is VPC-wide.
            let vpcWide = world.sweeper()
            #expect(await vpcWide.filters["tag:cluster.k8s.amazonaws.com/name"] == nil)
            #expect(await vpcWide.sweep().deleted == [theirs, unmarked].sorted())
        }
    }

    @Test("a failed DeleteNetworkInterface is counted and logged, the sweep goes on, and the next sweep deletes it")
    func deleteFault() async throws {
        try await Self.withWorld { world in
            let first = try await world.leak()
            let second = try await world.leak()
            let (failing, next) = first < second ? (first, second) : (second, first)
            await world.testbed.setFaults([
                FaultRule(endpoint: .ec2, action: "DeleteNetworkInterface", status: 403, code: "UnauthorizedOperation", count: 1)
            ])
            let sweeper = world.sweeper()
            let result = await sweeper.sweep()
            #expect(result.deleted == [next])
            let failure = try #require(result.errors.first)
            #expect(result.errors.count == 1)
            #expect(failure.eni == failing && failure.api == "DeleteNetworkInterface")
            #expect(
                failure.message.hasPrefix(
                    "ipamd leak sweep: cannot delete the leaked ENI \(failing): EC2 DeleteNetworkInterface at"))
            #expect(failure.message.contains("UnauthorizedOperation"))
            #expect(failure.message.contains("ec2:DeleteNetworkInterface"), "the hint names the IAM action")
            #expect(await sweeper.errors == ["DeleteNetworkInterface": 1])
            #expect(world.lines.all.filter { $0 == failure.message }.count == 1, "one line per error")
            #expect(await world.ids().contains(failing))
            Self.expectNoSecrets(world)

            let again = await sweeper.sweep()
            #expect(again.deleted == [failing] && again.errors.isEmpty)
        }
    }

    @Test("a failed DescribeNetworkInterfaces or CreateTags is counted and logged, not thrown")
    func describeAndTagFaults() async throws {
        try await Self.withWorld { world in
            let leaked = try await world.leak()
            let untagged = try await world.leak(createdAt: false)
            await world.testbed.setFaults([
                FaultRule(endpoint: .ec2, action: "DescribeNetworkInterfaces", status: 400, code: "AuthFailure", count: 1),
                FaultRule(endpoint: .ec2, action: "CreateTags", status: 403, code: "UnauthorizedOperation", count: 1),
            ])
            let sweeper = world.sweeper()
            let listing = await sweeper.sweep()
            #expect(listing.deleted.isEmpty && listing.tagged.isEmpty)
            #expect(listing.errors.map(\.api) == ["DescribeNetworkInterfaces"])
            #expect(listing.errors.first?.eni == nil)
            #expect(listing.errors.first?.message.contains("cannot list the leaked ENIs: EC2 DescribeNetworkInterfaces") == true)
            #expect(await world.requests("DeleteNetworkInterface") == 0)

            let tagging = await sweeper.sweep()
            #expect(tagging.deleted == [leaked] && tagging.tagged.isEmpty)
            #expect(tagging.errors.map(\.eni) == [untagged])
            #expect(tagging.errors.first?.message.contains("cannot tag \(untagged) with its createdAt") == true)
            #expect(await sweeper.errors == ["DescribeNetworkInterfaces": 1, "CreateTags": 1])
            #expect(await world.tags(untagged)?[LeakSweeper.createdAtTag] == nil)
            #expect(world.lines.all.count == 3, "two errors and one deletion")
            Self.expectNoSecrets(world)
        }
    }

    @Test("an ENI attached between the listing and the delete is refused by EC2, logged, and left attached")
    func attachedMeanwhile() async throws {
        try await Self.withWorld { world in
            let leaked = try await world.leak()
            let eni = try #require(
                try await world.client.describeNetworkInterfaces(ids: [leaked]).first)
            _ = try await world.client.attachNetworkInterface(eni: leaked, instance: Self.instance, deviceIndex: 1)
            let sweeper = world.sweeper()
            var result = SweepResult()
            await sweeper.delete(eni, age: 600, into: &result)
            #expect(result.deleted.isEmpty)
            #expect(result.errors.first?.message.contains("\(leaked) was attached since it was listed; left alone") == true)
            #expect(await world.testbed.networkInterfaces().first { $0.networkInterfaceId == leaked }?.status == "in-use")
        }
    }

    @Test("run sweeps after its first delay and then every interval, and ends when cancelled")
    func runs() async throws {
        try await Self.withWorld { world in
            let sweeper = world.sweeper()
            let waiting = Task { await sweeper.run(initialDelay: .seconds(3600), interval: .seconds(3600)) }
            try await Task.sleep(for: .milliseconds(50))
            waiting.cancel()
            await waiting.value
            #expect(await sweeper.calls.isEmpty, "cancelled during the first delay: no sweep")

            let task = Task { await sweeper.run(initialDelay: .milliseconds(10), interval: .milliseconds(20)) }
            let first = try await world.leak()
            let deadline = ContinuousClock.now + .seconds(10)
            while await world.ids().contains(first), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(await !world.ids().contains(first))
            let second = try await world.leak()
            while await world.ids().contains(second), ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(await !world.ids().contains(second), "a later sweep found the second leak")
            task.cancel()
            await task.value
            let sweeps = await sweeper.calls["DescribeNetworkInterfaces"] ?? 0
            #expect(sweeps >= 2)
            try await Task.sleep(for: .milliseconds(100))
            #expect(await sweeper.calls["DescribeNetworkInterfaces"] == sweeps, "no sweep after cancellation")
        }
    }

    @Test(
        "createdAt is read as RFC 3339, as aws-node writes it",
        arguments: [
            ("2024-05-01T12:00:00Z", 1_714_564_800.0),
            ("2024-05-01T12:00:00.250Z", 1_714_564_800.25),
            ("2024-05-01T14:00:00+02:00", 1_714_564_800.0),
            ("2024-05-01T07:00:00-05:00", 1_714_564_800.0),
        ])
    func rfc3339(text: String, seconds: Double) throws {
        let date = try #require(LeakSweeper.parseRFC3339(text))
        #expect(abs(date.timeIntervalSince1970 - seconds) < 0.001)
    }

    @Test("unreadable createdAt values", arguments: ["", "yesterday", "2024-05-01", "2024-13-01T00:00:00Z", "1714564800"])
    func unreadable(text: String) {
        #expect(LeakSweeper.parseRFC3339(text) == nil)
    }

    @Test(
        "ages in log lines",
        arguments: [(0.0, "0 s"), (45, "45 s"), (600, "10 min"), (11_100, "3 h 5 min"), (190_800, "2 d 5 h"), (-3, "0 s")])
    func ages(seconds: Double, text: String) {
        #expect(LeakSweeper.format(seconds) == text)
    }

    /// No log line carries the role's secret key or session token.
    static func expectNoSecrets(_ world: World) {
        #expect(!world.lines.all.isEmpty)
        for line in world.lines.all {
            #expect(!line.contains(secretAccessKey) && !line.contains(sessionToken))
        }
    }
}
