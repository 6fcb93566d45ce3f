public import Foundation

/// What an attach or detach hook is told: the ENI and where it was (or is) plugged in.
public struct ENIEvent: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable { case attach, detach }

    public var kind: Kind
    public var networkInterfaceId: String
    public var macAddress: String
    public var attachmentId: String
    public var instanceId: String
    public var deviceIndex: Int
    public var networkCardIndex: Int
    /// The ENI's primary IPv4 address and its subnet (`a.b.c.d/n`), as the NIC would be configured.
    public var primaryIPv4: String?
    public var subnetCidr: String
}

/// An ENI as the testbed holds it (`GET /_testbed/ec2/network-interfaces`, ``Testbed/networkInterfaces()``).
public struct TestbedNetworkInterface: Codable, Sendable, Equatable {
    public struct Attachment: Codable, Sendable, Equatable {
        public var attachmentId: String
        public var instanceId: String
        public var deviceIndex: Int
        public var networkCardIndex: Int
        /// `attached` or `detaching`.
        public var status: String
        public var deleteOnTermination: Bool
    }

    public var networkInterfaceId: String
    public var macAddress: String
    /// `available`, `in-use` or `detaching`.
    public var status: String
    public var subnetId: String
    public var vpcId: String
    public var description: String
    public var securityGroupIds: [String]
    public var tags: [String: String]
    /// The primary address first.
    public var privateIpAddresses: [String]
    public var ipv4Prefixes: [String]
    public var ipv6Addresses: [String]
    public var ipv6Prefixes: [String]
    public var attachment: Attachment?
    public var createdAt: Date
    public var clientToken: String?
}

/// A subnet as the testbed holds it.
public struct TestbedSubnet: Codable, Sendable, Equatable {
    public var subnetId: String
    public var vpcId: String
    public var availabilityZone: String
    public var cidrBlock: String
    public var ipv6CidrBlock: String?
    /// The size less the 5 addresses AWS reserves and every address in use.
    public var availableIpAddressCount: Int
    public var tags: [String: String]
}

/// The whole network model (`GET /_testbed/ec2/network`).
public struct TestbedNetworkState: Codable, Sendable, Equatable {
    public struct VPC: Codable, Sendable, Equatable {
        public var vpcId: String
        public var cidrBlocks: [String]
        public var ipv6CidrBlocks: [String]
    }

    public struct Instance: Codable, Sendable, Equatable {
        public var instanceId: String
        public var instanceType: String
        /// Network card → ENIs it takes; empty when the instance type is not in the table (no limits).
        public var maximumNetworkInterfaces: [String: Int]
        /// IPv4 addresses and /28 prefixes per ENI (primary included); nil = no limit.
        public var ipv4AddressesPerInterface: Int?
    }

    public var vpc: VPC
    public var subnets: [TestbedSubnet]
    public var networkInterfaces: [TestbedNetworkInterface]
    public var instance: Instance
    public var imdsLagMs: Int
    public var detachLagMs: Int
}

/// A detached ENI made directly in the model (`POST /_testbed/ec2/network-interfaces`,
/// ``Testbed/createDetachedNetworkInterface(_:)``): what a node that died between detach and
/// delete leaves behind.
public struct DetachedNetworkInterface: Codable, Sendable, Equatable {
    /// The tag aws-node (and nodeboot) put on the ENIs they create: when, in RFC 3339.
    public static let createdAtTag = "node.k8s.amazonaws.com/createdAt"

    /// Absent: the primary ENI's subnet.
    public var subnetId: String?
    public var description: String
    /// Absent: the primary ENI's security groups.
    public var securityGroupIds: [String]?
    public var tags: [String: String]
    /// How old the ENI is (its `createdAt`).
    public var ageSeconds: Double
    /// Adds `node.k8s.amazonaws.com/createdAt` (RFC 3339 of the creation time) unless `tags` has it.
    public var tagCreatedAt: Bool
    public var secondaryPrivateIpAddressCount: Int

    public init(
        subnetId: String? = nil, description: String = "", securityGroupIds: [String]? = nil,
        tags: [String: String] = [:], ageSeconds: Double = 0, tagCreatedAt: Bool = true,
        secondaryPrivateIpAddressCount: Int = 0
    ) {
        self.subnetId = subnetId
        self.description = description
        self.securityGroupIds = securityGroupIds
        self.tags = tags
        self.ageSeconds = ageSeconds
        self.tagCreatedAt = tagCreatedAt
        self.secondaryPrivateIpAddressCount = secondaryPrivateIpAddressCount
    }

    enum CodingKeys: String, CodingKey, CaseIterable {
        case subnetId, description, securityGroupIds, tags, ageSeconds, tagCreatedAt, secondaryPrivateIpAddressCount
    }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        subnetId = try c.decodeIfPresent(String.self, forKey: .subnetId)
        description = try c.decodeIfPresent(String.self, forKey: .description) ?? ""
        securityGroupIds = try c.decodeIfPresent([String].self, forKey: .securityGroupIds)
        tags = try c.decodeIfPresent([String: String].self, forKey: .tags) ?? [:]
        ageSeconds = try c.decodeIfPresent(Double.self, forKey: .ageSeconds) ?? 0
        tagCreatedAt = try c.decodeIfPresent(Bool.self, forKey: .tagCreatedAt) ?? true
        secondaryPrivateIpAddressCount = try c.decodeIfPresent(Int.self, forKey: .secondaryPrivateIpAddressCount) ?? 0
    }
}
