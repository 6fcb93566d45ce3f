import AWS
import Bootstrap
import Foundation
import Logging
import NodeConfig
import Support
import TestSupport
import Testbed
import Testing

/// nodeadm's three `behaviour` e2e cases, against the testbed's fault injection:
/// imds-timeouts, aws-api-connection-timeout, nodeadm-http-proxy.
@Suite("init behaviour under faults (nodeadm's behaviour cases)", .serialized)
struct InitBehaviourTests {
    static func initRun(_ options: InitOptions, environment: [String: String]) async -> (
        report: InitReport?, error: NodeBootError?, seconds: Double
    ) {
        let start = ContinuousClock.now
        let runner = NodeInit(
            options: options, environment: environment,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        do {
            let report = try await runner.run()
            return (report, nil, (ContinuousClock.now - start) / .seconds(1))
        } catch {
            return (nil, error, (ContinuousClock.now - start) / .seconds(1))
        }
    }

    static func options(root: String, sources: [ConfigSource] = ConfigSource.default) -> InitOptions {
        var options = InitOptions()
        options.root = root
        options.skip = [.run]
        options.sources = sources
        return options
    }

    @Test("imds-timeouts: no metadata service at all fails within the IMDS deadline, with a clear error")
    func noIMDS() async throws {
        let port = try freeLoopbackPort()
        var options = Self.options(root: try NodeFixture.root())
        options.imdsDeadline = .seconds(3)
        let result = await Self.initRun(
            options, environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(port)"])
        let error = try #require(result.error)
        #expect(error.code == .aws)
        #expect("\(error)".contains("user data from IMDS"))
        #expect(result.seconds < 10)
        #expect(!FileManager.default.fileExists(atPath: options.root! + "/etc/kubernetes/kubelet/config.json"))
    }

    @Test("imds-timeouts: a metadata service that starts 5 s after the agent is waited for")
    func lateIMDS() async throws {
        var configuration = TestbedConfiguration.default
        configuration.lateStart = .init(imdsSeconds: 5, awsSeconds: 0)
        let testbed = try await Testbed.start(configuration)
        let root = try NodeFixture.root()
        let result = await Self.initRun(Self.options(root: root), environment: testbed.environment)
        try await testbed.shutdown()
        #expect(result.error == nil, "\(String(describing: result.error))")
        #expect(result.seconds >= 4)
        #expect(FileManager.default.fileExists(atPath: root + "/etc/kubernetes/kubelet/config.json"))
    }

    @Test("an instance EC2 does not know yet (eventual consistency) is asked for again until it does")
    func instanceNotYetKnown() async throws {
        var configuration = TestbedConfiguration.default
        var notYet = FaultRule.status(.ec2, 400, action: "DescribeInstances", count: 2)
        notYet.code = "InvalidInstanceID.NotFound"
        configuration.faults = [notYet]
        let testbed = try await Testbed.start(configuration)
        let options = Self.options(root: try NodeFixture.root(), sources: [.file(try NodeFixture.configFile())])
        let result = await Self.initRun(options, environment: testbed.environment)
        let calls = await testbed.requests().filter { $0.action == "DescribeInstances" }
        try await testbed.shutdown()
        #expect(result.error == nil, "\(String(describing: result.error))")
        #expect(calls.map(\.status) == [400, 400, 200])
        #expect(result.report?.nodeName == testbed.configuration.privateDnsName)
    }

    @Test("aws-api-connection-timeout: a black-holed EC2 with AWS_MAX_ATTEMPTS=1 fails after one attempt timeout")
    func blackholedEC2() async throws {
        var configuration = TestbedConfiguration.default
        configuration.faults = [.blackhole(.ec2)]
        let testbed = try await Testbed.start(configuration)
        var environment = testbed.environment
        environment["AWS_MAX_ATTEMPTS"] = "1"
        let options = Self.options(root: try NodeFixture.root(), sources: [.file(try NodeFixture.configFile())])
        let result = await Self.initRun(options, environment: environment)
        try await testbed.shutdown()
        let error = try #require(result.error)
        #expect("\(error)".contains("DescribeInstances"))
        // One attempt: the 10 s per-attempt timeout (nodeadm: a 30 s dial timeout), never the
        // 120 s API deadline that applies with retries.
        #expect(result.seconds >= 9 && result.seconds < 25, "took \(result.seconds) s")
    }

    @Test(
        "nodeadm-http-proxy: spec.instance.environment.default proxies EC2 (one request per run), never IMDS",
        .enabled(if: ChildProcess.exists("python3"), "python3 is not installed"))
    func proxyFromUserData() async throws {
        let (process, lines, proxyPort) = try await ConnectProxy.start()
        defer { kill(process.processIdentifier, SIGKILL) }

        let userData =
            NodeFixture.config + """

                  instance:
                    environment:
                      default:
                        HTTP_PROXY: http://127.0.0.1:\(proxyPort)
                        HTTPS_PROXY: http://127.0.0.1:\(proxyPort)
                """
        // The bundled instance with this user data (aemm serves it as given).
        let testbed = try await Testbed.start(try TestbedConfiguration.bundled(userData: userData))
        let root = try NodeFixture.root()
        var firstRun = Self.options(root: root)
        firstRun.skip = [.run]
        let first = await Self.initRun(firstRun, environment: testbed.environment)
        #expect(first.error == nil, "\(String(describing: first.error))")
        var secondRun = Self.options(root: root)
        secondRun.skip = [.config]
        let second = await Self.initRun(secondRun, environment: testbed.environment)
        #expect(second.error == nil, "\(String(describing: second.error))")
        try await testbed.shutdown()

        let tunnels = lines.lines.dropFirst()
        let awsPort = try #require(URL(string: testbed.awsEndpoint)?.port)
        let imdsPort = try #require(URL(string: testbed.imdsEndpoint)?.port)
        #expect(tunnels.filter { $0.contains(":\(awsPort)") }.count == 2, "\(tunnels)")
        #expect(!tunnels.contains { $0.contains(":\(imdsPort)") })
    }
}

@Suite("init end to end against the testbed: DescribeCluster, cache, idempotency", .serialized)
struct InitFlowTests {
    @Test("missing endpoint/CA/CIDR: one DescribeCluster, persisted, so a re-run makes no call")
    func describeClusterOnce() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("c-\(UUID().uuidString).yaml")
        try Data("apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: my-cluster\n".utf8)
            .write(to: config)
        let options = InitBehaviourTests.options(root: root, sources: [.file(config.path)])
        // A dry run asks DescribeCluster too, and writes nothing: not even the persisted answer.
        var dryRun = options
        dryRun.dryRun = true
        let planned = await InitBehaviourTests.initRun(dryRun, environment: testbed.environment)
        #expect(planned.error == nil, "\(String(describing: planned.error))")
        #expect(!FileManager.default.fileExists(atPath: root + "/var/lib/nodeboot"))
        await testbed.clearRequests()
        let first = await InitBehaviourTests.initRun(options, environment: testbed.environment)
        #expect(first.error == nil, "\(String(describing: first.error))")
        let second = await InitBehaviourTests.initRun(options, environment: testbed.environment)
        #expect(second.error == nil, "\(String(describing: second.error))")
        let calls = await testbed.requests().filter { $0.action == "DescribeCluster" }
        try await testbed.shutdown()
        #expect(calls.count == 1)
        let kubeconfig = try String(contentsOfFile: root + "/var/lib/kubelet/kubeconfig", encoding: .utf8)
        // DescribeCluster reports the testbed's own API server.
        #expect(kubeconfig.contains("server: \(testbed.kubeEndpoint)"))
        let persisted = root + "/var/lib/nodeboot/cluster-my-cluster.json"
        #expect(try FileManager.default.attributesOfItem(atPath: persisted)[.posixPermissions] as? Int == 0o600)
        #expect(second.report?.files.allSatisfy { $0.action == .unchanged } == true)
    }

    @Test("an IPv6 cluster: the node IP is the primary interface's first IPv6 address, read after its MAC")
    func ipv6NodeIP() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        let config = FileManager.default.temporaryDirectory.appendingPathComponent("c6-\(UUID().uuidString).yaml")
        try Data(NodeFixture.config.replacingOccurrences(of: "cidr: 10.100.0.0/16", with: "cidr: fd00:10:100::/108").utf8)
            .write(to: config)
        let result = await InitBehaviourTests.initRun(
            InitBehaviourTests.options(root: root, sources: [.file(config.path)]), environment: testbed.environment)
        let paths = await testbed.requests().map(\.path)
        try await testbed.shutdown()
        #expect(result.error == nil, "\(String(describing: result.error))")
        let environment = try String(contentsOfFile: root + "/etc/eks/kubelet/environment", encoding: .utf8)
        #expect(environment.contains("--node-ip=2001:db8:8:4::2"), "\(environment)")
        #expect(!paths.contains("/latest/meta-data/local-ipv4"))
    }

    @Test("a config cache with the same spec: no IMDS or EC2 call beyond the user data, nothing rewritten")
    func cacheReuse() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        var options = InitBehaviourTests.options(root: root)
        options.configCache = root + "/run/eks/nodeadm/config.json"
        let first = await InitBehaviourTests.initRun(options, environment: testbed.environment)
        #expect(first.error == nil, "\(String(describing: first.error))")
        let before = await testbed.requests().count
        let second = await InitBehaviourTests.initRun(options, environment: testbed.environment)
        #expect(second.error == nil, "\(String(describing: second.error))")
        let after = await testbed.requests().dropFirst(before)
        try await testbed.shutdown()
        #expect(second.report?.configFromCache == true)
        #expect(after.allSatisfy { $0.path == "/latest/user-data" || $0.action == "GetToken" }, "\(after.map(\.path))")
        #expect(second.report?.files.allSatisfy { $0.action == .unchanged } == true)
    }
}
