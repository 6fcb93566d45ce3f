import Foundation

/// IMDS's `network/interfaces/macs/` rendered from the network model, each change visible after
/// `imdsLagMs`. The ENIs the instance starts with keep their documents from the instance
/// description byte for byte; a field is rendered anew only once the model changes it.
extension NetworkModel {
    static let macsPrefix = "/latest/meta-data/network/interfaces/macs/"

    /// What IMDS shows of one attached ENI, before rendering.
    struct IMDSView: Equatable {
        var deviceIndex: Int
        var card: Int
        var id: String
        var mac: String
        var ownerID: String
        var subnetID: String
        var subnetCIDR: String
        var subnetIPv6CIDRs: [String]
        var vpcID: String
        var vpcCIDRs: [String]
        var vpcIPv6CIDRs: [String]
        var groupIDs: [String]
        var groupNames: [String]
        var ipv4s: [String]
        var hostname: String
        var ipv4Prefixes: [String]
        var ipv6s: [String]
        var ipv6Prefixes: [String]

        /// Document name (below `macs/<mac>/`) → text; lists one item per line, empty lists absent (404).
        func render() -> [String: String] {
            var out: [String: String] = [
                "device-number": String(deviceIndex), "network-card": String(card), "interface-id": id, "mac": mac,
                "owner-id": ownerID, "subnet-id": subnetID, "subnet-ipv4-cidr-block": subnetCIDR, "vpc-id": vpcID,
            ]
            func list(_ key: String, _ values: [String]) {
                if !values.isEmpty { out[key] = values.joined(separator: "\n") }
            }
            list("subnet-ipv6-cidr-blocks", subnetIPv6CIDRs)
            list("vpc-ipv4-cidr-block", Array(vpcCIDRs.prefix(1)))
            list("vpc-ipv4-cidr-blocks", vpcCIDRs)
            list("vpc-ipv6-cidr-blocks", vpcIPv6CIDRs)
            list("security-group-ids", groupIDs)
            list("security-groups", groupNames.filter { !$0.isEmpty })
            list("local-ipv4s", ipv4s)
            if !ipv4s.isEmpty && !hostname.isEmpty { out["local-hostname"] = hostname }
            list("ipv4-prefix", ipv4Prefixes)
            list("ipv6s", ipv6s)
            list("ipv6-prefix", ipv6Prefixes)
            return out
        }
    }

    struct IMDSState: Sendable {
        /// The instance's IMDS documents outside `macs/<mac>/` of the ENIs it starts with.
        var others: [String: String] = [:]
        /// MAC → the starting documents below `macs/<mac>/`, as the instance description made them.
        var base: [String: [String: String]] = [:]
        /// MAC → the starting ENI's facts rendered: a field whose rendering still equals this keeps its base document.
        var initial: [String: [String: String]] = [:]
        /// MAC → documents below `macs/<mac>/`, from the given time on (oldest first).
        var history: [(at: Date, macs: [String: [String: String]])] = []

        init() {}

        init(instance: InstanceModel) {
            var others = instance.documents
            for interface in instance.interfaces {
                let prefix = NetworkModel.macsPrefix + interface.mac + "/"
                var documents: [String: String] = [:]
                for (path, text) in instance.documents where path.hasPrefix(prefix) {
                    documents[String(path.dropFirst(prefix.count))] = text
                    others[path] = nil
                }
                base[interface.mac] = documents
                initial[interface.mac] = IMDSView(
                    deviceIndex: interface.deviceNumber, card: interface.networkCard, id: interface.interfaceID,
                    mac: interface.mac, ownerID: interface.ownerID, subnetID: interface.subnetID,
                    subnetCIDR: interface.subnetIPv4CIDR, subnetIPv6CIDRs: interface.subnetIPv6CIDRs,
                    vpcID: interface.vpcID, vpcCIDRs: interface.vpcIPv4CIDRs, vpcIPv6CIDRs: interface.vpcIPv6CIDRs,
                    groupIDs: interface.securityGroupIDs, groupNames: interface.securityGroupNames,
                    ipv4s: interface.localIPv4s, hostname: interface.privateDNSName, ipv4Prefixes: [],
                    ipv6s: interface.ipv6s, ipv6Prefixes: []
                ).render()
            }
            self.others = others
        }
    }

    func view(_ eni: ENI) -> IMDSView? {
        guard let attachment = eni.attachment else { return nil }
        let subnet = subnets[eni.subnetID]
        return IMDSView(
            deviceIndex: attachment.deviceIndex, card: attachment.card, id: eni.id, mac: eni.mac, ownerID: eni.ownerID,
            subnetID: eni.subnetID, subnetCIDR: subnet?.cidr.description ?? "",
            subnetIPv6CIDRs: subnet?.ipv6.map { [$0.description] } ?? [], vpcID: subnet?.vpcID ?? vpcID,
            vpcCIDRs: vpcCIDRs, vpcIPv6CIDRs: vpcIPv6CIDRs, groupIDs: eni.groups.map(\.id),
            groupNames: eni.groups.map(\.name), ipv4s: eni.ipv4.map(IPv4.format), hostname: eni.privateDNSName,
            ipv4Prefixes: eni.ipv4Prefixes.map { IPv4.format($0) + "/28" }, ipv6s: eni.ipv6.map(IPv6.format),
            ipv6Prefixes: eni.ipv6Prefixes.map { IPv6.format($0) + "/80" })
    }

    /// MAC → documents of every ENI attached to the instance and not detaching.
    func renderIMDS() -> [String: [String: String]] {
        var macs: [String: [String: String]] = [:]
        for eni in attached where eni.attachment?.detachingUntil == nil {
            guard let rendered = view(eni)?.render() else { continue }
            var documents = imds.base[eni.mac] ?? [:]
            let initial = imds.initial[eni.mac] ?? [:]
            for key in Set(rendered.keys).union(initial.keys) where rendered[key] != initial[key] {
                documents[key] = rendered[key]
            }
            macs[eni.mac] = documents
        }
        return macs
    }

    /// Notes the current state; IMDS shows it from `now + imdsLagMs` on.
    mutating func recordIMDS(_ now: Date) {
        let macs = renderIMDS()
        guard imds.history.last?.macs != macs else { return }
        imds.history.append((now, macs))
        // States older than the newest one already visible can never be shown again.
        let horizon = now.addingTimeInterval(-Double(imdsLagMs) / 1000)
        if let visible = imds.history.lastIndex(where: { $0.at <= horizon }), visible > 0 {
            imds.history.removeFirst(visible)
        }
    }

    /// Every IMDS document by path, `macs/` as of `imdsLagMs` ago.
    func imdsDocuments(now: Date) -> [String: String] {
        let horizon = now.addingTimeInterval(-Double(imdsLagMs) / 1000)
        guard let snapshot = imds.history.last(where: { $0.at <= horizon }) ?? imds.history.first else {
            return imds.others
        }
        var documents = imds.others
        for (mac, files) in snapshot.macs {
            for (name, text) in files { documents[Self.macsPrefix + mac + "/" + name] = text }
        }
        return documents
    }
}
