public import AWS
import FoundationEssentials
public import NodeConfig
public import NodeRender
import Support
import WireJSON

#if canImport(Glibc)
    import Glibc
#endif

/// What the discover phase found (and what the config cache keeps as `status`).
public struct Discovery: Sendable, Equatable {
    public struct NetworkLimits: Sendable, Equatable {
        public var defaultMaxENIs: Int
        public var ipv4AddressesPerInterface: Int
        /// `table` (embedded), `DescribeInstanceTypes`, or `fallback` (110 pods).
        public var source: String
    }

    /// Cluster details that the config did not give, and where they came from.
    public struct ClusterDetails: Sendable, Equatable {
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
    /// Read only when the FastImagePull gate is on (its threshold is the only use).
    public var onlineMemoryBytes: UInt64?
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
            throw Self.imdsFailure(error, reading: "the instance identity")
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
        if config.spec.featureGates[SOCISnapshotter.gate] == true {
            do {
                discovery.onlineMemoryBytes = try OnlineMemory.bytes(
                    memoryDirectory: environment["MEMORY_DIR"] ?? paths.node(NodePaths.memoryDirectory))
            } catch {
                warnings.append("online memory unknown (\(error)); FastImagePull is off")
            }
        }
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
        } catch is CancellationError {
            throw NodeBootError(.internal, "discovery was cancelled")
        } catch {
            throw Self.failure(error, operation: "EC2 DescribeInstances", otherwise: Self.nameAlternative)
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
            var stored = try? Discovery.ClusterDetails(json: JSONObject(parsing: bytes)),
            stored.name == cluster.name
        {
            stored.source = file
            return stored
        }
        let described: EKSCluster
        do {
            described = try await session.client(region: region).describeCluster(name: cluster.name)
        } catch {
            var failure = Self.failure(
                error, operation: "EKS DescribeCluster",
                otherwise:
                    "give apiServerEndpoint, certificateAuthority and cidr in the NodeConfig (then no DescribeCluster is needed)")
            failure.message = "spec.cluster is missing \(Self.missing(cluster)) and \(failure.message)"
            throw failure
        }
        let details = Discovery.ClusterDetails(
            name: cluster.name, apiServerEndpoint: described.endpoint, certificateAuthority: described.certificateAuthority,
            cidr: described.serviceIPv4CIDR ?? described.serviceIPv6CIDR ?? "", source: "DescribeCluster")
        guard persist else { return details }
        // A cache: a copy that cannot be written costs the next run one DescribeCluster, nothing else.
        try? NodeFileSystem.makeDirectories(paths.node(NodePaths.stateDirectory), mode: 0o700)
        try? NodeFileSystem.writeAtomically(file, Array(details.json.sortedKeys.text.utf8), mode: 0o600)
        return details
    }

    /// An IMDS read that failed after its retries (`--imds-timeout`): the message without the
    /// hint, and a hint for what happened — no answer, an error status through every retry, or
    /// the client's own hint (IMDSv2 refused).
    static func imdsFailure(_ error: any Error, reading what: String) -> NodeBootError {
        let usual = "the instance metadata service must answer at 169.254.169.254 (or AWS_EC2_METADATA_SERVICE_ENDPOINT)"
        guard let error = error as? AWSError else {
            return NodeBootError(.aws, "could not read \(what) from IMDS: \(error)", hint: usual, cause: error)
        }
        let status = error.status ?? 0
        let hint: String =
            switch error.kind {
            case .unreachable:
                "no answer from the instance metadata service at \(error.endpoint) until --imds-timeout (at boot it may still be starting: raise it): "
                    + (error.hint ?? usual)
            case _ where error.hint != nil: error.hint ?? usual
            case .service where status == 429 || status >= 500:
                "the instance metadata service at \(error.endpoint) answered HTTP \(status) through every retry until --imds-timeout: it is unhealthy or throttling this instance (too many IMDS requests on the node); run nodeboot init again"
            default: usual
            }
        return NodeBootError(.aws, "could not read \(what) from IMDS: \(error.summary)", hint: hint, cause: error)
    }

    static let nameAlternative = "set featureGates.InstanceIdNodeName: true to name the node by instance ID instead"

    /// An AWS call of discovery that failed after its retries. The hint follows the failure: the
    /// call's own (a missing permission, throttling, an unreachable endpoint or proxy, an answer
    /// that is not the service's) and then the way around the call, `otherwise`; a permission is
    /// named only when the service said access was denied.
    static func failure(_ error: any Error, operation: String, otherwise: String) -> NodeBootError {
        guard let error = error as? AWSError else {
            return NodeBootError(.aws, "\(operation) failed: \(error)", hint: otherwise, cause: error)
        }
        let hint: String? =
            switch error.kind {
            case .service where error.hint == nil && (error.status ?? 0) >= 500:
                "\(operation) failed on the service's side (HTTP \(error.status ?? 500)) through every retry: try again later, or raise AWS_MAX_ATTEMPTS"
            case .service, .notFound, .unreachable, .noCredentials, .configuration: error.hint
            case .malformedResponse:
                error.hint
                    ?? "the endpoint \(error.endpoint) answered with something that is not \(operation)'s answer: check AWS_ENDPOINT_URL and any proxy in between"
            }
        return NodeBootError(
            .aws, error.summary, hint: [hint, otherwise].compactMap { $0 }.joined(separator: "; or "), cause: error)
    }

    static func missing(_ cluster: NodeConfig.Cluster) -> String {
        [
            cluster.apiServerEndpoint.isEmpty ? "apiServerEndpoint" : nil,
            cluster.certificateAuthority.isEmpty ? "certificateAuthority" : nil, cluster.cidr.isEmpty ? "cidr" : nil,
        ].compactMap { $0 }.joined(separator: ", ")
    }
}

// The config cache's `status` and the persisted DescribeCluster answer, as JSON (members as the
// types declare them; the writers sort them).
extension Discovery {
    var json: JSON {
        let instance: JSON = [
            "id": .string(instance.id), "region": .string(instance.region), "type": .string(instance.type),
            "availabilityZone": .string(instance.availabilityZone), "mac": .string(instance.mac),
            "privateDnsName": .string(instance.privateDnsName), "nodeIP": .string(instance.nodeIP),
        ]
        let limits = networkLimits.map { limits -> JSON in
            [
                "defaultMaxENIs": .int(limits.defaultMaxENIs),
                "ipv4AddressesPerInterface": .int(limits.ipv4AddressesPerInterface), "source": .string(limits.source),
            ]
        }
        return .object(
            [
                .init("instance", instance), .init("kubeletVersion", .string(kubeletVersion)),
                .init("containerdVersion", .string(containerdVersion)),
            ] + JSON.member("networkLimits", limits) + [.init("onlineCPUs", .int(onlineCPUs))]
                + JSON.member("onlineMemoryBytes", onlineMemoryBytes.map { .number(String($0)) })
                + [
                    .init("nvidiaRuntime", .bool(nvidiaRuntime)), .init("nvidiaDevice", .bool(nvidiaDevice)),
                    .init("sandboxImage", .string(sandboxImage)),
                ] + JSON.member("cluster", cluster.map(\.json)) + [.init("warnings", .array(warnings.map(JSON.string)))])
    }

    init(json: JSONObject) throws(JSONShapeError) {
        let instance = try json.object("instance")
        self.instance = InstanceDetails(
            id: try instance.string("id"), region: try instance.string("region"), type: try instance.string("type"),
            availabilityZone: try instance.string("availabilityZone"), mac: try instance.string("mac"),
            privateDnsName: try instance.string("privateDnsName"), nodeIP: try instance.string("nodeIP"))
        kubeletVersion = try json.string("kubeletVersion")
        containerdVersion = try json.string("containerdVersion")
        networkLimits = try json.optionalObject("networkLimits").map { (limits) throws(JSONShapeError) in
            NetworkLimits(
                defaultMaxENIs: try limits.int("defaultMaxENIs"),
                ipv4AddressesPerInterface: try limits.int("ipv4AddressesPerInterface"), source: try limits.string("source"))
        }
        onlineCPUs = try json.int("onlineCPUs")
        onlineMemoryBytes = try json.optionalUInt64("onlineMemoryBytes")
        nvidiaRuntime = try json.bool("nvidiaRuntime")
        nvidiaDevice = try json.bool("nvidiaDevice")
        sandboxImage = try json.string("sandboxImage")
        cluster = try json.optionalObject("cluster").map(ClusterDetails.init(json:))
        warnings = try json.strings("warnings")
    }
}

extension Discovery.ClusterDetails {
    var json: JSON {
        [
            "name": .string(name), "apiServerEndpoint": .string(apiServerEndpoint),
            "certificateAuthority": .string(certificateAuthority), "cidr": .string(cidr), "source": .string(source),
        ]
    }

    init(json: JSONObject) throws(JSONShapeError) {
        name = try json.string("name")
        apiServerEndpoint = try json.string("apiServerEndpoint")
        certificateAuthority = try json.string("certificateAuthority")
        cidr = try json.string("cidr")
        source = try json.string("source")
    }
}
