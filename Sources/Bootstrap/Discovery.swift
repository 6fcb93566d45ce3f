public import AWS
import FoundationEssentials
public import NodeConfig
public import NodeRender
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// What the discover phase found (and what the config cache keeps as `status`).
public struct Discovery: Sendable, Equatable, Codable {
    public struct NetworkLimits: Sendable, Equatable, Codable {
        public var defaultMaxENIs: Int
        public var ipv4AddressesPerInterface: Int
        /// `table` (embedded), `DescribeInstanceTypes`, or `fallback` (110 pods).
        public var source: String
    }

    /// Cluster details that the config did not give, and where they came from.
    public struct ClusterDetails: Sendable, Equatable, Codable {
        public var name: String
        public var apiServerEndpoint: String
        public var certificateAuthority: String
        public var cidr: String
        /// `DescribeCluster` or the persisted file.
        public var source: String
    }

    public var instance: InstanceDetails
    public var kubeletVersion: String
    public var containerdVersion: String
    public var networkLimits: NetworkLimits?
    public var onlineCPUs: Int
    public var nvidiaRuntime: Bool
    public var nvidiaDevice: Bool
    public var sandboxImage = ContainerdConfig.sandboxImage
    public var cluster: ClusterDetails?
    public var warnings: [String] = []

    /// The standard max pods (ENIs × (IPs − 1) + 2), or 110 when the type's limits are unknown.
    public var standardMaxPods: Int {
        networkLimits.map {
            KubeReserved.standardMaxPods(maxENIs: $0.defaultMaxENIs, ipv4PerENI: $0.ipv4AddressesPerInterface)
        } ?? 110
    }
}

/// The discover phase: IMDS, EC2/EKS when needed, version files, sysfs.
public struct Discoverer: Sendable {
    public var paths: NodePaths
    public var session: AWSSession
    public var environment: [String: String]
    /// How long DescribeInstances is retried while PrivateDnsName is empty.
    public var privateDnsNameDeadline: Duration = .seconds(300)
    /// Keep what DescribeCluster said under /var/lib/nodeboot (not in a dry run: it writes nothing).
    public var persist = true

    public init(paths: NodePaths, session: AWSSession, environment: [String: String]) {
        self.paths = paths
        self.session = session
        self.environment = environment
    }

    public func discover(_ config: NodeConfig, daemons: Set<Daemon>) async throws(NodeBootError) -> Discovery {
        let kubeletVersion = try await version(of: "kubelet", file: NodePaths.kubeletVersionFile, pattern: true)
        let containerdVersion = try await version(of: "containerd", file: NodePaths.containerdVersionFile, pattern: false)
        let ipv6 = CIDR(config.spec.cluster.cidr).map { !$0.address.isIPv4 } ?? false
        let imds = session.imds
        let identity: InstanceIdentity
        let mac: String
        let nodeIP: String
        do {
            // The independent reads at once: the identity, the MAC and (IPv4) the node's address.
            async let identityBytes = imds.get("/latest/dynamic/instance-identity/document")
            async let macText = imds.require("/latest/meta-data/mac")
            async let ipv4: String? = ipv6 ? nil : imds.require("/latest/meta-data/local-ipv4")
            identity = try JSONDecoder().decode(InstanceIdentity.self, from: Data(try await identityBytes))
            mac = try await macText
            if let address = try await ipv4 {
                nodeIP = address
            } else {
                let addresses = try await imds.require("/latest/meta-data/network/interfaces/macs/\(mac)/ipv6s")
                nodeIP = addresses.split(whereSeparator: \.isNewline).first.map(String.init) ?? ""
            }
        } catch {
            throw NodeBootError(
                .aws, "could not read the instance identity from IMDS: \(error)",
                hint: "the instance metadata service must answer at \(session.imds.endpoint)", cause: error)
        }
        var warnings: [String] = []
        let region = session.region(identity: identity).region
        var privateDnsName = ""
        if config.spec.featureGates["InstanceIdNodeName"] != true {
            privateDnsName = try await self.privateDnsName(instanceId: identity.instanceId, region: region)
        }
        let limits = await networkLimits(identity.instanceType, region: identity.region, warnings: &warnings)
        let cpus: Int
        do {
            cpus = try OnlineCPUs.count(
                cpuDirectory: environment["CPU_DIR"] ?? paths.node(NodePaths.cpuDirectory),
                nodeDirectory: environment["NODE_DIR"] ?? paths.node(NodePaths.nodeDirectory))
        } catch {
            warnings.append("online CPUs unknown (\(error)); kubeReserved cpu is 0")
            cpus = 0
        }
        var discovery = Discovery(
            instance: InstanceDetails(
                id: identity.instanceId, region: identity.region, type: identity.instanceType,
                availabilityZone: identity.availabilityZone, mac: mac, privateDnsName: privateDnsName, nodeIP: nodeIP),
            kubeletVersion: kubeletVersion, containerdVersion: containerdVersion, networkLimits: limits,
            onlineCPUs: cpus, nvidiaRuntime: NodeFileSystem.exists(paths.node(ContainerdConfig.nvidiaRuntimePath)),
            nvidiaDevice: nvidiaDevicePresent())
        discovery.cluster = try await clusterDetails(config.spec.cluster, region: region)
        discovery.warnings = warnings
        return discovery
    }

    /// The version in `file` (baked into the image), else from running `<name> --version`.
    func version(of name: String, file: String, pattern: Bool) async throws(NodeBootError) -> String {
        var text: String?
        if let bytes = try? NodeFileSystem.read(paths.node(file)) {
            text = String(decoding: bytes, as: UTF8.self)
        } else {
            let binary = paths.node("/usr/bin/\(name)")
            if NodeFileSystem.exists(binary),
                let result = try? await ExternalCommand.run(
                    binary, ["--version"], environment: environment, timeout: .seconds(30)),
                result.status == 0, !result.timedOut
            {
                text = result.combined
            }
        }
        guard let text else {
            throw NodeBootError(
                .io, "the \(name) version is unknown: neither \(paths.node(file)) nor \(name) --version",
                hint: "bake the version into \(file) when building the image ('\(name) --version > \(file)')")
        }
        guard let version = ComponentVersion(parsing: text) else {
            throw NodeBootError(
                .io, "no version (x.y.z) in the \(name) version '\(text.prefix(100))' (\(paths.node(file)))",
                hint: "the file holds the output of '\(name) --version'")
        }
        return pattern ? "v\(version)" : "\(version)"
    }

    /// One DescribeInstances, repeated under the retry policy (jittered backoff from 1 s to
    /// 15 s, `privateDnsNameDeadline` in all) while EC2 reports no PrivateDnsName yet or does not
    /// know the instance yet (eventual consistency).
    func privateDnsName(instanceId: String, region: String) async throws(NodeBootError) -> String {
        let policy = RetryPolicy(
            maxAttempts: .max, baseDelay: .seconds(1), maxBackoff: .seconds(15), deadline: privateDnsNameDeadline,
            attemptTimeout: privateDnsNameDeadline)
        let session = self.session
        let start = ContinuousClock.now
        var lastProblem = ""
        let name: String?
        do {
            name = try await policy.firstValue { _ in
                let client = try await session.client(region: region)
                let instance: EC2Instance
                do {
                    instance = try await client.describeInstance(id: instanceId)
                } catch let error as AWSError where error.code == "InvalidInstanceID.NotFound" {
                    lastProblem = "\(error)"
                    return nil
                }
                guard !instance.privateDnsName.isEmpty else {
                    lastProblem = "EC2 reports no PrivateDnsName for \(instanceId) yet"
                    return nil
                }
                return instance.privateDnsName
            }
        } catch let error as AWSError where error.kind == .service || error.kind == .notFound {
            throw NodeBootError(.aws, "\(error)", hint: error.hint, cause: error)
        } catch is CancellationError {
            throw NodeBootError(.internal, "discovery was cancelled")
        } catch {
            throw NodeBootError(
                .aws, "EC2 DescribeInstances failed: \(error)",
                hint: "the node needs ec2:DescribeInstances, or set featureGates.InstanceIdNodeName: true", cause: error)
        }
        guard let name else {
            throw NodeBootError(
                .aws, "\(lastProblem) after \((ContinuousClock.now - start).components.seconds) s",
                hint: "set featureGates.InstanceIdNodeName: true to name the node by instance ID instead")
        }
        return name
    }

    /// The type's ENI limits: embedded table, else DescribeInstanceTypes, else nil (110 pods).
    func networkLimits(_ type: String, region: String, warnings: inout [String]) async -> Discovery.NetworkLimits? {
        if let limits = InstanceInfoTable.embedded.limits(for: type) {
            return Discovery.NetworkLimits(
                defaultMaxENIs: limits.defaultMaxENIs, ipv4AddressesPerInterface: limits.ipv4AddressesPerInterface,
                source: "table")
        }
        do {
            var client = try await session.client(region: region)
            client.policy.maxAttempts = min(client.policy.maxAttempts, 3)
            client.policy.deadline = min(client.policy.deadline, .seconds(30))
            let info = try await client.describeInstanceType(type)
            return Discovery.NetworkLimits(
                defaultMaxENIs: info.maxENIs, ipv4AddressesPerInterface: info.ipv4AddressesPerInterface,
                source: "DescribeInstanceTypes")
        } catch {
            warnings.append(
                "instance type \(type) is not in the table and DescribeInstanceTypes failed (\(error)); maxPods is 110")
            return nil
        }
    }

    /// `/sys/bus/pci/devices/*/vendor` is 0x10de (NVIDIA).
    func nvidiaDevicePresent() -> Bool {
        let directory = paths.node(NodePaths.pciDevices)
        return (NodeFileSystem.list(directory) ?? []).contains { device in
            guard let bytes = try? NodeFileSystem.read("\(directory)/\(device)/vendor") else { return false }
            return String(decoding: bytes, as: UTF8.self).filter { !$0.isWhitespace } == "0x10de"
        }
    }

    /// Endpoint, CA and service CIDR the config leaves out: from the file persisted by an
    /// earlier run, else one DescribeCluster (throttling retried with jittered backoff within
    /// the API deadline), then persisted.
    func clusterDetails(_ cluster: NodeConfig.Cluster, region: String) async throws(NodeBootError)
        -> Discovery.ClusterDetails?
    {
        guard cluster.apiServerEndpoint.isEmpty || cluster.certificateAuthority.isEmpty || cluster.cidr.isEmpty else {
            return nil
        }
        let file = paths.node("\(NodePaths.stateDirectory)/cluster-\(cluster.name).json")
        if let bytes = try? NodeFileSystem.read(file),
            var stored = try? JSONDecoder().decode(Discovery.ClusterDetails.self, from: Data(bytes)),
            stored.name == cluster.name
        {
            stored.source = file
            return stored
        }
        let described: EKSCluster
        do {
            described = try await session.client(region: region).describeCluster(name: cluster.name)
        } catch {
            throw NodeBootError(
                .aws, "spec.cluster is missing \(Self.missing(cluster)) and EKS DescribeCluster failed: \(error)",
                hint:
                    "give apiServerEndpoint, certificateAuthority and cidr in the NodeConfig, or allow eks:DescribeCluster for the node role",
                cause: error)
        }
        let details = Discovery.ClusterDetails(
            name: cluster.name, apiServerEndpoint: described.endpoint, certificateAuthority: described.certificateAuthority,
            cidr: described.serviceIPv4CIDR ?? described.serviceIPv6CIDR ?? "", source: "DescribeCluster")
        guard persist else { return details }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        // A cache: a copy that cannot be written costs the next run one DescribeCluster, nothing else.
        if let data = try? encoder.encode(details) {
            try? NodeFileSystem.makeDirectories(paths.node(NodePaths.stateDirectory), mode: 0o700)
            try? NodeFileSystem.writeAtomically(file, Array(data), mode: 0o600)
        }
        return details
    }

    static func missing(_ cluster: NodeConfig.Cluster) -> String {
        [
            cluster.apiServerEndpoint.isEmpty ? "apiServerEndpoint" : nil,
            cluster.certificateAuthority.isEmpty ? "certificateAuthority" : nil, cluster.cidr.isEmpty ? "cidr" : nil,
        ].compactMap { $0 }.joined(separator: ", ")
    }
}
