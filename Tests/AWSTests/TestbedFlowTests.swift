import AWS
import Foundation
import SigV4
import Support
import TestSupport
import Testbed
import Testing

/// The AWS layer against the testbed: IMDSv2, the credential chain, signed EC2/EKS calls.
@Suite("AWS layer against the testbed")
struct TestbedFlowTests {
    /// Runs `body` with a started testbed and an `AWSSession` pointed at it (no static credentials).
    @discardableResult
    static func withSession<T>(
        _ configuration: TestbedConfiguration = .default,
        environment extra: [String: String] = [:],
        imdsPolicy: RetryPolicy = .imds,
        apiPolicy: RetryPolicy? = nil,
        _ body: (Testbed, AWSSession) async throws -> T
    ) async throws -> T {
        let testbed = try await Testbed.start(configuration)
        let session = try AWSSession(
            environment: testbed.environment.merging(extra) { $1 }, imdsPolicy: imdsPolicy, apiPolicy: apiPolicy)
        do {
            let result = try await body(testbed, session)
            await session.shutdown()
            try await testbed.shutdown()
            return result
        } catch {
            await session.shutdown()
            try await testbed.shutdown()
            throw error
        }
    }

    @Test("instance facts of nodeadm's E2E instance come from IMDSv2")
    func instanceFacts() async throws {
        try await Self.withSession { testbed, session in
            let facts = try await session.imds.instanceFacts()
            #expect(facts.identity.instanceId == "i-1234567890abcdef0")
            #expect(facts.identity.instanceType == "m4.xlarge")
            #expect(facts.identity.region == "us-west-2")
            #expect(facts.identity.availabilityZone == "us-west-2f")
            #expect(facts.mac == "0e:49:61:0f:c3:11")
            #expect(facts.localIPv4 == "172.16.34.43")
            #expect(facts.localHostname == "ip-172-16-34-43.ec2.internal")
            let primary = try #require(facts.primaryInterface)
            #expect(primary.deviceNumber == 0)
            #expect(primary.networkCard == 0)
            #expect(primary.localIPv4s == ["172.16.34.43"])
            #expect(primary.ipv6s == ["2001:db8:8:4::2"])
            #expect(primary.vpcIPv4CIDRBlocks == ["192.0.2.0/24"])
            // One token for the whole discovery, every GET carried it (strict IMDSv2 would 401 otherwise).
            let requests = await testbed.requests().filter { $0.endpoint == "imds" }
            #expect(requests.filter { $0.action == "GetToken" }.count == 1, "\(requests)")
            #expect(requests.allSatisfy { $0.status == 200 || $0.status == 404 })
        }
    }

    @Test("the credential chain falls back to the instance role; EC2 and EKS accept its signatures")
    func roleCredentialsSignCalls() async throws {
        try await Self.withSession { testbed, session in
            let provider = try await session.credentialProvider()
            #expect(provider.source.contains("instance role"))
            let identity = try await session.imds.identity()
            let client = try await session.client(region: session.region(identity: identity).region)
            let instance = try await client.describeInstance(id: identity.instanceId)
            #expect(instance.privateDnsName == testbed.configuration.privateDnsName)
            let type = try await client.describeInstanceType("m4.xlarge")
            #expect(type.maxENIs == 4 && type.ipv4AddressesPerInterface == 15)
            let cluster = try await client.describeCluster(name: "my-cluster")
            #expect(cluster.serviceIPv4CIDR == "10.100.0.0/16")
            #expect(cluster.status == "ACTIVE")
            let signedBy = await testbed.requests().filter { $0.endpoint != "imds" }.compactMap(\.accessKeyId)
            #expect(signedBy.count == 3)
            #expect(signedBy.allSatisfy { $0 == testbed.roleCredentials.accessKeyID })
        }
    }

    @Test("credentials in the environment win over the role; unknown keys get the service's error and a hint")
    func unknownKeyIsRejected() async throws {
        try await Self.withSession(
            environment: ["AWS_ACCESS_KEY_ID": "AKIDUNKNOWN", "AWS_SECRET_ACCESS_KEY": "nope", "AWS_MAX_ATTEMPTS": "1"]
        ) { _, session in
            let provider = try await session.credentialProvider()
            #expect(provider.source.contains("environment"))
            let client = try await session.client(region: "us-west-2")
            await #expect {
                try await client.describeCluster(name: "my-cluster")
            } throws: { error in
                guard let error = error as? AWSError else { return false }
                return error.kind == .service && error.hint != nil && error.requestID != nil
                    && error.description.contains("EKS DescribeCluster")
            }
        }
    }

    @Test("DescribeCluster of an unknown cluster names the cluster and the region in its hint")
    func unknownCluster() async throws {
        try await Self.withSession { _, session in
            let client = try await session.client(region: "us-west-2")
            await #expect {
                try await client.describeCluster(name: "no-such-cluster")
            } throws: { error in
                let error = error as? AWSError
                return error?.code == "ResourceNotFoundException" && error?.hint?.contains("us-west-2") == true
            }
        }
    }
}

/// The fault tests of the foundation issue: each a failure the agent meets at boot.
@Suite("AWS layer under injected faults")
struct AWSClientFaultTests {
    @Test("IMDS absent: a clear error within the configured bound")
    func imdsAbsent() async throws {
        let port = try freeLoopbackPort()
        let transport = AsyncHTTPTransport(connectTimeout: .milliseconds(250))
        let policy = RetryPolicy(
            maxAttempts: 100, baseDelay: .milliseconds(50), maxBackoff: .milliseconds(500), deadline: .seconds(2),
            attemptTimeout: .seconds(1))
        let imds = IMDSClient(endpoint: "http://127.0.0.1:\(port)", transport: transport, policy: policy)
        let clock = ContinuousClock()
        let start = clock.now
        await #expect {
            try await imds.instanceFacts()
        } throws: { error in
            guard let error = error as? AWSError else { return false }
            return error.kind == .unreachable && error.description.contains("127.0.0.1:\(port)")
                && error.hint?.contains("metadata") == true
        }
        #expect(start.duration(to: clock.now) < .seconds(10))
        await transport.shutdown()
    }

    @Test("IMDS that starts 10 s late: discovery waits and succeeds")
    func imdsLateStart() async throws {
        var configuration = TestbedConfiguration.default
        configuration.lateStart = .init(imdsSeconds: 10)
        try await TestbedFlowTests.withSession(configuration) { _, session in
            let facts = try await session.imds.instanceFacts()
            #expect(facts.identity.instanceId == "i-1234567890abcdef0")
        }
    }

    @Test("a token expired mid-run: one 401, a new token, success")
    func tokenExpiredMidRun() async throws {
        try await TestbedFlowTests.withSession { testbed, session in
            _ = try await session.imds.require("/latest/meta-data/instance-id")
            await testbed.expireIMDSTokens()
            let mac = try await session.imds.require("/latest/meta-data/mac")
            #expect(mac == "0e:49:61:0f:c3:11")
            // The rejected token was replaced: a 401, then a new token, then the answer. (A slow
            // attempt on this shared machine may add a token request; the order is what matters.)
            let imds = await testbed.requests().filter { $0.endpoint == "imds" }
            let rejected = try #require(imds.firstIndex { $0.status == 401 })
            #expect(imds.filter { $0.status == 401 }.count == 1)
            #expect(imds[(rejected + 1)...].contains { $0.action == "GetToken" && $0.status == 200 })
            #expect(imds.last?.path == "/latest/meta-data/mac" && imds.last?.status == 200)
        }
    }

    @Test("throttled EC2: retried with backoff, then success")
    func throttledEC2() async throws {
        var configuration = TestbedConfiguration.default
        configuration.faults = [.throttle(.ec2, action: "DescribeInstances", count: 3)]
        try await TestbedFlowTests.withSession(configuration) { testbed, session in
            let client = try await session.client(region: "us-west-2")
            let instance = try await client.describeInstance(id: "i-1234567890abcdef0")
            #expect(!instance.privateDnsName.isEmpty)
            let calls = await testbed.requests().filter { $0.action == "DescribeInstances" }
            #expect(calls.count == 4)
            #expect(calls.prefix(3).allSatisfy { $0.fault == "throttle" })
        }
    }

    @Test("throttling that never ends: the error says throttled and how to cope")
    func throttledForever() async throws {
        var configuration = TestbedConfiguration.default
        configuration.faults = [.throttle(.eks)]
        try await TestbedFlowTests.withSession(configuration, environment: ["AWS_MAX_ATTEMPTS": "2"]) { _, session in
            let client = try await session.client(region: "us-west-2")
            await #expect {
                try await client.describeCluster(name: "my-cluster")
            } throws: { error in
                guard let error = error as? AWSError else { return false }
                return error.isThrottling && error.hint?.contains("AWS_MAX_ATTEMPTS") == true
                    && error.message.contains("2 attempts")
            }
        }
    }

    @Test("a black-holed endpoint fails within the deadline")
    func blackholedEndpoint() async throws {
        var configuration = TestbedConfiguration.default
        configuration.faults = [.blackhole(.ec2)]
        let policy = RetryPolicy(
            maxAttempts: 10, baseDelay: .milliseconds(50), maxBackoff: .milliseconds(200), deadline: .seconds(2),
            attemptTimeout: .milliseconds(500))
        try await TestbedFlowTests.withSession(configuration, apiPolicy: policy) { _, session in
            let client = try await session.client(region: "us-west-2")
            let clock = ContinuousClock()
            let start = clock.now
            await #expect {
                try await client.describeInstance(id: "i-1234567890abcdef0")
            } throws: { error in
                (error as? AWSError)?.kind == .unreachable
            }
            #expect(start.duration(to: clock.now) < .seconds(8))
        }
    }

    @Test("garbage from EC2 is an error naming the operation and endpoint")
    func garbageResponse() async throws {
        var configuration = TestbedConfiguration.default
        configuration.faults = [.garbage(.ec2)]
        try await TestbedFlowTests.withSession(configuration) { testbed, session in
            let client = try await session.client(region: "us-west-2")
            await #expect {
                try await client.describeInstance(id: "i-1234567890abcdef0")
            } throws: { error in
                guard let error = error as? AWSError else { return false }
                return error.kind == .malformedResponse && error.description.contains("EC2 DescribeInstances")
                    && error.description.contains(testbed.awsEndpoint)
            }
        }
    }

    @Test("a truncated identity document is an error naming the IMDS path")
    func truncatedIMDS() async throws {
        var configuration = TestbedConfiguration.default
        configuration.faults = [.truncated(.imds, path: "/latest/dynamic/instance-identity/document")]
        let policy = RetryPolicy(
            maxAttempts: 3, baseDelay: .milliseconds(10), maxBackoff: .milliseconds(50), deadline: .seconds(5),
            attemptTimeout: .seconds(1))
        try await TestbedFlowTests.withSession(configuration, imdsPolicy: policy) { _, session in
            await #expect {
                try await session.imds.identity()
            } throws: { error in
                "\(error)".contains("/latest/dynamic/instance-identity/document")
            }
        }
    }

    @Test("garbage identity document is reported as malformed, not a crash")
    func garbageIMDS() async throws {
        var configuration = TestbedConfiguration.default
        configuration.faults = [.garbage(.imds, path: "/latest/dynamic/instance-identity/document")]
        try await TestbedFlowTests.withSession(configuration) { _, session in
            await #expect {
                try await session.imds.identity()
            } throws: { error in
                (error as? AWSError)?.kind == .malformedResponse
            }
        }
    }

    @Test("IMDS is never sent through HTTP_PROXY")
    func imdsBypassesProxy() async throws {
        let deadProxy = try freeLoopbackPort()
        try await TestbedFlowTests.withSession(
            environment: ["HTTP_PROXY": "http://127.0.0.1:\(deadProxy)", "NO_PROXY": ""]
        ) { _, session in
            let id = try await session.imds.require("/latest/meta-data/instance-id")
            #expect(id == "i-1234567890abcdef0")
        }
    }
}
