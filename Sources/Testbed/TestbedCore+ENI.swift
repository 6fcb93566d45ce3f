import Foundation
import Logging
import Synchronization

/// EC2's ENI API on the network model: parameters as the Query API names them, answers and
/// errors in EC2's XML. Faults and SigV4 apply before these handlers, as for every EC2 action.
extension TestbedCore {
    static let eniActions: Set<String> = [
        "AssignIpv6Addresses", "AssignPrivateIpAddresses", "AttachNetworkInterface", "CreateNetworkInterface",
        "CreateTags", "DeleteNetworkInterface", "DescribeNetworkInterfaces", "DescribeSubnets", "DetachNetworkInterface",
        "ModifyNetworkInterfaceAttribute", "UnassignPrivateIpAddresses",
    ]

    func eniAction(_ action: String, _ call: AWSCall) async -> HTTPResponse {
        let now = Date()
        do throws(EC2Failure) {
            switch action {
            case "CreateNetworkInterface": return try createNetworkInterface(call, now: now)
            case "AttachNetworkInterface":
                let event = try attachNetworkInterface(call, now: now)
                await runHook(event)
                return TestbedCore.ec2Response(
                    action,
                    "    " + XML.element("attachmentId", event.attachmentId)
                        + XML.element("networkCardIndex", String(event.networkCardIndex)) + "\n")
            case "DetachNetworkInterface":
                let attachment = try Parameters(call).required("AttachmentId")
                let event = try state.withLock { state throws(EC2Failure) in
                    try state.network.detach(attachmentID: attachment, now: now)
                }
                await runHook(event)
                logger.info("testbed ec2: \(event.networkInterfaceId) detached from device \(event.deviceIndex)")
                return TestbedCore.ec2Return(action)
            case "DeleteNetworkInterface":
                let id = try Parameters(call).required("NetworkInterfaceId")
                try state.withLock { state throws(EC2Failure) in try state.network.delete(eniID: id, now: now) }
                return TestbedCore.ec2Return(action)
            case "ModifyNetworkInterfaceAttribute":
                let parameters = Parameters(call)
                let id = try parameters.required("NetworkInterfaceId")
                let attachment = call.parameter("Attachment.AttachmentId")
                let deleteOnTermination = try parameters.bool("Attachment.DeleteOnTermination")
                let groups = call.list("SecurityGroupId")
                try state.withLock { state throws(EC2Failure) in
                    try state.network.modify(
                        eniID: id, attachmentID: attachment, deleteOnTermination: deleteOnTermination,
                        description: call.parameter("Description.Value"), groups: groups.isEmpty ? nil : groups, now: now)
                }
                return TestbedCore.ec2Return(action)
            case "DescribeNetworkInterfaces": return try describeNetworkInterfaces(call, now: now)
            case "AssignPrivateIpAddresses": return try assignPrivateIpAddresses(call, now: now)
            case "UnassignPrivateIpAddresses": return try unassignPrivateIpAddresses(call, now: now)
            case "AssignIpv6Addresses": return try assignIpv6Addresses(call, now: now)
            case "CreateTags":
                let resources = call.list("ResourceId")
                guard !resources.isEmpty else { throw Parameters.missing("ResourceId.1") }
                let tags = try Parameters(call).tags("Tag")
                try state.withLock { state throws(EC2Failure) in
                    try state.network.createTags(resources: resources, tags: tags, now: now)
                }
                return TestbedCore.ec2Return(action)
            case "DescribeSubnets": return try describeSubnets(call, now: now)
            default:
                return TestbedCore.ec2Error(400, "InvalidAction", "The action \(action) is not valid for this web service.")
            }
        } catch {
            return TestbedCore.ec2Error(error.status, error.code, error.message)
        }
    }

    /// `<return>true</return>`, the answer of the calls that only succeed or fail.
    static func ec2Return(_ action: String) -> HTTPResponse {
        ec2Response(action, "    <return>true</return>\n")
    }

    func runHook(_ event: ENIEvent) async {
        let hook = networkHooks.withLock { $0 }
        switch event.kind {
        case .attach: await hook.onAttach?(event)
        case .detach: await hook.onDetach?(event)
        }
    }

    // MARK: Actions

    func createNetworkInterface(_ call: AWSCall, now: Date) throws(EC2Failure) -> HTTPResponse {
        let parameters = Parameters(call)
        let subnet = try parameters.required("SubnetId")
        var addresses = NetworkModel.AddressRequest()
        addresses.secondaryIPv4 = try parameters.count("SecondaryPrivateIpAddressCount")
        addresses.ipv4Prefixes = try parameters.count("Ipv4PrefixCount")
        addresses.ipv6Addresses = try parameters.count("Ipv6AddressCount")
        addresses.ipv6Prefixes = try parameters.count("Ipv6PrefixCount")
        if addresses.secondaryIPv4 > 0 && addresses.ipv4Prefixes > 0 {
            throw EC2Failure(
                "InvalidParameterCombination",
                "SecondaryPrivateIpAddressCount and Ipv4PrefixCount cannot be specified together.")
        }
        var tags: [String: String] = [:]
        var index = 1
        while let type = call.parameter("TagSpecification.\(index).ResourceType") {
            guard type == "network-interface" else {
                throw EC2Failure(
                    "InvalidParameterValue", "'\(type)' is not a valid taggable resource type for this operation.")
            }
            tags.merge(try parameters.tags("TagSpecification.\(index).Tag")) { $1 }
            index += 1
        }
        let token = call.parameter("ClientToken")
        if let token, token.isEmpty || token.count > 64 || !token.allSatisfy(\.isASCII) {
            throw EC2Failure("InvalidParameterValue", "The client token must be 1 to 64 ASCII characters.")
        }
        let fingerprint = call.parameters
            .filter { !["Action", "Version", "ClientToken"].contains($0.name) && !$0.name.hasPrefix("X-Amz-") }
            .map { "\($0.name)=\($0.value)" }.sorted().joined(separator: "&")
        let description = call.parameter("Description") ?? ""
        let groups = call.list("SecurityGroupId")
        let item = try state.withLock { state throws(EC2Failure) in
            let eni = try state.network.create(
                subnetID: subnet, groups: groups, description: description, addresses: addresses, tags: tags,
                clientToken: token, fingerprint: fingerprint, now: now)
            return TestbedCore.eniXML(eni, in: state.network, forInstance: false)
        }
        var inner = "    <networkInterface>" + item.dropFirst("<item>".count).dropLast("</item>".count) + "</networkInterface>\n"
        if let token { inner += "    " + XML.element("clientToken", token) + "\n" }
        return TestbedCore.ec2Response("CreateNetworkInterface", inner)
    }

    func attachNetworkInterface(_ call: AWSCall, now: Date) throws(EC2Failure) -> ENIEvent {
        let parameters = Parameters(call)
        let eni = try parameters.required("NetworkInterfaceId")
        let instance = try parameters.required("InstanceId")
        guard let device = try parameters.int("DeviceIndex") else { throw Parameters.missing("DeviceIndex") }
        let card = try parameters.int("NetworkCardIndex") ?? 0
        let event = try state.withLock { state throws(EC2Failure) in
            try state.network.attach(eniID: eni, instanceID: instance, deviceIndex: device, card: card, now: now)
        }
        logger.info("testbed ec2: \(eni) attached at device \(device) (card \(card)) as \(event.attachmentId)")
        return event
    }

    func describeNetworkInterfaces(_ call: AWSCall, now: Date) throws(EC2Failure) -> HTTPResponse {
        let parameters = Parameters(call)
        let ids = call.list("NetworkInterfaceId")
        let filters = try parameters.filters()
        let maxResults = try parameters.int("MaxResults")
        if maxResults != nil && !ids.isEmpty {
            throw EC2Failure(
                "InvalidParameterCombination", "The parameter NetworkInterfaceIds cannot be used with the parameter MaxResults")
        }
        let token = call.parameter("NextToken")
        let (items, next) = try state.withLock { state throws(EC2Failure) in
            state.network.settle(now)
            let page = try state.network.describe(ids: ids, filters: filters, maxResults: maxResults, nextToken: token)
            return (page.enis.map { TestbedCore.eniXML($0, in: state.network, forInstance: false) }.joined(), page.next)
        }
        var inner = "    <networkInterfaceSet>" + items + "</networkInterfaceSet>\n"
        if let next { inner += "    " + XML.element("nextToken", next) + "\n" }
        return TestbedCore.ec2Response("DescribeNetworkInterfaces", inner)
    }

    func assignPrivateIpAddresses(_ call: AWSCall, now: Date) throws(EC2Failure) -> HTTPResponse {
        let parameters = Parameters(call)
        let eni = try parameters.required("NetworkInterfaceId")
        let count = try parameters.count("SecondaryPrivateIpAddressCount")
        let prefixCount = try parameters.count("Ipv4PrefixCount")
        if !call.list("PrivateIpAddress").isEmpty || !call.list("Ipv4Prefix").isEmpty {
            throw EC2Failure(
                "InvalidParameterValue",
                "The testbed assigns addresses by count only (SecondaryPrivateIpAddressCount or Ipv4PrefixCount).")
        }
        switch (count > 0, prefixCount > 0) {
        case (false, false):
            throw EC2Failure(
                "MissingParameter",
                "The request must contain the parameter SecondaryPrivateIpAddressCount, PrivateIpAddress, Ipv4PrefixCount or Ipv4Prefix"
            )
        case (true, true):
            throw EC2Failure(
                "InvalidParameterCombination",
                "SecondaryPrivateIpAddressCount and Ipv4PrefixCount cannot be specified together.")
        default: break
        }
        let assigned = try state.withLock { state throws(EC2Failure) in
            try state.network.assignIPv4(eniID: eni, count: count, prefixCount: prefixCount, now: now)
        }
        var inner = "    " + XML.element("networkInterfaceId", eni) + "\n"
        if !assigned.addresses.isEmpty {
            inner +=
                "    <assignedPrivateIpAddressesSet>"
                + assigned.addresses.map { "<item>" + XML.element("privateIpAddress", IPv4.format($0)) + "</item>" }.joined()
                + "</assignedPrivateIpAddressesSet>\n"
        }
        if !assigned.prefixes.isEmpty {
            inner +=
                "    <assignedIpv4PrefixSet>"
                + assigned.prefixes.map { "<item>" + XML.element("ipv4Prefix", IPv4.format($0) + "/28") + "</item>" }
                .joined() + "</assignedIpv4PrefixSet>\n"
        }
        return TestbedCore.ec2Response("AssignPrivateIpAddresses", inner)
    }

    func unassignPrivateIpAddresses(_ call: AWSCall, now: Date) throws(EC2Failure) -> HTTPResponse {
        let eni = try Parameters(call).required("NetworkInterfaceId")
        var addresses: [UInt32] = []
        for text in call.list("PrivateIpAddress") {
            guard let address = IPv4.parse(text) else {
                throw EC2Failure("InvalidParameterValue", "Invalid value '\(text)' for PrivateIpAddress")
            }
            addresses.append(address)
        }
        var prefixes: [UInt32] = []
        for text in call.list("Ipv4Prefix") {
            guard let cidr = IPv4CIDR(text), cidr.length == 28 else {
                throw EC2Failure("InvalidParameterValue", "Invalid value '\(text)' for Ipv4Prefix: not a /28 prefix")
            }
            prefixes.append(cidr.base)
        }
        guard !addresses.isEmpty || !prefixes.isEmpty else {
            throw EC2Failure("MissingParameter", "The request must contain the parameter PrivateIpAddress or Ipv4Prefix")
        }
        try state.withLock { state throws(EC2Failure) in
            try state.network.unassignIPv4(eniID: eni, addresses: addresses, prefixes: prefixes, now: now)
        }
        return TestbedCore.ec2Return("UnassignPrivateIpAddresses")
    }

    func assignIpv6Addresses(_ call: AWSCall, now: Date) throws(EC2Failure) -> HTTPResponse {
        let parameters = Parameters(call)
        let eni = try parameters.required("NetworkInterfaceId")
        let count = try parameters.count("Ipv6AddressCount")
        let prefixCount = try parameters.count("Ipv6PrefixCount")
        guard count > 0 || prefixCount > 0 else {
            throw EC2Failure("MissingParameter", "The request must contain the parameter Ipv6AddressCount or Ipv6PrefixCount")
        }
        let assigned = try state.withLock { state throws(EC2Failure) in
            try state.network.assignIPv6(eniID: eni, count: count, prefixCount: prefixCount, now: now)
        }
        var inner = "    " + XML.element("networkInterfaceId", eni) + "\n"
        if !assigned.addresses.isEmpty {
            inner +=
                "    <assignedIpv6Addresses>"
                + assigned.addresses.map { "<item>" + XML.escape(IPv6.format($0)) + "</item>" }.joined()
                + "</assignedIpv6Addresses>\n"
        }
        if !assigned.prefixes.isEmpty {
            inner +=
                "    <assignedIpv6PrefixSet>"
                + assigned.prefixes.map { "<item>" + XML.escape(IPv6.format($0) + "/80") + "</item>" }.joined()
                + "</assignedIpv6PrefixSet>\n"
        }
        return TestbedCore.ec2Response("AssignIpv6Addresses", inner)
    }

    func describeSubnets(_ call: AWSCall, now: Date) throws(EC2Failure) -> HTTPResponse {
        let ids = call.list("SubnetId")
        let filters = try Parameters(call).filters()
        let items = try state.withLock { state throws(EC2Failure) in
            try state.network.describeSubnets(ids: ids, filters: filters).map {
                TestbedCore.subnetXML($0, in: state.network)
            }.joined()
        }
        return TestbedCore.ec2Response("DescribeSubnets", "    <subnetSet>" + items + "</subnetSet>\n")
    }

    // MARK: XML

    /// One ENI as `<item>…</item>`: DescribeInstances' shape (`forInstance`), or
    /// DescribeNetworkInterfaces' with the zone, tags and the attachment's instance.
    static func eniXML(_ eni: NetworkModel.ENI, in model: NetworkModel, forInstance: Bool) -> String {
        let subnet = model.subnets[eni.subnetID]
        var xml = "<item>" + XML.element("networkInterfaceId", eni.id) + XML.element("subnetId", eni.subnetID)
        xml += XML.element("vpcId", subnet?.vpcID ?? model.vpcID)
        if !forInstance { xml += XML.element("availabilityZone", subnet?.availabilityZone ?? model.availabilityZone) }
        xml += eni.description.isEmpty ? "<description/>" : XML.element("description", eni.description)
        xml += XML.element("ownerId", eni.ownerID)
        if !forInstance { xml += XML.element("requesterManaged", "false") }
        xml += XML.element("status", eni.status) + XML.element("macAddress", eni.mac)
        xml += XML.element("privateIpAddress", eni.ipv4.first.map(IPv4.format) ?? "")
        xml += XML.element("privateDnsName", eni.privateDNSName) + XML.element("sourceDestCheck", "true")
        xml +=
            "<groupSet>"
            + eni.groups.map { "<item>" + XML.element("groupId", $0.id) + XML.element("groupName", $0.name) + "</item>" }
            .joined() + "</groupSet>"
        if let attachment = eni.attachment {
            xml += "<attachment>" + XML.element("attachmentId", attachment.id)
            if !forInstance {
                xml += XML.element("instanceId", attachment.instanceID) + XML.element("instanceOwnerId", model.ownerID)
            }
            xml +=
                XML.element("deviceIndex", String(attachment.deviceIndex))
                + XML.element("status", attachment.detachingUntil == nil ? "attached" : "detaching")
                + XML.element("attachTime", attachment.attachTime)
                + XML.element("deleteOnTermination", attachment.deleteOnTermination ? "true" : "false")
                + XML.element("networkCardIndex", String(attachment.card)) + "</attachment>"
        }
        if !forInstance {
            xml +=
                "<tagSet>"
                + eni.tags.sorted { $0.key < $1.key }.map {
                    "<item>" + XML.element("key", $0.key) + XML.element("value", $0.value) + "</item>"
                }.joined() + "</tagSet>"
        }
        xml += "<privateIpAddressesSet>"
        for (n, address) in eni.ipv4.enumerated() {
            xml +=
                "<item>" + XML.element("privateIpAddress", IPv4.format(address))
                + XML.element("privateDnsName", n == 0 ? eni.privateDNSName : "")
                + XML.element("primary", n == 0 ? "true" : "false") + "</item>"
        }
        xml += "</privateIpAddressesSet>"
        if !forInstance || !eni.ipv4Prefixes.isEmpty {
            xml +=
                "<ipv4PrefixSet>"
                + eni.ipv4Prefixes.map { "<item>" + XML.element("ipv4Prefix", IPv4.format($0) + "/28") + "</item>" }.joined()
                + "</ipv4PrefixSet>"
        }
        xml +=
            "<ipv6AddressesSet>"
            + eni.ipv6.map { "<item>" + XML.element("ipv6Address", IPv6.format($0)) + "</item>" }.joined()
            + "</ipv6AddressesSet>"
        if !forInstance || !eni.ipv6Prefixes.isEmpty {
            xml +=
                "<ipv6PrefixSet>"
                + eni.ipv6Prefixes.map { "<item>" + XML.element("ipv6Prefix", IPv6.format($0) + "/80") + "</item>" }.joined()
                + "</ipv6PrefixSet>"
        }
        return xml + XML.element("interfaceType", "interface") + "</item>"
    }

    static func subnetXML(_ subnet: NetworkModel.Subnet, in model: NetworkModel) -> String {
        var xml =
            "<item>" + XML.element("subnetId", subnet.id)
            + XML.element("subnetArn", "arn:aws:ec2:\(model.region):\(model.ownerID):subnet/\(subnet.id)")
            + XML.element("state", "available") + XML.element("vpcId", subnet.vpcID) + XML.element("ownerId", model.ownerID)
            + XML.element("cidrBlock", subnet.cidr.description) + "<ipv6CidrBlockAssociationSet>"
        if let ipv6 = subnet.ipv6 {
            xml +=
                "<item>" + XML.element("ipv6CidrBlock", ipv6.description)
                + XML.element("associationId", "subnet-cidr-assoc-" + subnet.id.dropFirst("subnet-".count))
                + "<ipv6CidrBlockState><state>associated</state></ipv6CidrBlockState></item>"
        }
        xml +=
            "</ipv6CidrBlockAssociationSet>" + XML.element("availableIpAddressCount", String(subnet.available))
            + XML.element("availabilityZone", subnet.availabilityZone) + XML.element("defaultForAz", "false")
            + XML.element("mapPublicIpOnLaunch", "false") + XML.element("assignIpv6AddressOnCreation", "false")
            + "<tagSet>"
            + subnet.tags.sorted { $0.key < $1.key }.map {
                "<item>" + XML.element("key", $0.key) + XML.element("value", $0.value) + "</item>"
            }.joined() + "</tagSet></item>"
        return xml
    }
}

/// The Query API parameters of one call, read as EC2 reads them.
struct Parameters {
    var call: TestbedCore.AWSCall

    init(_ call: TestbedCore.AWSCall) { self.call = call }

    static func missing(_ name: String) -> EC2Failure {
        EC2Failure("MissingParameter", "The request must contain the parameter \(name)")
    }

    func required(_ name: String) throws(EC2Failure) -> String {
        guard let value = call.parameter(name), !value.isEmpty else { throw Self.missing(name) }
        return value
    }

    func int(_ name: String) throws(EC2Failure) -> Int? {
        guard let text = call.parameter(name) else { return nil }
        guard let value = Int(text) else {
            throw EC2Failure("InvalidParameterValue", "Value (\(text)) for parameter \(name) is invalid. Expected: 'integer'.")
        }
        return value
    }

    /// A count: absent is 0, negative is refused.
    func count(_ name: String) throws(EC2Failure) -> Int {
        let value = try int(name) ?? 0
        guard value >= 0 else {
            throw EC2Failure("InvalidParameterValue", "Value (\(value)) for parameter \(name) is invalid. Must be 0 or more.")
        }
        return value
    }

    func bool(_ name: String) throws(EC2Failure) -> Bool? {
        guard let text = call.parameter(name) else { return nil }
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default:
            throw EC2Failure("InvalidParameterValue", "Value (\(text)) for parameter \(name) is invalid. Expected: 'boolean'.")
        }
    }

    /// `Prefix.N.Key` / `Prefix.N.Value`.
    func tags(_ prefix: String) throws(EC2Failure) -> [String: String] {
        var tags: [String: String] = [:]
        var index = 1
        while let key = call.parameter("\(prefix).\(index).Key") {
            guard !key.isEmpty, key.count <= 128, !key.lowercased().hasPrefix("aws:") else {
                throw EC2Failure("InvalidParameterValue", "Tag key '\(key)' is not valid.")
            }
            tags[key] = call.parameter("\(prefix).\(index).Value") ?? ""
            index += 1
        }
        return tags
    }

    /// `Filter.N.Name` with `Filter.N.Value.M`.
    func filters() throws(EC2Failure) -> [(name: String, values: [String])] {
        var filters: [(name: String, values: [String])] = []
        var index = 1
        while let name = call.parameter("Filter.\(index).Name") {
            let values = call.list("Filter.\(index).Value")
            guard !values.isEmpty else {
                throw EC2Failure("InvalidParameterValue", "The filter '\(name)' needs at least one value.")
            }
            filters.append((name, values))
            index += 1
        }
        return filters
    }
}
