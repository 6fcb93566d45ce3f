/// The EC2 error codes the ENI calls are told apart by. `AWSError.code` carries them as EC2 wrote
/// them; these constants only spare callers the spelling.
public enum EC2ErrorCode {
    /// The subnet has too few free addresses for the request (CreateNetworkInterface, AssignPrivateIpAddresses).
    public static let insufficientFreeAddresses = "InsufficientFreeAddressesInSubnet"
    /// The subnet has no free aligned /28 (or /80) for a prefix, though it may have free addresses.
    public static let insufficientCidrBlocks = "InsufficientCidrBlocks"
    /// The ENI would hold more IPv4 addresses and prefixes than the instance type allows.
    public static let privateIpAddressLimitExceeded = "PrivateIpAddressLimitExceeded"
    /// The instance already has as many ENIs (on that network card) as its type allows.
    public static let attachmentLimitExceeded = "AttachmentLimitExceeded"
    /// The resource is in a state that does not allow the call (e.g. a detach already under way).
    public static let incorrectState = "IncorrectState"
    /// No such ENI (any more): DeleteNetworkInterface takes it as success.
    public static let networkInterfaceNotFound = "InvalidNetworkInterfaceID.NotFound"
    /// An attached ENI given to AttachNetworkInterface.
    public static let networkInterfaceInUse = "InvalidNetworkInterface.InUse"
    /// No such attachment (DetachNetworkInterface, ModifyNetworkInterfaceAttribute).
    public static let attachmentNotFound = "InvalidAttachmentID.NotFound"
    public static let subnetNotFound = "InvalidSubnetID.NotFound"
    /// The credentials lack the IAM action (`AWSError.hint` names it).
    public static let unauthorizedOperation = "UnauthorizedOperation"
    /// A bad value; also an occupied device index, and DeleteNetworkInterface of an ENI that is
    /// still attached ("Network interface 'eni-…' is currently in use.").
    public static let invalidParameterValue = "InvalidParameterValue"
    /// The same ClientToken with other parameters.
    public static let idempotentParameterMismatch = "IdempotentParameterMismatch"
}

extension AWSError {
    /// DeleteNetworkInterface of an ENI that is still attached or detaching. EC2 has no code of
    /// its own for it: it answers `InvalidParameterValue` "Network interface 'eni-…' is currently
    /// in use." (aws-node #1399). Retry once the ENI is `available`.
    public var isNetworkInterfaceInUse: Bool {
        code == EC2ErrorCode.invalidParameterValue && message.contains("is currently in use")
    }
}

/// A subnet as `DescribeSubnets` reports it.
public struct EC2Subnet: Sendable, Equatable {
    public var id: String
    public var vpcId: String
    public var availabilityZone: String
    public var cidrBlock: String
    public var ipv6CidrBlocks: [String]
    /// Live: the addresses not yet in use (AWS reserves 5 per subnet).
    public var availableIpAddressCount: Int
    public var tags: [String: String]

    public init(
        id: String, vpcId: String, availabilityZone: String, cidrBlock: String, ipv6CidrBlocks: [String] = [],
        availableIpAddressCount: Int, tags: [String: String] = [:]
    ) {
        self.id = id
        self.vpcId = vpcId
        self.availabilityZone = availabilityZone
        self.cidrBlock = cidrBlock
        self.ipv6CidrBlocks = ipv6CidrBlocks
        self.availableIpAddressCount = availableIpAddressCount
        self.tags = tags
    }
}

/// A network interface as `DescribeNetworkInterfaces` and `CreateNetworkInterface` report it.
public struct EC2NetworkInterface: Sendable, Equatable {
    public struct Attachment: Sendable, Equatable {
        public var id: String
        public var instanceId: String?
        public var deviceIndex: Int
        public var networkCardIndex: Int
        /// `attaching`, `attached`, `detaching` or `detached`.
        public var status: String
        public var deleteOnTermination: Bool

        public init(
            id: String, instanceId: String?, deviceIndex: Int, networkCardIndex: Int, status: String,
            deleteOnTermination: Bool
        ) {
            self.id = id
            self.instanceId = instanceId
            self.deviceIndex = deviceIndex
            self.networkCardIndex = networkCardIndex
            self.status = status
            self.deleteOnTermination = deleteOnTermination
        }
    }

    public struct PrivateIP: Sendable, Equatable {
        public var address: String
        public var primary: Bool

        public init(address: String, primary: Bool) {
            self.address = address
            self.primary = primary
        }
    }

    public var id: String
    /// `available`, `attaching`, `in-use`, `detaching`.
    public var status: String
    public var subnetId: String
    public var vpcId: String
    public var availabilityZone: String?
    public var macAddress: String
    public var description: String
    public var securityGroupIds: [String]
    public var tags: [String: String]
    public var attachment: Attachment?
    /// In EC2's order (the primary first).
    public var privateIPs: [PrivateIP]
    public var ipv4Prefixes: [String]
    public var ipv6Addresses: [String]
    public var ipv6Prefixes: [String]
    /// `interface`, `efa`, `trunk`, …
    public var interfaceType: String?

    public var primaryIPv4: String? { privateIPs.first(where: \.primary)?.address }
    public var secondaryIPv4s: [String] { privateIPs.filter { !$0.primary }.map(\.address) }

    public init(
        id: String, status: String, subnetId: String, vpcId: String, availabilityZone: String? = nil,
        macAddress: String, description: String = "", securityGroupIds: [String] = [], tags: [String: String] = [:],
        attachment: Attachment? = nil, privateIPs: [PrivateIP] = [], ipv4Prefixes: [String] = [],
        ipv6Addresses: [String] = [], ipv6Prefixes: [String] = [], interfaceType: String? = nil
    ) {
        self.id = id
        self.status = status
        self.subnetId = subnetId
        self.vpcId = vpcId
        self.availabilityZone = availabilityZone
        self.macAddress = macAddress
        self.description = description
        self.securityGroupIds = securityGroupIds
        self.tags = tags
        self.attachment = attachment
        self.privateIPs = privateIPs
        self.ipv4Prefixes = ipv4Prefixes
        self.ipv6Addresses = ipv6Addresses
        self.ipv6Prefixes = ipv6Prefixes
        self.interfaceType = interfaceType
    }
}

/// The addresses `CreateNetworkInterface` asks for besides the primary IPv4 address.
public enum EC2AddressRequest: Sendable, Equatable {
    case none
    /// `SecondaryPrivateIpAddressCount`.
    case secondaryIPv4(count: Int)
    /// `Ipv4PrefixCount` (/28 each).
    case ipv4Prefixes(count: Int)
    /// `Ipv6PrefixCount` (/80 each).
    case ipv6Prefixes(count: Int)
}

extension AWSClient {
    /// `MaxResults` of a paged DescribeNetworkInterfaces. EC2 allows 1000, but an ENI with 50
    /// addresses is about 8 KB of XML: 250 of them stay well under the transports' 4 MiB cap.
    static let networkInterfacePageSize = 250
    /// A bound on pages, so a service repeating its `NextToken` cannot loop us forever.
    static let maximumPages = 1000

    /// `ec2:DescribeSubnets` of the given subnets (all of the account's when empty).
    public func describeSubnets(ids: [String]) async throws -> [EC2Subnet] {
        let operation = "EC2 DescribeSubnets"
        let root = try await ec2(
            "DescribeSubnets", ids.enumerated().map { ("SubnetId.\($0.offset + 1)", $0.element) }, operation: operation)
        return try root.items("subnetSet").map { item in
            guard let id = item.string("subnetId"), let cidr = item.string("cidrBlock") else {
                throw malformed(operation, endpoint: endpointText(.ec2), "a subnet without subnetId or cidrBlock")
            }
            return EC2Subnet(
                id: id, vpcId: item.string("vpcId") ?? "", availabilityZone: item.string("availabilityZone") ?? "",
                cidrBlock: cidr,
                ipv6CidrBlocks: item.items("ipv6CidrBlockAssociationSet").compactMap { $0.string("ipv6CidrBlock") },
                availableIpAddressCount: item.string("availableIpAddressCount").flatMap(Int.init) ?? 0,
                tags: Self.tags(item))
        }
    }

    /// `ec2:CreateNetworkInterface` in `subnet` with the security groups `groups`, tagged at
    /// creation (`TagSpecification` for `network-interface`, so there is no untagged moment).
    /// `clientToken` makes a retry return the ENI the first attempt created.
    public func createNetworkInterface(
        subnet: String, groups: [String], description: String, addresses: EC2AddressRequest = .none,
        tags: [String: String] = [:], clientToken: String? = nil
    ) async throws -> EC2NetworkInterface {
        let operation = "EC2 CreateNetworkInterface"
        var parameters: [(String, String)] = [("SubnetId", subnet), ("Description", description)]
        for (n, group) in groups.enumerated() { parameters.append(("SecurityGroupId.\(n + 1)", group)) }
        switch addresses {
        case .none: break
        case .secondaryIPv4(let count): parameters.append(("SecondaryPrivateIpAddressCount", String(count)))
        case .ipv4Prefixes(let count): parameters.append(("Ipv4PrefixCount", String(count)))
        case .ipv6Prefixes(let count): parameters.append(("Ipv6PrefixCount", String(count)))
        }
        if !tags.isEmpty {
            parameters.append(("TagSpecification.1.ResourceType", "network-interface"))
            parameters += Self.tagParameters(tags, prefix: "TagSpecification.1.Tag")
        }
        if let clientToken { parameters.append(("ClientToken", clientToken)) }
        let root = try await ec2("CreateNetworkInterface", parameters, operation: operation)
        guard let item = root.child("networkInterface") else {
            throw malformed(operation, endpoint: endpointText(.ec2), "the response has no networkInterface")
        }
        return try networkInterface(item, operation: operation)
    }

    /// `ec2:AttachNetworkInterface` at `deviceIndex` on network card `card`; returns the attachment id.
    public func attachNetworkInterface(eni: String, instance: String, deviceIndex: Int, card: Int = 0) async throws
        -> String
    {
        let operation = "EC2 AttachNetworkInterface"
        let root = try await ec2(
            "AttachNetworkInterface",
            [
                ("NetworkInterfaceId", eni), ("InstanceId", instance), ("DeviceIndex", String(deviceIndex)),
                ("NetworkCardIndex", String(card)),
            ], operation: operation)
        guard let attachment = root.string("attachmentId"), !attachment.isEmpty else {
            throw malformed(operation, endpoint: endpointText(.ec2), "the response has no attachmentId for \(eni)")
        }
        return attachment
    }

    /// `ec2:ModifyNetworkInterfaceAttribute`: the attachment is deleted with the instance.
    public func setDeleteOnTermination(eni: String, attachment: String) async throws {
        _ = try await ec2(
            "ModifyNetworkInterfaceAttribute",
            [
                ("NetworkInterfaceId", eni), ("Attachment.AttachmentId", attachment),
                ("Attachment.DeleteOnTermination", "true"),
            ], operation: "EC2 ModifyNetworkInterfaceAttribute")
    }

    /// `ec2:DetachNetworkInterface`. The ENI is `detaching` for a while before it is `available`.
    public func detachNetworkInterface(attachment: String, force: Bool = false) async throws {
        var parameters = [("AttachmentId", attachment)]
        if force { parameters.append(("Force", "true")) }
        _ = try await ec2("DetachNetworkInterface", parameters, operation: "EC2 DetachNetworkInterface")
    }

    /// `ec2:DeleteNetworkInterface`. An ENI that is already gone counts as deleted: the answer is
    /// false then, true when this call deleted it.
    @discardableResult
    public func deleteNetworkInterface(_ id: String) async throws -> Bool {
        do {
            _ = try await ec2(
                "DeleteNetworkInterface", [("NetworkInterfaceId", id)], operation: "EC2 DeleteNetworkInterface")
            return true
        } catch let error as AWSError where error.code == EC2ErrorCode.networkInterfaceNotFound {
            return false
        }
    }

    /// `ec2:DescribeNetworkInterfaces` by id and/or filters (name → values; values of one filter
    /// are alternatives, filters all apply, e.g. `["tag-key": ["node.k8s.amazonaws.com/instance_id"],
    /// "status": ["available"]]`). Without ids it pages through `MaxResults` 250 and `NextToken`
    /// (EC2 refuses `MaxResults` together with ids).
    public func describeNetworkInterfaces(ids: [String] = [], filters: [String: [String]] = [:]) async throws
        -> [EC2NetworkInterface]
    {
        let operation = "EC2 DescribeNetworkInterfaces"
        var base: [(String, String)] = ids.enumerated().map { ("NetworkInterfaceId.\($0.offset + 1)", $0.element) }
        for (n, filter) in filters.sorted(by: { $0.key < $1.key }).enumerated() {
            base.append(("Filter.\(n + 1).Name", filter.key))
            for (m, value) in filter.value.enumerated() { base.append(("Filter.\(n + 1).Value.\(m + 1)", value)) }
        }
        if ids.isEmpty { base.append(("MaxResults", String(Self.networkInterfacePageSize))) }
        var interfaces: [EC2NetworkInterface] = []
        var token: String?
        var seen: Set<String> = []
        for _ in 0..<Self.maximumPages {
            let root = try await ec2(
                "DescribeNetworkInterfaces", base + (token.map { [("NextToken", $0)] } ?? []), operation: operation)
            interfaces += try root.items("networkInterfaceSet").map { try networkInterface($0, operation: operation) }
            guard let next = root.string("nextToken"), !next.isEmpty else { return interfaces }
            guard seen.insert(next).inserted else {
                throw malformed(operation, endpoint: endpointText(.ec2), "the service repeated the page token \(next)")
            }
            token = next
        }
        throw malformed(operation, endpoint: endpointText(.ec2), "more than \(Self.maximumPages) pages")
    }

    /// `ec2:AssignPrivateIpAddresses` with `SecondaryPrivateIpAddressCount`: the addresses in the
    /// answer. Real EC2 lists only the new ones; moto lists every address of the ENI, so callers
    /// take the answer minus the addresses they already know.
    public func assignPrivateIPs(eni: String, count: Int) async throws -> [String] {
        let root = try await ec2(
            "AssignPrivateIpAddresses",
            [("NetworkInterfaceId", eni), ("SecondaryPrivateIpAddressCount", String(count))],
            operation: "EC2 AssignPrivateIpAddresses")
        return root.items("assignedPrivateIpAddressesSet").compactMap { $0.string("privateIpAddress") }
    }

    /// `ec2:AssignPrivateIpAddresses` with `Ipv4PrefixCount`: the /28 prefixes in the answer.
    public func assignIPv4Prefixes(eni: String, count: Int) async throws -> [String] {
        let root = try await ec2(
            "AssignPrivateIpAddresses", [("NetworkInterfaceId", eni), ("Ipv4PrefixCount", String(count))],
            operation: "EC2 AssignPrivateIpAddresses")
        return root.items("assignedIpv4PrefixSet").compactMap { $0.string("ipv4Prefix") }
    }

    /// `ec2:UnassignPrivateIpAddresses` of secondary addresses.
    public func unassignPrivateIPs(eni: String, addresses: [String]) async throws {
        _ = try await ec2(
            "UnassignPrivateIpAddresses",
            [("NetworkInterfaceId", eni)] + addresses.enumerated().map { ("PrivateIpAddress.\($0.offset + 1)", $0.element) },
            operation: "EC2 UnassignPrivateIpAddresses")
    }

    /// `ec2:UnassignPrivateIpAddresses` of /28 prefixes.
    public func unassignIPv4Prefixes(eni: String, prefixes: [String]) async throws {
        _ = try await ec2(
            "UnassignPrivateIpAddresses",
            [("NetworkInterfaceId", eni)] + prefixes.enumerated().map { ("Ipv4Prefix.\($0.offset + 1)", $0.element) },
            operation: "EC2 UnassignPrivateIpAddresses")
    }

    /// `ec2:AssignIpv6Addresses` with `Ipv6PrefixCount=1`: the /80 prefix assigned.
    public func assignIPv6Prefix(eni: String) async throws -> [String] {
        let root = try await ec2(
            "AssignIpv6Addresses", [("NetworkInterfaceId", eni), ("Ipv6PrefixCount", "1")],
            operation: "EC2 AssignIpv6Addresses")
        return root.items("assignedIpv6PrefixSet").map(\.text).filter { !$0.isEmpty }
    }

    /// `ec2:CreateTags` on ENIs (or any taggable resources).
    public func createTags(resources: [String], tags: [String: String]) async throws {
        _ = try await ec2(
            "CreateTags",
            resources.enumerated().map { ("ResourceId.\($0.offset + 1)", $0.element) }
                + Self.tagParameters(tags, prefix: "Tag"),
            operation: "EC2 CreateTags")
    }

    // MARK: Internals

    func ec2(_ action: String, _ parameters: [(String, String)], operation: String) async throws -> XMLElement {
        try parseXML(try await perform(ec2Call(action, parameters)), operation: operation)
    }

    /// `Prefix.N.Key`, `Prefix.N.Value`, keys sorted.
    static func tagParameters(_ tags: [String: String], prefix: String) -> [(String, String)] {
        tags.sorted { $0.key < $1.key }.enumerated().flatMap { n, tag in
            [("\(prefix).\(n + 1).Key", tag.key), ("\(prefix).\(n + 1).Value", tag.value)]
        }
    }

    static func tags(_ item: XMLElement) -> [String: String] {
        var tags: [String: String] = [:]
        for tag in item.items("tagSet") {
            if let key = tag.string("key") { tags[key] = tag.string("value") ?? "" }
        }
        return tags
    }

    /// One `networkInterfaceSet` item (or `networkInterface`).
    func networkInterface(_ item: XMLElement, operation: String) throws -> EC2NetworkInterface {
        guard let id = item.string("networkInterfaceId"), !id.isEmpty else {
            throw malformed(operation, endpoint: endpointText(.ec2), "a network interface without networkInterfaceId")
        }
        var attachment: EC2NetworkInterface.Attachment?
        if let element = item.child("attachment"), let attachmentId = element.string("attachmentId"),
            !attachmentId.isEmpty
        {
            attachment = EC2NetworkInterface.Attachment(
                id: attachmentId, instanceId: element.string("instanceId"),
                deviceIndex: element.string("deviceIndex").flatMap(Int.init) ?? 0,
                networkCardIndex: element.string("networkCardIndex").flatMap(Int.init) ?? 0,
                status: element.string("status") ?? "", deleteOnTermination: element.string("deleteOnTermination") == "true")
        }
        return EC2NetworkInterface(
            id: id, status: item.string("status") ?? "", subnetId: item.string("subnetId") ?? "",
            vpcId: item.string("vpcId") ?? "", availabilityZone: item.string("availabilityZone"),
            macAddress: item.string("macAddress") ?? "", description: item.string("description") ?? "",
            securityGroupIds: item.items("groupSet").compactMap { $0.string("groupId") }, tags: Self.tags(item),
            attachment: attachment,
            privateIPs: item.items("privateIpAddressesSet").compactMap { ip in
                ip.string("privateIpAddress").map { .init(address: $0, primary: ip.string("primary") == "true") }
            },
            ipv4Prefixes: item.items("ipv4PrefixSet").compactMap { $0.string("ipv4Prefix") },
            ipv6Addresses: item.items("ipv6AddressesSet").compactMap { $0.string("ipv6Address") },
            ipv6Prefixes: item.items("ipv6PrefixSet").compactMap { $0.string("ipv6Prefix") },
            interfaceType: item.string("interfaceType"))
    }
}
