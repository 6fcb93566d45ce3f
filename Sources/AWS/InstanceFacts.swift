import FoundationEssentials
import Support
public import WireJSON

/// `/latest/dynamic/instance-identity/document`.
public struct InstanceIdentity: Codable, Sendable, Equatable {
    public var instanceId: String
    public var instanceType: String
    public var region: String
    public var availabilityZone: String
    public var accountId: String?
    public var architecture: String?
    public var imageId: String?
    public var privateIp: String?

    public init(
        instanceId: String, instanceType: String, region: String, availabilityZone: String,
        accountId: String? = nil, architecture: String? = nil, imageId: String? = nil, privateIp: String? = nil
    ) {
        self.instanceId = instanceId
        self.instanceType = instanceType
        self.region = region
        self.availabilityZone = availabilityZone
        self.accountId = accountId
        self.architecture = architecture
        self.imageId = imageId
        self.privateIp = privateIp
    }

    /// The document as IMDS serves it (members it has beyond these are ignored).
    public init(json: JSONObject) throws(JSONShapeError) {
        self.init(
            instanceId: try json.string("instanceId"), instanceType: try json.string("instanceType"),
            region: try json.string("region"), availabilityZone: try json.string("availabilityZone"),
            accountId: try json.optionalString("accountId"), architecture: try json.optionalString("architecture"),
            imageId: try json.optionalString("imageId"), privateIp: try json.optionalString("privateIp"))
    }
}

/// One ENI as IMDS describes it under `network/interfaces/macs/<mac>/`.
public struct NetworkInterface: Codable, Sendable, Equatable {
    public var mac: String
    public var deviceNumber: Int?
    public var networkCard: Int?
    public var interfaceId: String?
    public var localIPv4s: [String]
    public var ipv6s: [String]
    public var subnetIPv4CIDRBlock: String?
    public var vpcIPv4CIDRBlocks: [String]
    /// Delegated /28 prefixes (`ipv4-prefix`) and /80 prefixes (`ipv6-prefix`).
    public var ipv4Prefixes: [String]
    public var ipv6Prefixes: [String]

    public init(
        mac: String, deviceNumber: Int? = nil, networkCard: Int? = nil, interfaceId: String? = nil,
        localIPv4s: [String] = [], ipv6s: [String] = [], subnetIPv4CIDRBlock: String? = nil,
        vpcIPv4CIDRBlocks: [String] = [], ipv4Prefixes: [String] = [], ipv6Prefixes: [String] = []
    ) {
        self.ipv4Prefixes = ipv4Prefixes
        self.ipv6Prefixes = ipv6Prefixes
        self.mac = mac
        self.deviceNumber = deviceNumber
        self.networkCard = networkCard
        self.interfaceId = interfaceId
        self.localIPv4s = localIPv4s
        self.ipv6s = ipv6s
        self.subnetIPv4CIDRBlock = subnetIPv4CIDRBlock
        self.vpcIPv4CIDRBlocks = vpcIPv4CIDRBlocks
    }
}

/// What IMDS says about this instance.
public struct InstanceFacts: Codable, Sendable, Equatable {
    public var identity: InstanceIdentity
    public var mac: String
    public var localIPv4: String?
    public var localHostname: String?
    /// Sorted by network card, then device number.
    public var interfaces: [NetworkInterface]

    public init(
        identity: InstanceIdentity, mac: String, localIPv4: String?, localHostname: String?,
        interfaces: [NetworkInterface]
    ) {
        self.identity = identity
        self.mac = mac
        self.localIPv4 = localIPv4
        self.localHostname = localHostname
        self.interfaces = interfaces
    }

    /// The interface of the primary MAC.
    public var primaryInterface: NetworkInterface? { interfaces.first { $0.mac == mac } }
}

extension IMDSClient {
    static let identityPath = "/latest/dynamic/instance-identity/document"

    /// The identity document, decoded.
    public func identity() async throws -> InstanceIdentity {
        let body = try await get(Self.identityPath)
        do {
            return try InstanceIdentity(json: JSONObject(parsing: body))
        } catch {
            throw AWSError(
                .malformedResponse, operation: "IMDS GET \(Self.identityPath)", endpoint: endpoint,
                message: "the identity document is not the expected JSON (\(error))")
        }
    }

    /// All instance facts; independent paths are fetched concurrently.
    public func instanceFacts() async throws -> InstanceFacts {
        async let identity = identity()
        async let mac = require("/latest/meta-data/mac")
        async let localIPv4 = string("/latest/meta-data/local-ipv4")
        async let localHostname = string("/latest/meta-data/local-hostname")
        async let macListing = string("/latest/meta-data/network/interfaces/macs/")
        let primary = try await mac.trimmed
        var macs = Self.listing(try await macListing ?? "")
        if !macs.contains(primary) { macs.insert(primary, at: 0) }
        let interfaces = try await withThrowingTaskGroup(of: NetworkInterface.self) { group in
            for mac in macs {
                group.addTask { try await self.networkInterface(mac: mac) }
            }
            var result: [NetworkInterface] = []
            for try await interface in group { result.append(interface) }
            return result.sorted {
                ($0.networkCard ?? 0, $0.deviceNumber ?? Int.max, $0.mac) < (
                    $1.networkCard ?? 0, $1.deviceNumber ?? Int.max, $1.mac
                )
            }
        }
        return InstanceFacts(
            identity: try await identity, mac: primary, localIPv4: try await localIPv4.map(\.trimmed),
            localHostname: try await localHostname.map(\.trimmed), interfaces: interfaces)
    }

    /// One ENI's paths, fetched concurrently. Absent paths (404) are left empty.
    public func networkInterface(mac: String) async throws -> NetworkInterface {
        let base = "/latest/meta-data/network/interfaces/macs/\(mac)/"
        async let deviceNumber = string(base + "device-number")
        async let networkCard = string(base + "network-card")
        async let interfaceId = string(base + "interface-id")
        async let localIPv4s = string(base + "local-ipv4s")
        async let ipv6s = string(base + "ipv6s")
        async let subnet = string(base + "subnet-ipv4-cidr-block")
        async let vpc = string(base + "vpc-ipv4-cidr-blocks")
        async let ipv4Prefixes = string(base + "ipv4-prefix")
        async let ipv6Prefixes = string(base + "ipv6-prefix")
        return NetworkInterface(
            mac: mac,
            deviceNumber: try await deviceNumber.flatMap { Int($0.trimmed) },
            networkCard: try await networkCard.flatMap { Int($0.trimmed) },
            interfaceId: try await interfaceId.map(\.trimmed),
            localIPv4s: Self.listing(try await localIPv4s ?? ""),
            ipv6s: Self.listing(try await ipv6s ?? ""),
            subnetIPv4CIDRBlock: try await subnet.map(\.trimmed),
            vpcIPv4CIDRBlocks: Self.listing(try await vpc ?? ""),
            ipv4Prefixes: Self.listing(try await ipv4Prefixes ?? ""), ipv6Prefixes: Self.listing(try await ipv6Prefixes ?? ""))
    }

    /// The primary role name under `iam/security-credentials/`, or `nil` when the instance has no role.
    public func roleName() async throws -> String? {
        guard let listing = try await string("/latest/meta-data/iam/security-credentials/") else { return nil }
        return Self.listing(listing).first
    }

    /// Lines of an IMDS listing, without trailing slashes and blanks.
    static func listing(_ text: String) -> [String] {
        text.split(whereSeparator: \.isNewline).map { line in
            var entry = String(line).trimmed
            if entry.hasSuffix("/") { entry.removeLast() }
            return entry
        }.filter { !$0.isEmpty }
    }
}
