import Foundation

/// An EC2 error as the network model raises it; the handler writes it as EC2's error XML.
struct EC2Failure: Error, Equatable {
    var status = 400
    var code: String
    var message: String

    init(_ code: String, _ message: String, status: Int = 400) {
        self.code = code
        self.message = message
        self.status = status
    }
}

/// EC2's view of the instance's network: the VPC, subnets of finite size, ENIs with their
/// addresses and prefixes, and the instance's attachments under its type's limits. Pure state:
/// every operation takes the time, the core keeps the model under its mutex. IMDS's
/// `network/interfaces/macs/` is rendered from it (`NetworkModel+IMDS.swift`).
struct NetworkModel: Sendable {
    /// The instance type's network limits (DescribeInstanceTypes' row).
    struct Limits: Sendable {
        var instanceType: String
        /// Network card index → the ENIs it takes.
        var interfacesPerCard: [Int: Int]
        /// IPv4 addresses (the primary included) and /28 prefixes per ENI.
        var ipv4PerInterface: Int
        var ipv6PerInterface: Int
        /// `xen` types have no prefix delegation.
        var hypervisor: String
    }

    struct Subnet: Sendable {
        var id: String
        var vpcID: String
        var availabilityZone: String
        var cidr: IPv4CIDR
        var ipv6: IPv6CIDR?
        var tags: [String: String]
        /// Addresses in use (of the usable range only).
        var used: Set<UInt32> = []
        var usedIPv6: Set<UInt128> = []
        /// Bases of the /80 prefixes in use.
        var ipv6Prefixes: Set<UInt128> = []

        /// AWS reserves the network address, +1 (router), +2 (DNS), +3 and the broadcast address.
        var usable: ClosedRange<UInt32>? {
            guard cidr.size > 5 else { return nil }
            return (cidr.base + 4)...(cidr.last - 1)
        }

        var available: Int { usable.map { $0.count - used.count } ?? 0 }

        /// Marks an address in use (addresses outside the usable range take no space).
        mutating func take(_ address: UInt32) {
            if usable?.contains(address) == true { used.insert(address) }
        }

        mutating func release(_ address: UInt32) { used.remove(address) }

        /// The lowest `count` free addresses, or `InsufficientFreeAddressesInSubnet`.
        mutating func allocate(_ count: Int) throws(EC2Failure) -> [UInt32] {
            guard count > 0 else { return [] }
            guard let usable, available >= count else {
                throw EC2Failure(
                    "InsufficientFreeAddressesInSubnet",
                    "The specified subnet does not have enough free addresses to satisfy the request.")
            }
            var out: [UInt32] = []
            var address = usable.lowerBound
            while out.count < count && address <= usable.upperBound {
                if !used.contains(address) { out.append(address) }
                address += 1
            }
            for address in out { used.insert(address) }
            return out
        }

        /// The lowest `count` aligned /28 blocks whose 16 addresses are all free, or `InsufficientCidrBlocks`.
        mutating func allocatePrefixes(_ count: Int) throws(EC2Failure) -> [UInt32] {
            guard count > 0 else { return [] }
            var out: [UInt32] = []
            if let usable {
                var block = cidr.base
                while out.count < count && UInt64(block) + 15 <= UInt64(usable.upperBound) {
                    if block >= usable.lowerBound && (block..<block + 16).allSatisfy({ !used.contains($0) }) {
                        out.append(block)
                    }
                    block += 16
                }
            }
            guard out.count == count else {
                throw EC2Failure(
                    "InsufficientCidrBlocks",
                    "The specified subnet does not have enough free cidr blocks to satisfy the request.")
            }
            for block in out { used.formUnion(block..<block + 16) }
            return out
        }

        mutating func releasePrefix(_ block: UInt32) { used.subtract(block..<block + 16) }

        static let mask80 = ~(UInt128.max >> 80)

        mutating func allocateIPv6(_ count: Int) throws(EC2Failure) -> [UInt128] {
            guard count > 0 else { return [] }
            guard let ipv6 else { throw Self.noIPv6(id) }
            var out: [UInt128] = []
            var address = ipv6.base + 4
            while out.count < count && address < ipv6.last {
                if !usedIPv6.contains(address) && !ipv6Prefixes.contains(address & Self.mask80) { out.append(address) }
                address += 1
            }
            guard out.count == count else {
                throw EC2Failure(
                    "InsufficientFreeAddressesInSubnet",
                    "The specified subnet does not have enough free addresses to satisfy the request.")
            }
            usedIPv6.formUnion(out)
            return out
        }

        /// The lowest free aligned /80 blocks after the first (which holds the reserved addresses).
        mutating func allocateIPv6Prefixes(_ count: Int) throws(EC2Failure) -> [UInt128] {
            guard count > 0 else { return [] }
            guard let ipv6 else { throw Self.noIPv6(id) }
            var out: [UInt128] = []
            if ipv6.length <= 80 {
                let taken = ipv6Prefixes.union(usedIPv6.map { $0 & Self.mask80 })
                var block = ipv6.base
                // Only taken blocks can be skipped, so this ends after at most taken.count + count + 1 steps.
                for _ in 0...(taken.count + count + 1) {
                    let (next, overflow) = block.addingReportingOverflow(UInt128(1) << 48)
                    guard !overflow, next <= ipv6.last else { break }
                    block = next
                    if !taken.contains(block) { out.append(block) }
                    if out.count == count { break }
                }
            }
            guard out.count == count else {
                throw EC2Failure(
                    "InsufficientCidrBlocks",
                    "The specified subnet does not have enough free cidr blocks to satisfy the request.")
            }
            ipv6Prefixes.formUnion(out)
            return out
        }

        static func noIPv6(_ id: String) -> EC2Failure {
            EC2Failure("InvalidParameterValue", "The subnet '\(id)' has no IPv6 CIDR block.")
        }
    }

    struct SecurityGroup: Sendable, Equatable {
        var id: String
        var name: String
    }

    struct Attachment: Sendable {
        var id: String
        var instanceID: String
        var deviceIndex: Int
        var card: Int
        /// As DescribeInstances writes it.
        var attachTime: String
        var deleteOnTermination: Bool
        /// Set by a detach: the ENI is `detaching` until then, `available` after.
        var detachingUntil: Date?
    }

    struct ENI: Sendable {
        var id: String
        var mac: String
        var subnetID: String
        var description: String
        var groups: [SecurityGroup]
        var tags: [String: String]
        var ownerID: String
        var privateDNSName: String
        /// The primary first.
        var ipv4: [UInt32]
        var ipv4Prefixes: [UInt32] = []
        var ipv6: [UInt128] = []
        var ipv6Prefixes: [UInt128] = []
        var attachment: Attachment?
        var createdAt: Date
        var clientToken: String?

        var status: String {
            guard let attachment else { return "available" }
            return attachment.detachingUntil == nil ? "in-use" : "detaching"
        }

        /// IPv4 slots in use: addresses and /28 prefixes count alike.
        var ipv4Slots: Int { ipv4.count + ipv4Prefixes.count }
    }

    var instanceID: String
    var instanceType: String
    var availabilityZone: String
    var ownerID: String
    var region: String
    var limits: Limits?
    var vpcID: String
    var vpcCIDRs: [String]
    var vpcIPv6CIDRs: [String]
    var subnets: [String: Subnet]
    var enis: [String: ENI] = [:]
    var clientTokens: [String: (fingerprint: String, eniID: String, snapshot: ENI)] = [:]
    var imdsLagMs: Int
    var detachLagMs: Int
    /// The primary ENI: its subnet and security groups are the defaults of a detached ENI.
    var primaryENIID: String
    /// IMDS state (`NetworkModel+IMDS.swift`).
    var imds = IMDSState()

    // MARK: Building

    /// The model of `instance`: its ENIs in use, their subnets (configured ones win), the limits
    /// of its type. Throws a configuration error naming the value that is not an address or block.
    init(
        instance: InstanceModel, network: TestbedConfiguration.Network,
        instanceTypes: [String: TestbedConfiguration.InstanceType], now: Date
    ) throws {
        guard let primary = instance.interfaces.first else {
            throw TestbedError(.configuration, "instance: no primary network interface")
        }
        instanceID = instance.instanceID
        instanceType = instance.instanceType
        availabilityZone = instance.availabilityZone
        ownerID = primary.ownerID
        region = instance.region
        if let row = instanceTypes[instance.instanceType] {
            var cards: [Int: Int] = [:]
            for card in row.networkCards ?? [.init(networkCardIndex: 0, maximumNetworkInterfaces: row.maximumNetworkInterfaces)] {
                cards[card.networkCardIndex] = card.maximumNetworkInterfaces
            }
            limits = Limits(
                instanceType: row.instanceType, interfacesPerCard: cards, ipv4PerInterface: row.ipv4AddressesPerInterface,
                ipv6PerInterface: row.ipv6AddressesPerInterface ?? row.ipv4AddressesPerInterface,
                hypervisor: row.hypervisor ?? "nitro")
        }
        vpcID = network.vpc.id ?? primary.vpcID
        vpcCIDRs = network.vpc.cidrs ?? primary.vpcIPv4CIDRs
        vpcIPv6CIDRs = network.vpc.ipv6Cidrs ?? primary.vpcIPv6CIDRs
        imdsLagMs = network.imdsLagMs
        detachLagMs = network.detachLagMs
        primaryENIID = primary.interfaceID
        subnets = [:]
        for subnet in network.subnets {
            // Validated with the configuration.
            guard let cidr = IPv4CIDR(subnet.cidr) else { continue }
            subnets[subnet.id] = Subnet(
                id: subnet.id, vpcID: vpcID, availabilityZone: subnet.availabilityZone ?? availabilityZone, cidr: cidr,
                ipv6: subnet.ipv6Cidr.flatMap { IPv6CIDR($0) }, tags: subnet.tags)
        }
        let groupNames = Dictionary(
            zip(primary.securityGroupIDs, primary.securityGroupNames).map { ($0, $1) }, uniquingKeysWith: { a, _ in a })
        for interface in instance.interfaces {
            let field = interface.mac == primary.mac ? "instance" : "networkInterfaces (\(interface.mac))"
            if subnets[interface.subnetID] == nil {
                guard let cidr = IPv4CIDR(interface.subnetIPv4CIDR) else {
                    throw TestbedError(
                        .configuration,
                        "\(field): subnet-ipv4-cidr-block '\(interface.subnetIPv4CIDR)' is not an IPv4 CIDR block",
                        hint: "or list subnet \(interface.subnetID) under network.subnets")
                }
                subnets[interface.subnetID] = Subnet(
                    id: interface.subnetID, vpcID: vpcID, availabilityZone: availabilityZone, cidr: cidr,
                    ipv6: interface.subnetIPv6CIDRs.lazy.compactMap { IPv6CIDR($0) }.first, tags: [:])
            }
            var ipv4: [UInt32] = []
            for text in interface.localIPv4s {
                guard let address = IPv4.parse(text) else {
                    throw TestbedError(.configuration, "\(field): local-ipv4s '\(text)' is not an IPv4 address")
                }
                ipv4.append(address)
                subnets[interface.subnetID]?.take(address)
            }
            var ipv6: [UInt128] = []
            for text in interface.ipv6s {
                guard let address = IPv6.parse(text) else {
                    throw TestbedError(.configuration, "\(field): ipv6s '\(text)' is not an IPv6 address")
                }
                ipv6.append(address)
                if subnets[interface.subnetID]?.ipv6?.contains(address) == true {
                    subnets[interface.subnetID]?.usedIPv6.insert(address)
                }
            }
            let attachment = Attachment(
                id: "eni-attach-" + interface.interfaceID.dropFirst(4), instanceID: instance.instanceID,
                deviceIndex: interface.deviceNumber, card: interface.networkCard, attachTime: instance.launchTime,
                deleteOnTermination: true)
            enis[interface.interfaceID] = ENI(
                id: interface.interfaceID, mac: interface.mac, subnetID: interface.subnetID, description: "",
                groups: interface.securityGroupIDs.map { SecurityGroup(id: $0, name: groupNames[$0] ?? "") }, tags: [:],
                ownerID: interface.ownerID, privateDNSName: interface.privateDNSName, ipv4: ipv4, ipv6: ipv6,
                attachment: attachment, createdAt: now)
        }
        imds = IMDSState(instance: instance)
        imds.history = [(Date.distantPast, renderIMDS())]
    }

    // MARK: Reading

    /// Finishes the detaches whose time has come.
    mutating func settle(_ now: Date) {
        for (id, eni) in enis {
            if let until = eni.attachment?.detachingUntil, until <= now { enis[id]?.attachment = nil }
        }
    }

    func eni(_ id: String) throws(EC2Failure) -> ENI {
        guard let eni = enis[id] else { throw Self.eniNotFound(id) }
        return eni
    }

    static func eniNotFound(_ id: String) -> EC2Failure {
        EC2Failure("InvalidNetworkInterfaceID.NotFound", "The networkInterface ID '\(id)' does not exist")
    }

    func subnet(_ id: String) throws(EC2Failure) -> Subnet {
        guard let subnet = subnets[id] else {
            throw EC2Failure("InvalidSubnetID.NotFound", "The subnet ID '\(id)' does not exist")
        }
        return subnet
    }

    /// ENIs attached to this instance, by network card and device index.
    var attached: [ENI] {
        enis.values.filter { $0.attachment?.instanceID == instanceID }
            .sorted {
                ($0.attachment?.card ?? 0, $0.attachment?.deviceIndex ?? 0) < (
                    $1.attachment?.card ?? 0, $1.attachment?.deviceIndex ?? 0
                )
            }
    }

    // MARK: ENIs

    /// What CreateNetworkInterface asks for besides the primary address.
    struct AddressRequest: Sendable, Equatable {
        var secondaryIPv4 = 0
        var ipv4Prefixes = 0
        var ipv6Addresses = 0
        var ipv6Prefixes = 0
    }

    /// CreateNetworkInterface. A repeated `clientToken` with the same `fingerprint` (the other
    /// parameters) answers the ENI it created; with other parameters `IdempotentParameterMismatch`.
    mutating func create(
        subnetID: String, groups: [String], description: String, addresses: AddressRequest, tags: [String: String],
        clientToken: String?, fingerprint: String, now: Date
    ) throws(EC2Failure) -> ENI {
        settle(now)
        if let clientToken, let earlier = clientTokens[clientToken] {
            guard earlier.fingerprint == fingerprint else {
                throw EC2Failure(
                    "IdempotentParameterMismatch",
                    "The client token '\(clientToken)' was already used with different parameters.")
            }
            return enis[earlier.eniID] ?? earlier.snapshot
        }
        var subnet = try subnet(subnetID)
        let primary = try subnet.allocate(1 + addresses.secondaryIPv4)
        let prefixes = try subnet.allocatePrefixes(addresses.ipv4Prefixes)
        let ipv6 = try subnet.allocateIPv6(addresses.ipv6Addresses)
        let ipv6Prefixes = try subnet.allocateIPv6Prefixes(addresses.ipv6Prefixes)
        subnets[subnetID] = subnet
        let primaryENI = enis[primaryENIID]
        let names = Dictionary(
            (primaryENI?.groups ?? []).map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
        let eni = ENI(
            id: uniqueENIID(), mac: uniqueMAC(), subnetID: subnetID, description: description,
            groups: groups.map { SecurityGroup(id: $0, name: names[$0] ?? "") }, tags: tags, ownerID: ownerID,
            privateDNSName: Self.privateDNSName(primary[0], region: region), ipv4: primary, ipv4Prefixes: prefixes,
            ipv6: ipv6, ipv6Prefixes: ipv6Prefixes, attachment: nil, createdAt: now, clientToken: clientToken)
        enis[eni.id] = eni
        if let clientToken { clientTokens[clientToken] = (fingerprint, eni.id, eni) }
        return eni
    }

    /// `ip-a-b-c-d.<region>.compute.internal` (`ec2.internal` in us-east-1).
    static func privateDNSName(_ address: UInt32, region: String) -> String {
        let host = "ip-" + IPv4.format(address).replacingOccurrences(of: ".", with: "-")
        return region == "us-east-1" ? host + ".ec2.internal" : host + ".\(region).compute.internal"
    }

    /// AttachNetworkInterface: the attachment and the event for the attach hook.
    mutating func attach(eniID: String, instanceID: String, deviceIndex: Int, card: Int, now: Date) throws(EC2Failure)
        -> ENIEvent
    {
        settle(now)
        var eni = try eni(eniID)
        guard instanceID == self.instanceID else {
            throw EC2Failure("InvalidInstanceID.NotFound", "The instance ID '\(instanceID)' does not exist")
        }
        if let attachment = eni.attachment {
            if attachment.detachingUntil != nil {
                throw EC2Failure(
                    "IncorrectState", "The network interface '\(eniID)' is detaching; wait until it is available.")
            }
            throw EC2Failure("InvalidNetworkInterface.InUse", "Interface: [\(eniID)] in use.")
        }
        guard deviceIndex >= 0 else {
            throw EC2Failure("InvalidParameterValue", "Value (\(deviceIndex)) for parameter deviceIndex is invalid.")
        }
        let onCard = attached.filter { $0.attachment?.card == card }
        if let limits {
            guard let maximum = limits.interfacesPerCard[card] else {
                throw EC2Failure(
                    "InvalidParameterValue",
                    "Network card index \(card) is not valid for instance type \(limits.instanceType).")
            }
            if onCard.contains(where: { $0.attachment?.deviceIndex == deviceIndex }) {
                throw Self.deviceInUse(instanceID, deviceIndex)
            }
            guard onCard.count < maximum else {
                throw EC2Failure(
                    "AttachmentLimitExceeded", "Interface count \(onCard.count + 1) exceeds the limit for \(limits.instanceType)")
            }
            guard eni.ipv4Slots <= limits.ipv4PerInterface else {
                throw EC2Failure(
                    "PrivateIpAddressLimitExceeded",
                    "The network interface '\(eniID)' has \(eni.ipv4Slots) private IPv4 addresses and prefixes; \(limits.instanceType) allows \(limits.ipv4PerInterface) per network interface."
                )
            }
            if (!eni.ipv4Prefixes.isEmpty || !eni.ipv6Prefixes.isEmpty) && limits.hypervisor == "xen" {
                throw Self.noPrefixes(limits.instanceType)
            }
        } else if onCard.contains(where: { $0.attachment?.deviceIndex == deviceIndex }) {
            throw Self.deviceInUse(instanceID, deviceIndex)
        }
        let attachment = Attachment(
            id: uniqueAttachmentID(), instanceID: instanceID, deviceIndex: deviceIndex, card: card,
            attachTime: ISO8601.format(now), deleteOnTermination: false)
        eni.attachment = attachment
        enis[eniID] = eni
        recordIMDS(now)
        return event(.attach, eni, attachment)
    }

    static func deviceInUse(_ instanceID: String, _ deviceIndex: Int) -> EC2Failure {
        EC2Failure(
            "InvalidParameterValue",
            "Instance '\(instanceID)' already has an interface attached at device index '\(deviceIndex)'.")
    }

    static func noPrefixes(_ instanceType: String) -> EC2Failure {
        EC2Failure(
            "InvalidParameterValue",
            "Prefix delegation is not supported for instance type '\(instanceType)': it is not built on the Nitro System.")
    }

    func event(_ kind: ENIEvent.Kind, _ eni: ENI, _ attachment: Attachment) -> ENIEvent {
        let cidr = subnets[eni.subnetID]?.cidr.description ?? ""
        return ENIEvent(
            kind: kind, networkInterfaceId: eni.id, macAddress: eni.mac, attachmentId: attachment.id,
            instanceId: attachment.instanceID, deviceIndex: attachment.deviceIndex, networkCardIndex: attachment.card,
            primaryIPv4: eni.ipv4.first.map(IPv4.format), subnetCidr: cidr)
    }

    /// The ENI holding an attachment.
    func eniID(attachment id: String) throws(EC2Failure) -> String {
        guard let eni = enis.values.first(where: { $0.attachment?.id == id }) else {
            throw EC2Failure("InvalidAttachmentID.NotFound", "The attachment ID '\(id)' does not exist")
        }
        return eni.id
    }

    /// ModifyNetworkInterfaceAttribute's `Attachment.*`, `Description.Value` and `SecurityGroupId.N`.
    mutating func modify(
        eniID: String, attachmentID: String?, deleteOnTermination: Bool?, description: String?, groups: [String]?,
        now: Date
    ) throws(EC2Failure) {
        settle(now)
        var eni = try eni(eniID)
        if let attachmentID {
            guard eni.attachment?.id == attachmentID else {
                throw EC2Failure("InvalidAttachmentID.NotFound", "The attachment ID '\(attachmentID)' does not exist")
            }
            if let deleteOnTermination { eni.attachment?.deleteOnTermination = deleteOnTermination }
        }
        if let description { eni.description = description }
        if let groups {
            let names = Dictionary(eni.groups.map { ($0.id, $0.name) }, uniquingKeysWith: { a, _ in a })
            eni.groups = groups.map { SecurityGroup(id: $0, name: names[$0] ?? "") }
        }
        enis[eniID] = eni
        recordIMDS(now)
    }

    /// DetachNetworkInterface: `detaching` for `detachLagMs`, then `available`. The event is for the detach hook.
    mutating func detach(attachmentID: String, now: Date) throws(EC2Failure) -> ENIEvent {
        settle(now)
        let eniID = try eniID(attachment: attachmentID)
        guard var eni = enis[eniID], let attachment = eni.attachment else {
            throw EC2Failure("InvalidAttachmentID.NotFound", "The attachment ID '\(attachmentID)' does not exist")
        }
        guard attachment.detachingUntil == nil else {
            throw EC2Failure("IncorrectState", "The attachment '\(attachmentID)' is already detaching.")
        }
        guard attachment.deviceIndex != 0 else {
            throw EC2Failure(
                "OperationNotPermitted",
                "The network interface at device index 0 and networkCard index \(attachment.card) cannot be detached.")
        }
        if detachLagMs > 0 {
            eni.attachment?.detachingUntil = now.addingTimeInterval(Double(detachLagMs) / 1000)
        } else {
            eni.attachment = nil
        }
        enis[eniID] = eni
        recordIMDS(now)
        return event(.detach, eni, attachment)
    }

    /// DeleteNetworkInterface: its addresses go back to the subnet. An attached (or detaching)
    /// ENI is refused as EC2 refuses it.
    mutating func delete(eniID: String, now: Date) throws(EC2Failure) {
        settle(now)
        let eni = try eni(eniID)
        guard eni.attachment == nil else {
            throw EC2Failure("InvalidParameterValue", "Network interface '\(eniID)' is currently in use.")
        }
        if var subnet = subnets[eni.subnetID] {
            for address in eni.ipv4 { subnet.release(address) }
            for block in eni.ipv4Prefixes { subnet.releasePrefix(block) }
            subnet.usedIPv6.subtract(eni.ipv6)
            subnet.ipv6Prefixes.subtract(eni.ipv6Prefixes)
            subnets[eni.subnetID] = subnet
        }
        enis[eniID] = nil
    }

    // MARK: Addresses

    /// The IPv4 slot limit of an attached ENI, when it is attached to this instance and the type is known.
    func ipv4Limit(_ eni: ENI) -> Int? {
        eni.attachment?.instanceID == instanceID ? limits?.ipv4PerInterface : nil
    }

    /// AssignPrivateIpAddresses: `count` secondary addresses or `prefixCount` /28 prefixes.
    mutating func assignIPv4(eniID: String, count: Int, prefixCount: Int, now: Date) throws(EC2Failure) -> (
        addresses: [UInt32], prefixes: [UInt32]
    ) {
        settle(now)
        var eni = try eni(eniID)
        let wanted = count + prefixCount
        if let limit = ipv4Limit(eni), eni.ipv4Slots + wanted > limit {
            throw EC2Failure(
                "PrivateIpAddressLimitExceeded",
                "Number of private addresses will exceed limit: \(eniID) has \(eni.ipv4Slots) of \(limit) IPv4 addresses and prefixes (\(limits?.instanceType ?? instanceType)); \(wanted) more asked for."
            )
        }
        if prefixCount > 0, eni.attachment?.instanceID == instanceID, let limits, limits.hypervisor == "xen" {
            throw Self.noPrefixes(limits.instanceType)
        }
        var subnet = try subnet(eni.subnetID)
        let addresses = try subnet.allocate(count)
        let prefixes = try subnet.allocatePrefixes(prefixCount)
        subnets[eni.subnetID] = subnet
        eni.ipv4 += addresses
        eni.ipv4Prefixes += prefixes
        enis[eniID] = eni
        recordIMDS(now)
        return (addresses, prefixes)
    }

    /// UnassignPrivateIpAddresses. Every address and prefix must be on the ENI (else nothing changes).
    mutating func unassignIPv4(eniID: String, addresses: [UInt32], prefixes: [UInt32], now: Date) throws(EC2Failure) {
        settle(now)
        var eni = try eni(eniID)
        if let primary = eni.ipv4.first, addresses.contains(primary) {
            throw EC2Failure(
                "InvalidParameterValue",
                "The primary private IP address \(IPv4.format(primary)) of \(eniID) cannot be unassigned.")
        }
        let missing =
            addresses.filter { !eni.ipv4.contains($0) }.map(IPv4.format)
            + prefixes.filter { !eni.ipv4Prefixes.contains($0) }.map { "\(IPv4.format($0))/28" }
        guard missing.isEmpty else {
            throw EC2Failure(
                "InvalidParameterValue",
                "Some of the specified addresses are not assigned to interface \(eniID): \(missing.joined(separator: ", "))")
        }
        eni.ipv4.removeAll { addresses.contains($0) }
        eni.ipv4Prefixes.removeAll { prefixes.contains($0) }
        if var subnet = subnets[eni.subnetID] {
            for address in addresses { subnet.release(address) }
            for block in prefixes { subnet.releasePrefix(block) }
            subnets[eni.subnetID] = subnet
        }
        enis[eniID] = eni
        recordIMDS(now)
    }

    /// AssignIpv6Addresses: `count` addresses or `prefixCount` /80 prefixes.
    mutating func assignIPv6(eniID: String, count: Int, prefixCount: Int, now: Date) throws(EC2Failure) -> (
        addresses: [UInt128], prefixes: [UInt128]
    ) {
        settle(now)
        var eni = try eni(eniID)
        if eni.attachment?.instanceID == instanceID, let limits {
            let held = eni.ipv6.count + eni.ipv6Prefixes.count
            if held + count + prefixCount > limits.ipv6PerInterface {
                throw EC2Failure(
                    "PrivateIpAddressLimitExceeded",
                    "Number of IPv6 addresses will exceed limit: \(eniID) has \(held) of \(limits.ipv6PerInterface) IPv6 addresses and prefixes (\(limits.instanceType))."
                )
            }
            if prefixCount > 0 && limits.hypervisor == "xen" { throw Self.noPrefixes(limits.instanceType) }
        }
        var subnet = try subnet(eni.subnetID)
        let addresses = try subnet.allocateIPv6(count)
        let prefixes = try subnet.allocateIPv6Prefixes(prefixCount)
        subnets[eni.subnetID] = subnet
        eni.ipv6 += addresses
        eni.ipv6Prefixes += prefixes
        enis[eniID] = eni
        recordIMDS(now)
        return (addresses, prefixes)
    }

    // MARK: Tags

    /// CreateTags on ENIs and subnets; the instance's id is accepted (and its tags not modelled).
    mutating func createTags(resources: [String], tags: [String: String], now: Date) throws(EC2Failure) {
        settle(now)
        for id in resources {
            if id.hasPrefix("eni-") {
                _ = try eni(id)
            } else if id.hasPrefix("subnet-") {
                _ = try subnet(id)
            } else if id != instanceID {
                throw EC2Failure("InvalidID", "The ID '\(id)' is not valid")
            }
        }
        for id in resources {
            for (key, value) in tags {
                enis[id]?.tags[key] = value
                subnets[id]?.tags[key] = value
            }
        }
    }

    // MARK: Identifiers

    mutating func uniqueENIID() -> String {
        while true {
            let id = "eni-" + Self.randomHex(17)
            if enis[id] == nil { return id }
        }
    }

    mutating func uniqueAttachmentID() -> String {
        while true {
            let id = "eni-attach-" + Self.randomHex(17)
            if !enis.values.contains(where: { $0.attachment?.id == id }) { return id }
        }
    }

    /// A locally administered unicast MAC, as VPC ENIs have.
    mutating func uniqueMAC() -> String {
        while true {
            let mac = "02:" + (0..<5).map { _ in Self.randomHex(2) }.joined(separator: ":")
            if !enis.values.contains(where: { $0.mac == mac }) { return mac }
        }
    }

    static func randomHex(_ count: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef")
        return String((0..<count).map { _ in digits[Int.random(in: 0..<16, using: &generator)] })
    }
}
