import Foundation

/// DescribeNetworkInterfaces and DescribeSubnets: ids, filters (values of one filter are
/// alternatives with `*` and `?` wildcards, all filters apply) and paging.
extension NetworkModel {
    /// A page of ENIs, sorted by id, and the token of the next page.
    func describe(ids: [String], filters: [(name: String, values: [String])], maxResults: Int?, nextToken: String?)
        throws(EC2Failure) -> (enis: [ENI], next: String?)
    {
        let unknown = ids.filter { enis[$0] == nil }
        if !unknown.isEmpty {
            throw EC2Failure(
                "InvalidNetworkInterfaceID.NotFound",
                unknown.count == 1
                    ? "The networkInterface ID '\(unknown[0])' does not exist"
                    : "The networkInterface IDs '\(unknown.joined(separator: ", "))' do not exist")
        }
        var selected = (ids.isEmpty ? Array(enis.values) : ids.compactMap { enis[$0] }).sorted { $0.id < $1.id }
        for filter in filters {
            var kept: [ENI] = []
            for eni in selected where Self.matches(try values(filter.name, of: eni), filter.values) { kept.append(eni) }
            selected = kept
        }
        if let nextToken {
            guard let after = Self.pageStart(nextToken) else {
                throw EC2Failure("InvalidParameterValue", "The token '\(nextToken)' is invalid")
            }
            selected = selected.filter { $0.id > after }
        }
        guard let maxResults else { return (selected, nil) }
        guard (5...1000).contains(maxResults) else {
            throw EC2Failure(
                "InvalidParameterValue",
                "Value ( \(maxResults) ) for parameter maxResults is invalid. Expecting a value from 5 to 1000.")
        }
        guard selected.count > maxResults else { return (selected, nil) }
        let page = Array(selected.prefix(maxResults))
        return (page, page.last.map { Self.pageToken(after: $0.id) })
    }

    /// A page token: the last id of the page, opaque to the client.
    static func pageToken(after id: String) -> String {
        Data(("after:" + id).utf8).base64EncodedString()
    }

    static func pageStart(_ token: String) -> String? {
        guard let data = Data(base64Encoded: token) else { return nil }
        let text = String(decoding: data, as: UTF8.self)
        guard text.hasPrefix("after:") else { return nil }
        return String(text.dropFirst("after:".count))
    }

    /// The values an ENI has for a filter, or `InvalidParameterValue` for a filter EC2 does not know.
    func values(_ name: String, of eni: ENI) throws(EC2Failure) -> [String] {
        let subnet = subnets[eni.subnetID]
        let attachment = eni.attachment
        switch name {
        case "network-interface-id": return [eni.id]
        case "attachment.instance-id": return attachment.map { [$0.instanceID] } ?? []
        case "attachment.attachment-id": return attachment.map { [$0.id] } ?? []
        case "attachment.device-index": return attachment.map { [String($0.deviceIndex)] } ?? []
        case "attachment.status": return attachment.map { [$0.detachingUntil == nil ? "attached" : "detaching"] } ?? []
        case "attachment.delete-on-termination": return attachment.map { [$0.deleteOnTermination ? "true" : "false"] } ?? []
        case "attachment.instance-owner-id": return attachment.map { _ in [ownerID] } ?? []
        case "availability-zone": return [subnet?.availabilityZone ?? availabilityZone]
        case "description": return [eni.description]
        case "group-id": return eni.groups.map(\.id)
        case "group-name": return eni.groups.map(\.name)
        case "mac-address": return [eni.mac]
        case "owner-id": return [eni.ownerID]
        case "private-ip-address", "addresses.private-ip-address": return eni.ipv4.map(IPv4.format)
        case "private-dns-name": return [eni.privateDNSName]
        case "ipv6-addresses.ipv6-address": return eni.ipv6.map(IPv6.format)
        case "status": return [eni.status]
        case "subnet-id": return [eni.subnetID]
        case "vpc-id": return [subnet?.vpcID ?? vpcID]
        case "tag-key": return Array(eni.tags.keys)
        case "tag-value": return Array(eni.tags.values)
        case _ where name.hasPrefix("tag:"): return eni.tags[String(name.dropFirst(4))].map { [$0] } ?? []
        case "interface-type": return ["interface"]
        case "requester-managed": return ["false"]
        case "source-dest-check": return ["true"]
        default: throw Self.unknownFilter(name)
        }
    }

    static func unknownFilter(_ name: String) -> EC2Failure {
        EC2Failure("InvalidParameterValue", "The filter '\(name)' is invalid")
    }

    /// Subnets by id and filters, sorted by id.
    func describeSubnets(ids: [String], filters: [(name: String, values: [String])]) throws(EC2Failure) -> [Subnet] {
        let unknown = ids.filter { subnets[$0] == nil }
        if !unknown.isEmpty {
            throw EC2Failure(
                "InvalidSubnetID.NotFound",
                unknown.count == 1
                    ? "The subnet ID '\(unknown[0])' does not exist"
                    : "The subnet IDs '\(unknown.joined(separator: ", "))' do not exist")
        }
        var selected = (ids.isEmpty ? Array(subnets.values) : ids.compactMap { subnets[$0] }).sorted { $0.id < $1.id }
        for filter in filters {
            var kept: [Subnet] = []
            for subnet in selected {
                let values: [String]
                switch filter.name {
                case "subnet-id": values = [subnet.id]
                case "vpc-id": values = [subnet.vpcID]
                case "availability-zone": values = [subnet.availabilityZone]
                case "cidr-block", "cidr", "cidrBlock": values = [subnet.cidr.description]
                case "ipv6-cidr-block-association.ipv6-cidr-block": values = subnet.ipv6.map { [$0.description] } ?? []
                case "state": values = ["available"]
                case "default-for-az", "defaultForAz": values = ["false"]
                case "owner-id": values = [ownerID]
                case "tag-key": values = Array(subnet.tags.keys)
                case _ where filter.name.hasPrefix("tag:"):
                    values = subnet.tags[String(filter.name.dropFirst(4))].map { [$0] } ?? []
                default: throw Self.unknownFilter(filter.name)
                }
                if Self.matches(values, filter.values) { kept.append(subnet) }
            }
            selected = kept
        }
        return selected
    }

    /// Whether any of `values` matches any of the filter's `patterns`.
    static func matches(_ values: [String], _ patterns: [String]) -> Bool {
        values.contains { value in patterns.contains { glob($0, value) } }
    }

    /// EC2's filter wildcards: `*` any run of characters, `?` one character.
    static func glob(_ pattern: String, _ text: String) -> Bool {
        let p = Array(pattern)
        let t = Array(text)
        var (pi, ti) = (0, 0)
        var star: (p: Int, t: Int)?
        while ti < t.count {
            if pi < p.count && (p[pi] == "?" || p[pi] == t[ti]) {
                pi += 1
                ti += 1
            } else if pi < p.count && p[pi] == "*" {
                star = (pi, ti)
                pi += 1
            } else if let s = star {
                pi = s.p + 1
                ti = s.t + 1
                star = (s.p, s.t + 1)
            } else {
                return false
            }
        }
        while pi < p.count && p[pi] == "*" { pi += 1 }
        return pi == p.count
    }
}
