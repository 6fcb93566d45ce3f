import Foundation

/// What the testbed simulates. Every field is optional in the JSON file; absent fields keep
/// the defaults below (the instance of nodeadm's E2E tests, cluster `my-cluster`).
///
/// ```json
/// {
///   "instance": "aemm.json",                // or an inline object; aemm's config format
///   "privateDnsName": "ip-172-16-34-43.us-west-2.compute.internal",
///   "clusters": [{"name": "my-cluster",               // endpoint, certificateAuthority: the testbed's API server
///                 "serviceIpv4Cidr": "10.100.0.0/16", "serviceIpv6Cidr": null,
///                 "version": "1.31", "platformVersion": "eks.1", "status": "ACTIVE"}],
///   "role": {"name": "baskinc-role", "accessKeyId": "ASIA…", "secretAccessKey": "…",
///            "sessionToken": "…", "expiration": "2030-01-01T00:00:00Z", "expiresInSeconds": 21600},
///   "staticKeys": [{"accessKeyId": "testing", "secretAccessKey": "testing"}],
///   "instanceTypes": [{"instanceType": "m4.xlarge", "maximumNetworkInterfaces": 4,
///                      "ipv4AddressesPerInterface": 15}],
///   "networkInterfaces": [{"mac": "0e:49:61:0f:c3:12", "deviceNumber": 1, "localIpv4s": ["172.16.34.50"]}],
///   "network": {"vpc": {"id": "vpc-d295a6a7", "cidrs": ["192.0.2.0/24"]},
///               "subnets": [{"id": "subnet-0ac62554", "cidr": "192.0.2.0/27"}],
///               "imdsLagMs": 0, "detachLagMs": 0},
///   "imdsTokenMaxTtlSeconds": 21600,
///   "faults": [{"endpoint": "ec2", "action": "DescribeInstances", "throttle": true, "count": 1}],
///   "lateStart": {"imdsSeconds": 0, "awsSeconds": 0, "kubeSeconds": 0},
///   "kubeAPI": {"clusterName": "my-cluster", "caCertificateFile": "ca.crt", "caKeyFile": "ca.key",
///               "users": [{"accessKeyId": "AKIA…", "username": "alice", "groups": ["system:masters"]}],
///               "defaultMappings": true, "advertiseEndpoint": "https://169.254.0.30:443"}
/// }
/// ```
///
/// - `instance`: the EC2 instance, in amazon-ec2-metadata-mock's config format (`imdsv2`,
///   `metadata.paths`, `metadata.values`, `dynamic.values.instance-identity-document`,
///   `userdata.values.userdata`), as a path (relative to the configuration file) or inline.
///   Keys it does not set keep aemm's built-in defaults. Default: nodeadm's E2E instance.
/// - `privateDnsName`: what DescribeInstances returns as `privateDnsName`.
/// - `clusters`: the clusters DescribeCluster knows.
/// - `role`: the instance role IMDS hands out; credentials are random unless given.
/// - `staticKeys`: further access keys the AWS endpoint accepts (no session token).
/// - `instanceTypes`: added to the embedded DescribeInstanceTypes table (same name replaces).
/// - `networkInterfaces`: ENIs besides the primary one (IMDS `macs/` and DescribeInstances).
/// - `network`: the VPC and subnets EC2's ENI API works in, and its lags (see ``Network``).
/// - `imdsTokenMaxTtlSeconds`: the largest token TTL IMDS grants (1…21600).
/// - `faults`: fault rules active from the start (see ``FaultRule``).
/// - `lateStart`: seconds before the IMDS, AWS or kube listener opens; until then connections are refused.
/// - `kubeAPI`: the Kubernetes API server (see ``KubeAPI``).
/// - `fleet`: further instances for many agents at once (see ``FleetConfiguration``).
/// - `rateLimits`: AWS-like token buckets for EC2, EKS and STS (see ``RateLimits``); off by default.
public struct TestbedConfiguration: Codable, Sendable {
    public var instance: InstanceSource
    public var privateDnsName: String
    public var clusters: [Cluster]
    public var role: Role
    public var staticKeys: [StaticKey]
    public var instanceTypes: [InstanceType]
    public var networkInterfaces: [NetworkInterface]
    public var network: Network
    public var imdsTokenMaxTtlSeconds: Int
    public var faults: [FaultRule]
    public var lateStart: LateStart
    public var kubeAPI: KubeAPI
    public var fleet: FleetConfiguration
    public var rateLimits: RateLimits

    public init(
        instance: InstanceSource = .bundled,
        privateDnsName: String = "ip-172-16-34-43.us-west-2.compute.internal",
        clusters: [Cluster] = [Cluster()],
        role: Role = Role(),
        staticKeys: [StaticKey] = [StaticKey(accessKeyId: "testing", secretAccessKey: "testing")],
        instanceTypes: [InstanceType] = [],
        networkInterfaces: [NetworkInterface] = [],
        network: Network = Network(),
        imdsTokenMaxTtlSeconds: Int = 21600,
        faults: [FaultRule] = [],
        lateStart: LateStart = LateStart(),
        kubeAPI: KubeAPI = KubeAPI(),
        fleet: FleetConfiguration = FleetConfiguration(),
        rateLimits: RateLimits = RateLimits()
    ) {
        self.instance = instance
        self.privateDnsName = privateDnsName
        self.clusters = clusters
        self.role = role
        self.staticKeys = staticKeys
        self.instanceTypes = instanceTypes
        self.networkInterfaces = networkInterfaces
        self.network = network
        self.imdsTokenMaxTtlSeconds = imdsTokenMaxTtlSeconds
        self.faults = faults
        self.lateStart = lateStart
        self.kubeAPI = kubeAPI
        self.fleet = fleet
        self.rateLimits = rateLimits
    }

    /// nodeadm's E2E instance (`i-1234567890abcdef0`, m4.xlarge, us-west-2) and cluster `my-cluster`.
    public static var `default`: Self { TestbedConfiguration() }

    /// The bundled instance (nodeadm's E2E `aemm-default-config.json`), as JSON text.
    public static var bundledInstanceJSON: String { BundledInstance.json }

    /// nodeadm's E2E instance and cluster, with `userData` as the instance's user data (as given).
    public static func bundled(userData: String) throws -> Self {
        var aemm = try AEMMConfig.bundled()
        aemm.userdata = AEMMConfig.Section(paths: aemm.userdata?.paths, values: ["userdata": .string(userData)])
        return TestbedConfiguration(instance: .inline(aemm))
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case instance, privateDnsName, clusters, role, staticKeys, instanceTypes, networkInterfaces, network
        case imdsTokenMaxTtlSeconds, faults, lateStart, kubeAPI, fleet, rateLimits
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TestbedConfiguration()
        instance = try c.decodeIfPresent(InstanceSource.self, forKey: .instance) ?? d.instance
        privateDnsName = try c.decodeIfPresent(String.self, forKey: .privateDnsName) ?? d.privateDnsName
        clusters = try c.decodeIfPresent([Cluster].self, forKey: .clusters) ?? d.clusters
        role = try c.decodeIfPresent(Role.self, forKey: .role) ?? d.role
        staticKeys = try c.decodeIfPresent([StaticKey].self, forKey: .staticKeys) ?? d.staticKeys
        instanceTypes = try c.decodeIfPresent([InstanceType].self, forKey: .instanceTypes) ?? d.instanceTypes
        networkInterfaces =
            try c.decodeIfPresent([NetworkInterface].self, forKey: .networkInterfaces) ?? d.networkInterfaces
        network = try c.decodeIfPresent(Network.self, forKey: .network) ?? d.network
        imdsTokenMaxTtlSeconds =
            try c.decodeIfPresent(Int.self, forKey: .imdsTokenMaxTtlSeconds) ?? d.imdsTokenMaxTtlSeconds
        faults = try c.decodeIfPresent([FaultRule].self, forKey: .faults) ?? d.faults
        lateStart = try c.decodeIfPresent(LateStart.self, forKey: .lateStart) ?? d.lateStart
        kubeAPI = try c.decodeIfPresent(KubeAPI.self, forKey: .kubeAPI) ?? d.kubeAPI
        fleet = try c.decodeIfPresent(FleetConfiguration.self, forKey: .fleet) ?? d.fleet
        rateLimits = try c.decodeIfPresent(RateLimits.self, forKey: .rateLimits) ?? d.rateLimits
    }

    // MARK: Loading

    /// Reads a configuration file, resolves `instance` (a path is read relative to the file)
    /// and validates it. Errors name the file and the field.
    public static func load(from path: String) throws -> Self {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TestbedError(
                .configuration, "testbed config \(path): cannot be read: \(error.localizedDescription)")
        }
        var configuration: Self
        do {
            configuration = try JSONDecoder().decode(Self.self, from: data)
        } catch let error as DecodingError {
            throw TestbedError(.configuration, "testbed config \(path): \(describe(error))")
        } catch {
            throw TestbedError(.configuration, "testbed config \(path): \(error)")
        }
        if case .file(let instancePath) = configuration.instance {
            let base = URL(fileURLWithPath: path).deletingLastPathComponent()
            let resolved =
                instancePath.hasPrefix("/") ? instancePath : base.appendingPathComponent(instancePath).path
            configuration.instance = .inline(try AEMMConfig.load(from: resolved, field: "\(path): field 'instance'"))
        }
        // The CA files, like the instance, are relative to the configuration file.
        let base = URL(fileURLWithPath: path).deletingLastPathComponent()
        func resolve(_ file: String?) -> String? {
            guard let file, !file.hasPrefix("/") else { return file }
            return base.appendingPathComponent(file).path
        }
        configuration.kubeAPI.caCertificateFile = resolve(configuration.kubeAPI.caCertificateFile)
        configuration.kubeAPI.caKeyFile = resolve(configuration.kubeAPI.caKeyFile)
        let problems = configuration.validationErrors()
        if !problems.isEmpty {
            throw TestbedError(
                .configuration, "testbed config \(path): " + problems.joined(separator: "; "),
                hint: "see docs/testbed.md for the fields")
        }
        return configuration
    }

    /// Problems in field order, each naming the field (`clusters[0].serviceIpv4Cidr: …`).
    public func validationErrors() -> [String] {
        var problems: [String] = []
        if !(1...21600).contains(imdsTokenMaxTtlSeconds) {
            problems.append("imdsTokenMaxTtlSeconds: \(imdsTokenMaxTtlSeconds) is not between 1 and 21600")
        }
        for (i, cluster) in clusters.enumerated() {
            if cluster.name.isEmpty { problems.append("clusters[\(i)].name: must not be empty") }
            if let cidr = cluster.serviceIpv4Cidr, !CIDR.isIPv4(cidr) {
                problems.append("clusters[\(i)].serviceIpv4Cidr: '\(cidr)' is not an IPv4 CIDR block")
            }
            if let cidr = cluster.serviceIpv6Cidr, !CIDR.isIPv6(cidr) {
                problems.append("clusters[\(i)].serviceIpv6Cidr: '\(cidr)' is not an IPv6 CIDR block")
            }
            if let ca = cluster.certificateAuthority, Data(base64Encoded: ca) == nil {
                problems.append("clusters[\(i)].certificateAuthority: not base64")
            }
        }
        if role.name.isEmpty { problems.append("role.name: must not be empty") }
        if (role.accessKeyId == nil) != (role.secretAccessKey == nil) {
            problems.append("role: give both accessKeyId and secretAccessKey, or neither")
        }
        if let expiration = role.expiration, ISO8601.parse(expiration) == nil {
            problems.append("role.expiration: '\(expiration)' is not an ISO 8601 time such as 2030-01-01T00:00:00Z")
        }
        for (i, key) in staticKeys.enumerated() where key.accessKeyId.isEmpty || key.secretAccessKey.isEmpty {
            problems.append("staticKeys[\(i)]: accessKeyId and secretAccessKey must not be empty")
        }
        for (i, type) in instanceTypes.enumerated() {
            if type.maximumNetworkInterfaces < 1 {
                problems.append("instanceTypes[\(i)].maximumNetworkInterfaces: must be at least 1")
            }
        }
        for (i, eni) in networkInterfaces.enumerated() where !MAC.isValid(eni.mac) {
            problems.append("networkInterfaces[\(i)].mac: '\(eni.mac)' is not a MAC address")
        }
        problems += network.validationErrors()
        for (i, rule) in faults.enumerated() {
            problems += rule.validationErrors(at: "faults[\(i)]")
        }
        if lateStart.imdsSeconds < 0 { problems.append("lateStart.imdsSeconds: must not be negative") }
        if lateStart.awsSeconds < 0 { problems.append("lateStart.awsSeconds: must not be negative") }
        if lateStart.kubeSeconds < 0 { problems.append("lateStart.kubeSeconds: must not be negative") }
        problems += kubeAPI.validationErrors()
        problems += fleet.validationErrors()
        problems += rateLimits.validationErrors()
        return problems
    }
}

// MARK: - Parts

extension TestbedConfiguration {
    /// Where the instance description (aemm's config format) comes from.
    public enum InstanceSource: Codable, Sendable {
        /// nodeadm's E2E `aemm-default-config.json`.
        case bundled
        /// A file in aemm's config format; read by ``TestbedConfiguration/load(from:)``.
        case file(String)
        /// An aemm config object.
        case inline(AEMMConfig)

        public init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            if let path = try? container.decode(String.self) {  // not a string: it is an inline object
                self = .file(path)
            } else {
                self = .inline(try container.decode(AEMMConfig.self))
            }
        }

        public func encode(to encoder: any Encoder) throws {
            var container = encoder.singleValueContainer()
            switch self {
            case .bundled: try container.encodeNil()
            case .file(let path): try container.encode(path)
            case .inline(let config): try container.encode(config)
            }
        }

        /// The aemm config this source describes.
        func resolve() throws -> AEMMConfig {
            switch self {
            case .bundled: return try AEMMConfig.bundled()
            case .file(let path): return try AEMMConfig.load(from: path, field: "instance")
            case .inline(let config): return config
            }
        }
    }

    /// An EKS cluster as DescribeCluster returns it.
    public struct Cluster: Codable, Sendable, Equatable {
        public var name: String = "my-cluster"
        /// The API server URL DescribeCluster reports; nil = the testbed's own (``Testbed/kubeEndpoint``).
        public var endpoint: String? = nil
        /// Base64 of the cluster CA bundle (PEM), as `certificateAuthority.data`; nil = the testbed's
        /// own CA (``Testbed/kubeCACertificatePEM``).
        public var certificateAuthority: String? = nil
        public var serviceIpv4Cidr: String? = "10.100.0.0/16"
        public var serviceIpv6Cidr: String? = nil
        /// `ipv4` or `ipv6`; absent = `ipv6` when `serviceIpv6Cidr` is set, else `ipv4`.
        public var ipFamily: String? = nil
        public var status: String = "ACTIVE"
        public var version: String = "1.31"
        public var platformVersion: String = "eks.1"
        public var roleArn: String? = nil
        public var vpcId: String? = nil
        public var subnetIds: [String]? = nil
        public var securityGroupIds: [String]? = nil
        public var clusterSecurityGroupId: String? = nil
        public var tags: [String: String] = [:]

        public init(
            name: String = "my-cluster", endpoint: String? = nil,
            certificateAuthority: String? = nil, serviceIpv4Cidr: String? = "10.100.0.0/16",
            serviceIpv6Cidr: String? = nil, status: String = "ACTIVE", version: String = "1.31",
            platformVersion: String = "eks.1"
        ) {
            self.name = name
            self.endpoint = endpoint
            self.certificateAuthority = certificateAuthority
            self.serviceIpv4Cidr = serviceIpv4Cidr
            self.serviceIpv6Cidr = serviceIpv6Cidr
            self.status = status
            self.version = version
            self.platformVersion = platformVersion
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, endpoint, certificateAuthority, serviceIpv4Cidr, serviceIpv6Cidr, ipFamily, status, version
            case platformVersion, roleArn, vpcId, subnetIds, securityGroupIds, clusterSecurityGroupId, tags
        }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let d = Cluster()
            name = try c.decodeIfPresent(String.self, forKey: .name) ?? d.name
            endpoint = try c.decodeIfPresent(String.self, forKey: .endpoint)
            certificateAuthority = try c.decodeIfPresent(String.self, forKey: .certificateAuthority)
            serviceIpv4Cidr =
                c.contains(.serviceIpv4Cidr)
                ? try c.decodeIfPresent(String.self, forKey: .serviceIpv4Cidr) : d.serviceIpv4Cidr
            serviceIpv6Cidr = try c.decodeIfPresent(String.self, forKey: .serviceIpv6Cidr)
            ipFamily = try c.decodeIfPresent(String.self, forKey: .ipFamily)
            status = try c.decodeIfPresent(String.self, forKey: .status) ?? d.status
            version = try c.decodeIfPresent(String.self, forKey: .version) ?? d.version
            platformVersion = try c.decodeIfPresent(String.self, forKey: .platformVersion) ?? d.platformVersion
            roleArn = try c.decodeIfPresent(String.self, forKey: .roleArn)
            vpcId = try c.decodeIfPresent(String.self, forKey: .vpcId)
            subnetIds = try c.decodeIfPresent([String].self, forKey: .subnetIds)
            securityGroupIds = try c.decodeIfPresent([String].self, forKey: .securityGroupIds)
            clusterSecurityGroupId = try c.decodeIfPresent(String.self, forKey: .clusterSecurityGroupId)
            tags = try c.decodeIfPresent([String: String].self, forKey: .tags) ?? [:]
        }
    }

    /// The instance role. Credentials are generated at start unless `accessKeyId` and
    /// `secretAccessKey` are given.
    public struct Role: Codable, Sendable, Equatable {
        /// The role name IMDS lists under `iam/security-credentials/` (aemm's is `baskinc-role`).
        public var name: String = "baskinc-role"
        public var accessKeyId: String? = nil
        public var secretAccessKey: String? = nil
        public var sessionToken: String? = nil
        /// ISO 8601 (`2030-01-01T00:00:00Z`); wins over `expiresInSeconds`.
        public var expiration: String? = nil
        /// Lifetime counted from the start of the testbed.
        public var expiresInSeconds: Int = 21600

        public init(
            name: String = "baskinc-role", accessKeyId: String? = nil, secretAccessKey: String? = nil,
            sessionToken: String? = nil, expiration: String? = nil, expiresInSeconds: Int = 21600
        ) {
            self.name = name
            self.accessKeyId = accessKeyId
            self.secretAccessKey = secretAccessKey
            self.sessionToken = sessionToken
            self.expiration = expiration
            self.expiresInSeconds = expiresInSeconds
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case name, accessKeyId, secretAccessKey, sessionToken, expiration, expiresInSeconds
        }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            name = try c.decodeIfPresent(String.self, forKey: .name) ?? "baskinc-role"
            accessKeyId = try c.decodeIfPresent(String.self, forKey: .accessKeyId)
            secretAccessKey = try c.decodeIfPresent(String.self, forKey: .secretAccessKey)
            sessionToken = try c.decodeIfPresent(String.self, forKey: .sessionToken)
            expiration = try c.decodeIfPresent(String.self, forKey: .expiration)
            expiresInSeconds = try c.decodeIfPresent(Int.self, forKey: .expiresInSeconds) ?? 21600
        }
    }

    /// A long-term access key (an IAM user's), accepted without a session token.
    public struct StaticKey: Codable, Sendable, Equatable {
        public var accessKeyId: String
        public var secretAccessKey: String
        /// The IAM user name GetCallerIdentity reports; absent = the access key id.
        public var userName: String?

        public init(accessKeyId: String, secretAccessKey: String, userName: String? = nil) {
            self.accessKeyId = accessKeyId
            self.secretAccessKey = secretAccessKey
            self.userName = userName
        }
    }

    /// One row of DescribeInstanceTypes' `networkInfo`.
    public struct InstanceType: Codable, Sendable, Equatable {
        public var instanceType: String
        /// Interfaces on the default network card (nodeadm's `defaultMaxENIs`).
        public var maximumNetworkInterfaces: Int
        public var ipv4AddressesPerInterface: Int
        public var ipv6AddressesPerInterface: Int?
        /// Absent = one card (index 0) with `maximumNetworkInterfaces`.
        public var networkCards: [NetworkCard]?
        public var defaultNetworkCardIndex: Int?
        public var vcpus: Int?
        public var memoryMiB: Int?
        public var architecture: String?
        public var hypervisor: String?

        public struct NetworkCard: Codable, Sendable, Equatable {
            public var networkCardIndex: Int
            public var maximumNetworkInterfaces: Int

            public init(networkCardIndex: Int, maximumNetworkInterfaces: Int) {
                self.networkCardIndex = networkCardIndex
                self.maximumNetworkInterfaces = maximumNetworkInterfaces
            }
        }

        public init(
            instanceType: String, maximumNetworkInterfaces: Int, ipv4AddressesPerInterface: Int,
            ipv6AddressesPerInterface: Int? = nil, networkCards: [NetworkCard]? = nil,
            defaultNetworkCardIndex: Int? = nil, vcpus: Int? = nil, memoryMiB: Int? = nil,
            architecture: String? = nil, hypervisor: String? = nil
        ) {
            self.instanceType = instanceType
            self.maximumNetworkInterfaces = maximumNetworkInterfaces
            self.ipv4AddressesPerInterface = ipv4AddressesPerInterface
            self.ipv6AddressesPerInterface = ipv6AddressesPerInterface
            self.networkCards = networkCards
            self.defaultNetworkCardIndex = defaultNetworkCardIndex
            self.vcpus = vcpus
            self.memoryMiB = memoryMiB
            self.architecture = architecture
            self.hypervisor = hypervisor
        }
    }

    /// An ENI besides the primary one (whose facts come from `instance`).
    public struct NetworkInterface: Codable, Sendable, Equatable {
        public var mac: String
        public var deviceNumber: Int
        public var networkCard: Int
        public var interfaceId: String?
        public var localIpv4s: [String]
        public var ipv6s: [String]
        public var subnetId: String?
        public var subnetIpv4CidrBlock: String?
        public var vpcId: String?
        public var vpcIpv4CidrBlocks: [String]?

        public init(
            mac: String, deviceNumber: Int, networkCard: Int = 0, interfaceId: String? = nil,
            localIpv4s: [String] = [], ipv6s: [String] = [], subnetId: String? = nil,
            subnetIpv4CidrBlock: String? = nil, vpcId: String? = nil, vpcIpv4CidrBlocks: [String]? = nil
        ) {
            self.mac = mac
            self.deviceNumber = deviceNumber
            self.networkCard = networkCard
            self.interfaceId = interfaceId
            self.localIpv4s = localIpv4s
            self.ipv6s = ipv6s
            self.subnetId = subnetId
            self.subnetIpv4CidrBlock = subnetIpv4CidrBlock
            self.vpcId = vpcId
            self.vpcIpv4CidrBlocks = vpcIpv4CidrBlocks
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case mac, deviceNumber, networkCard, interfaceId, localIpv4s, ipv6s, subnetId, subnetIpv4CidrBlock
            case vpcId, vpcIpv4CidrBlocks
        }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            mac = try c.decode(String.self, forKey: .mac)
            deviceNumber = try c.decode(Int.self, forKey: .deviceNumber)
            networkCard = try c.decodeIfPresent(Int.self, forKey: .networkCard) ?? 0
            interfaceId = try c.decodeIfPresent(String.self, forKey: .interfaceId)
            localIpv4s = try c.decodeIfPresent([String].self, forKey: .localIpv4s) ?? []
            ipv6s = try c.decodeIfPresent([String].self, forKey: .ipv6s) ?? []
            subnetId = try c.decodeIfPresent(String.self, forKey: .subnetId)
            subnetIpv4CidrBlock = try c.decodeIfPresent(String.self, forKey: .subnetIpv4CidrBlock)
            vpcId = try c.decodeIfPresent(String.self, forKey: .vpcId)
            vpcIpv4CidrBlocks = try c.decodeIfPresent([String].self, forKey: .vpcIpv4CidrBlocks)
        }
    }

    /// Seconds after start before a listener opens. The port is reserved at start, so the
    /// endpoint URL is known; connections before then are refused.
    public struct LateStart: Codable, Sendable, Equatable {
        public var imdsSeconds: Double = 0
        public var awsSeconds: Double = 0
        public var kubeSeconds: Double = 0

        public init(imdsSeconds: Double = 0, awsSeconds: Double = 0, kubeSeconds: Double = 0) {
            self.imdsSeconds = imdsSeconds
            self.awsSeconds = awsSeconds
            self.kubeSeconds = kubeSeconds
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case imdsSeconds, awsSeconds, kubeSeconds }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            imdsSeconds = try c.decodeIfPresent(Double.self, forKey: .imdsSeconds) ?? 0
            awsSeconds = try c.decodeIfPresent(Double.self, forKey: .awsSeconds) ?? 0
            kubeSeconds = try c.decodeIfPresent(Double.self, forKey: .kubeSeconds) ?? 0
        }
    }

    /// The Kubernetes API server (nodes only) and how it authenticates `k8s-aws-v1` tokens.
    ///
    /// - `clusterName`: the cluster whose tokens it accepts (the `x-k8s-aws-id` it signs with);
    ///   absent = the first of `clusters` (`my-cluster`).
    /// - `caCertificateFile`, `caKeyFile`: a CA (PEM certificate and its private key) that signs
    ///   the server certificate; relative paths are relative to the configuration file. Absent =
    ///   a P-256 CA generated at start.
    /// - `users`: identity mappings by access key, checked first: `accessKeyId`, `username`
    ///   (`{{EC2PrivateDNSName}}`, `{{AccessKeyID}}` and `{{SessionName}}` are replaced), `groups`.
    /// - `defaultMappings`: map the instance role to `system:node:<privateDnsName>` (groups
    ///   `system:bootstrappers`, `system:nodes`) and the static keys to `kubernetes-admin`
    ///   (`system:masters`); false = only `users` are mapped, every other identity is 401.
    /// - `advertiseEndpoint`: `https://HOST[:PORT]`, the address clients reach the API server at
    ///   when that is not the listener's (a VM reaching a host-loopback testbed through a
    ///   forward): DescribeCluster's default `endpoint` and `/api`'s `serverAddressByClientCIDRs`,
    ///   and HOST is added to the server certificate's SANs. Absent = the listener's address.
    public struct KubeAPI: Codable, Sendable, Equatable {
        public var clusterName: String?
        public var caCertificateFile: String?
        public var caKeyFile: String?
        public var users: [UserMapping]
        public var defaultMappings: Bool
        public var advertiseEndpoint: String?

        public init(
            clusterName: String? = nil, caCertificateFile: String? = nil, caKeyFile: String? = nil,
            users: [UserMapping] = [], defaultMappings: Bool = true, advertiseEndpoint: String? = nil
        ) {
            self.clusterName = clusterName
            self.caCertificateFile = caCertificateFile
            self.caKeyFile = caKeyFile
            self.users = users
            self.defaultMappings = defaultMappings
            self.advertiseEndpoint = advertiseEndpoint
        }

        /// `advertiseEndpoint` split: its host (without brackets) and `host:port` as `/api`
        /// reports it (port 443 when the URL has none). Nil when absent or not an https URL.
        public var advertised: (host: String, address: String)? {
            guard let advertiseEndpoint, let url = URL(string: advertiseEndpoint),
                url.scheme?.lowercased() == "https", let host = url.host, !host.isEmpty,
                url.path.isEmpty || url.path == "/", url.query == nil, url.user == nil
            else { return nil }
            let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
            let port = url.port ?? 443
            return (bare, bare.contains(":") ? "[\(bare)]:\(port)" : "\(bare):\(port)")
        }

        /// An access key mapped to a Kubernetes user.
        public struct UserMapping: Codable, Sendable, Equatable {
            public var accessKeyId: String
            public var username: String
            public var groups: [String]

            public init(accessKeyId: String, username: String, groups: [String] = []) {
                self.accessKeyId = accessKeyId
                self.username = username
                self.groups = groups
            }

            enum CodingKeys: String, CodingKey, CaseIterable { case accessKeyId, username, groups }

            public init(from decoder: any Decoder) throws {
                try rejectUnknownKeys(decoder, CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                accessKeyId = try c.decode(String.self, forKey: .accessKeyId)
                username = try c.decode(String.self, forKey: .username)
                groups = try c.decodeIfPresent([String].self, forKey: .groups) ?? []
            }
        }

        enum CodingKeys: String, CodingKey, CaseIterable {
            case clusterName, caCertificateFile, caKeyFile, users, defaultMappings, advertiseEndpoint
        }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            clusterName = try c.decodeIfPresent(String.self, forKey: .clusterName)
            caCertificateFile = try c.decodeIfPresent(String.self, forKey: .caCertificateFile)
            caKeyFile = try c.decodeIfPresent(String.self, forKey: .caKeyFile)
            users = try c.decodeIfPresent([UserMapping].self, forKey: .users) ?? []
            defaultMappings = try c.decodeIfPresent(Bool.self, forKey: .defaultMappings) ?? true
            advertiseEndpoint = try c.decodeIfPresent(String.self, forKey: .advertiseEndpoint)
        }

        func validationErrors() -> [String] {
            var problems: [String] = []
            if let clusterName, clusterName.isEmpty { problems.append("kubeAPI.clusterName: must not be empty") }
            if (caCertificateFile == nil) != (caKeyFile == nil) {
                problems.append("kubeAPI: give both caCertificateFile and caKeyFile, or neither")
            }
            if let advertiseEndpoint, advertised == nil {
                problems.append(
                    "kubeAPI.advertiseEndpoint: '\(advertiseEndpoint)' is not an https://HOST[:PORT] URL (no path, query or user)"
                )
            }
            for (i, user) in users.enumerated() {
                if user.accessKeyId.isEmpty { problems.append("kubeAPI.users[\(i)].accessKeyId: must not be empty") }
                if user.username.isEmpty { problems.append("kubeAPI.users[\(i)].username: must not be empty") }
            }
            return problems
        }
    }
}

// MARK: - Decoding helpers

struct AnyKey: CodingKey {
    var stringValue: String
    var intValue: Int?
    init(stringValue: String) { self.stringValue = stringValue }
    init?(intValue: Int) {
        self.stringValue = String(intValue)
        self.intValue = intValue
    }
}

/// Fails on a field the type does not know, so that a typo in a config file is an error.
func rejectUnknownKeys<Keys: CodingKey & CaseIterable>(_ decoder: any Decoder, _ keys: Keys.Type) throws {
    let container = try decoder.container(keyedBy: AnyKey.self)
    let known = Set(Keys.allCases.map(\.stringValue))
    for key in container.allKeys where !known.contains(key.stringValue) {
        throw DecodingError.dataCorrupted(
            DecodingError.Context(
                codingPath: decoder.codingPath + [key],
                debugDescription: "unknown field; known fields are \(known.sorted().joined(separator: ", "))"))
    }
}

/// `field 'clusters[0].name': expected a String, found a number`-style text for a decoding error.
func describe(_ error: DecodingError) -> String {
    func path(_ codingPath: [any CodingKey]) -> String {
        var out = ""
        for key in codingPath {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                out += (out.isEmpty ? "" : ".") + key.stringValue
            }
        }
        return out.isEmpty ? "(top level)" : out
    }
    switch error {
    case .typeMismatch(let type, let context):
        return "field '\(path(context.codingPath))': expected \(type): \(context.debugDescription)"
    case .valueNotFound(let type, let context):
        return "field '\(path(context.codingPath))': expected \(type), found null"
    case .keyNotFound(let key, let context):
        return "field '\(path(context.codingPath + [key]))': required but missing"
    case .dataCorrupted(let context):
        if context.codingPath.isEmpty {
            let underlying = context.underlyingError.map { " (\($0.localizedDescription))" } ?? ""
            return "not valid JSON: \(context.debugDescription)\(underlying)"
        }
        return "field '\(path(context.codingPath))': \(context.debugDescription)"
    @unknown default:
        return "\(error)"
    }
}

// MARK: - Small validators

enum CIDR {
    static func isIPv4(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let bits = Int(parts[1]), (0...32).contains(bits) else { return false }
        let octets = parts[0].split(separator: ".", omittingEmptySubsequences: false)
        return octets.count == 4 && octets.allSatisfy { Int($0).map { (0...255).contains($0) } ?? false }
    }

    static func isIPv6(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let bits = Int(parts[1]), (0...128).contains(bits) else { return false }
        return parts[0].contains(":") && parts[0].allSatisfy { $0.isHexDigit || $0 == ":" }
    }
}

enum MAC {
    static func isValid(_ s: String) -> Bool {
        let parts = s.split(separator: ":", omittingEmptySubsequences: false)
        return parts.count == 6 && parts.allSatisfy { $0.count == 2 && $0.allSatisfy(\.isHexDigit) }
    }
}

/// ISO 8601 with whole seconds and `Z`, as IMDS writes times.
enum ISO8601 {
    static func format(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        func pad(_ value: Int?, _ width: Int = 2) -> String {
            let s = String(value ?? 0)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(c.year, 4))-\(pad(c.month))-\(pad(c.day))T\(pad(c.hour)):\(pad(c.minute)):\(pad(c.second))Z"
    }

    static func parse(_ s: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        if let date = formatter.date(from: s) { return date }
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.date(from: s)
    }
}
