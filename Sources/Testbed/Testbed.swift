public import Foundation
public import Logging
import NIOCore
import NIOPosix
import NIOSSL
public import SigV4
import Synchronization

/// A simulated EC2 instance and AWS on loopback: an IMDSv2 endpoint, one port serving EC2, EKS
/// and STS with SigV4 verification, and a Kubernetes API server (nodes) over HTTPS that takes
/// EKS bearer tokens, with fault injection. Start it, point the agent at ``environment``, and
/// call ``shutdown()`` when done.
///
/// ```swift
/// let testbed = try await Testbed.start()
/// defer { Task { try await testbed.shutdown() } }  // or: try await testbed.shutdown() at the end
/// ```
public final class Testbed: Sendable {
    /// `http://127.0.0.1:PORT` of the IMDS endpoint.
    public let imdsEndpoint: String
    /// `http://127.0.0.1:PORT` of the AWS endpoint (EC2, EKS, STS and `/_testbed/`).
    public let awsEndpoint: String
    /// `https://127.0.0.1:PORT` of the Kubernetes API server (its listener).
    public let kubeEndpoint: String
    /// What DescribeCluster reports unless the cluster's `endpoint` is configured:
    /// `kubeAPI.advertiseEndpoint` (normalised to `https://HOST:PORT`), else ``kubeEndpoint``.
    public let advertisedKubeEndpoint: String
    /// The CA certificate (PEM) that signed the Kubernetes API server's certificate: what a
    /// kubeconfig's `certificate-authority` must hold.
    public let kubeCACertificatePEM: String
    /// The cluster whose tokens the Kubernetes API server accepts (`x-k8s-aws-id`).
    public let kubeClusterName: String
    /// The instance role's credentials, as IMDS hands them out.
    public let roleCredentials: SigV4Credentials
    /// When the role credentials expire.
    public let roleExpiration: Date
    /// The instance's region (from its identity document).
    public let region: String
    public let configuration: TestbedConfiguration

    let core: TestbedCore
    let group: MultiThreadedEventLoopGroup
    let tasks: Mutex<[Task<Void, Never>]>

    /// What points an agent (or the AWS CLI) at this testbed. Region and credentials are left
    /// to IMDS, as on an instance.
    public var environment: [String: String] {
        [
            "AWS_EC2_METADATA_SERVICE_ENDPOINT": imdsEndpoint,
            "AWS_ENDPOINT_URL": awsEndpoint,
        ]
    }

    init(
        imdsEndpoint: String, awsEndpoint: String, core: TestbedCore, group: MultiThreadedEventLoopGroup,
        tasks: [Task<Void, Never>]
    ) {
        self.imdsEndpoint = imdsEndpoint
        self.awsEndpoint = awsEndpoint
        self.kubeEndpoint = core.kubeEndpoint
        self.advertisedKubeEndpoint = core.advertisedKubeEndpoint
        self.kubeCACertificatePEM = core.kubeCAPEM
        self.kubeClusterName = core.kubeClusterName
        self.roleCredentials = core.role.credentials
        self.roleExpiration = core.role.expiration
        self.region = core.instance.region
        self.configuration = core.configuration
        self.core = core
        self.group = group
        self.tasks = Mutex(tasks)
    }

    /// Binds the listeners (port 0 = ephemeral) and starts serving. A listener with a late
    /// start has its port reserved now and opens after the configured delay. The Kubernetes API
    /// server's CA is generated now, or loaded from `kubeAPI.caCertificateFile`/`caKeyFile`.
    public static func start(
        _ configuration: TestbedConfiguration = .default,
        host: String = "127.0.0.1",
        imdsPort: Int = 0,
        awsPort: Int = 0,
        kubePort: Int = 0,
        logger: Logger = Logger(label: "nodeboot.testbed", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws -> Testbed {
        let problems = configuration.validationErrors()
        guard problems.isEmpty else {
            throw TestbedError(.configuration, "testbed configuration: " + problems.joined(separator: "; "))
        }
        let aemm = try configuration.instance.resolve()
        let role = makeRoleCredentials(configuration.role, now: Date())
        let instance = InstanceModel(
            aemm: aemm, role: configuration.role, credentials: role, privateDNSName: configuration.privateDnsName,
            extraInterfaces: configuration.networkInterfaces)
        let tls: KubeTLS
        do {
            tls = try KubeTLS.make(configuration.kubeAPI, host: host, now: Date())
        } catch let error as TestbedError {
            throw error
        } catch {
            throw TestbedError(.configuration, "testbed kube API: cannot make its TLS certificate", cause: error)
        }
        let network = try NetworkModel(
            instance: instance, network: configuration.network,
            instanceTypes: InstanceTypes.table(configuration.instanceTypes), now: Date())
        let fleet = Fleet(
            configuration.fleet, aemm: aemm, role: configuration.role, privateDnsName: configuration.privateDnsName,
            now: Date())
        let core = TestbedCore(
            configuration: configuration, instance: instance, role: role, kubeCAPEM: tls.caPEM, network: network,
            logger: logger, fleet: fleet)

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        var tasks: [Task<Void, Never>] = []
        do {
            let imds = try await listen(
                "imds", group: group, host: host, port: imdsPort, delay: configuration.lateStart.imdsSeconds,
                logger: logger, handler: { await core.handleIMDS($0) })
            tasks.append(imds.task)
            let kube = try await listen(
                "kube", group: group, host: host, port: kubePort, delay: configuration.lateStart.kubeSeconds,
                logger: logger, tls: tls.context, handler: { await core.handleKube($0) })
            tasks.append(kube.task)
            core.kubeAddressBox.withLock { $0 = hostPort(host: host, port: kube.port) }
            let aws = try await listen(
                "aws", group: group, host: host, port: awsPort, delay: configuration.lateStart.awsSeconds,
                logger: logger, handler: { await core.handleAWS($0) })
            tasks.append(aws.task)
            let testbed = Testbed(
                imdsEndpoint: url(host: host, port: imds.port), awsEndpoint: url(host: host, port: aws.port),
                core: core, group: group, tasks: tasks)
            logger.info(
                "testbed started: imds \(testbed.imdsEndpoint), aws \(testbed.awsEndpoint), kube \(testbed.kubeEndpoint) (cluster \(testbed.kubeClusterName))"
            )
            return testbed
        } catch {
            for task in tasks { task.cancel() }
            for task in tasks { await task.value }
            try? await group.shutdownGracefully()  // already failing with the bind error; that one matters
            throw error
        }
    }

    /// Replaces the fault rules (each rule's `count` starts afresh).
    public func setFaults(_ rules: [FaultRule]) async {
        core.setFaults(rules)
    }

    /// The fault rules in force.
    public func faults() async -> [FaultRule] {
        core.faults()
    }

    /// Invalidates every IMDS token issued so far: requests with them get 401.
    public func expireIMDSTokens() async {
        core.expireTokens()
    }

    /// Every request answered so far (control calls excepted), oldest first.
    public func requests() async -> [RecordedRequest] {
        core.records()
    }

    /// Forgets the recorded requests.
    public func clearRequests() async {
        core.clearRecords()
    }

    /// The Kubernetes API server's nodes, sorted by name, as it stores them.
    package func nodes() async -> [JSONValue] {
        core.kubeStore.nodes()
    }

    /// Sets a node's `Ready` condition to `True`, as its kubelet would (watches see MODIFIED).
    /// Throws `TestbedError` with code `notFound` when there is no such node.
    public func setNodeReady(name: String) async throws {
        guard core.markNodeReady(name, now: Date()) != nil else {
            throw TestbedError(
                .notFound, "testbed kube API: no node named '\(name)'", hint: "create the node first (POST /api/v1/nodes)")
        }
    }

    /// Ends every watch (cleanly, waiting at most 2 s for their last bytes), closes the listeners
    /// and every open connection (blackholed ones included) and stops the event loop. Safe to
    /// call twice.
    public func shutdown() async throws {
        let running = tasks.withLock { tasks in
            defer { tasks.removeAll() }
            return tasks
        }
        guard !running.isEmpty else { return }
        await core.endWatches(timeout: .seconds(2))
        for task in running { task.cancel() }
        for task in running { await task.value }
        try await group.shutdownGracefully()
    }

    // MARK: Internals

    static func url(host: String, port: Int) -> String {
        "http://" + hostPort(host: host, port: port)
    }

    static func hostPort(host: String, port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    /// Binds a listener now (or reserves its port and binds after `delay` seconds) and returns
    /// the task serving it.
    static func listen(
        _ name: String, group: MultiThreadedEventLoopGroup, host: String, port: Int, delay: Double, logger: Logger,
        tls: NIOSSLContext? = nil, handler: @escaping HTTPHandler
    ) async throws -> (port: Int, task: Task<Void, Never>) {
        if delay > 0 {
            return try lateListen(
                name, group: group, host: host, port: port, delay: delay, logger: logger, tls: tls, handler: handler)
        }
        let server: HTTPServerChannel
        do {
            server = try await HTTPServer.bind(group: group, host: host, port: port, tls: tls)
        } catch {
            throw TestbedError(
                .bind, "testbed \(name) endpoint: cannot listen on \(host):\(port): \(error)",
                hint: "choose another port, or 0 for an ephemeral one")
        }
        guard let boundPort = server.channel.localAddress?.port else {
            try? await server.channel.close()  // failing anyway; the listener has no address
            throw TestbedError(.bind, "testbed \(name) endpoint: the listener on \(host) has no port")
        }
        return (boundPort, Task { await HTTPServer.serve(server, handler: handler) })
    }

    /// Late start: the port is held by a socket that does not listen (connections are refused,
    /// nobody else can take it) until the listener binds it after `delay` seconds.
    static func lateListen(
        _ name: String, group: MultiThreadedEventLoopGroup, host: String, port: Int, delay: Double, logger: Logger,
        tls: NIOSSLContext?, handler: @escaping HTTPHandler
    ) throws -> (port: Int, task: Task<Void, Never>) {
        let reservation: PortReservation
        do {
            reservation = try PortReservation(host: host, port: port)
        } catch {
            throw TestbedError(
                .bind, "testbed \(name) endpoint: cannot reserve \(host):\(port): \(error)",
                hint: "choose another port, or 0 for an ephemeral one")
        }
        let boundPort = reservation.port
        logger.info("testbed \(name) endpoint: late start, port \(boundPort) opens in \(delay)s")
        let task = Task {
            defer { reservation.release() }
            do {
                try await Task.sleep(for: .milliseconds(Int(delay * 1000)))
            } catch {
                return  // shut down before the listener opened
            }
            reservation.release()
            do {
                let late = try await HTTPServer.bind(group: group, host: host, port: boundPort, tls: tls)
                logger.info("testbed \(name) endpoint: listening on port \(boundPort) (late start)")
                await HTTPServer.serve(late, handler: handler)
            } catch {
                logger.error("testbed \(name) endpoint: late start cannot listen on \(host):\(boundPort): \(error)")
            }
        }
        return (boundPort, task)
    }

    static func makeRoleCredentials(_ role: TestbedConfiguration.Role, now: Date) -> RoleCredentials {
        let expiration =
            role.expiration.flatMap(ISO8601.parse) ?? now.addingTimeInterval(TimeInterval(role.expiresInSeconds))
        let credentials: SigV4Credentials
        if let accessKeyID = role.accessKeyId, let secret = role.secretAccessKey {
            credentials = SigV4Credentials(
                accessKeyID: accessKeyID, secretAccessKey: secret, sessionToken: role.sessionToken)
        } else {
            credentials = SigV4Credentials(
                accessKeyID: "ASIA" + random(16, from: "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"),
                secretAccessKey: random(40, from: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"),
                sessionToken: role.sessionToken ?? ("IQoJb3JpZ2luX2Vj" + random(300, from: base64Alphabet)))
        }
        // IMDS times have whole seconds.
        let lastUpdated = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        return RoleCredentials(credentials: credentials, lastUpdated: lastUpdated, expiration: expiration)
    }

    static let base64Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    static func random(_ count: Int, from alphabet: String) -> String {
        let characters = Array(alphabet)
        var generator = SystemRandomNumberGenerator()
        return String((0..<count).map { _ in characters[Int.random(in: 0..<characters.count, using: &generator)] })
    }
}

// MARK: - Fleet and rate limits

extension Testbed {
    /// The fleet's instances (`fleet.count` of them; empty by default).
    public var fleet: [FleetInstance] { core.fleet.members.map(\.info) }

    /// What points agent `instance` of the fleet at this testbed: its IMDS under its prefix.
    public func environment(for instance: FleetInstance) -> [String: String] {
        ["AWS_EC2_METADATA_SERVICE_ENDPOINT": imdsEndpoint + instance.imdsPathPrefix, "AWS_ENDPOINT_URL": awsEndpoint]
    }

    /// Replaces the rate limits; every bucket starts full again and the counts from zero.
    public func setRateLimits(_ limits: RateLimits) async {
        core.rateLimiter.set(limits)
    }

    /// The rate limits in force.
    public func rateLimits() async -> RateLimits {
        core.rateLimiter.limits
    }
}
