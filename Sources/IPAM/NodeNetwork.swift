public import AWS
public import Netlink
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// The node side of an ENI (docs/ipamd.md §5, vpc-cni.md §1 row 19): its link found by MAC,
/// the MTU, up, loose reverse-path filtering; for a secondary ENI (device d) also its primary
/// address, its own route table d+1 (the subnet router on the link, the default route via it),
/// the rule sending traffic from its primary address to that table, and the subnet route it
/// would otherwise add to main removed. Idempotent: what is already there counts as done.
public struct ENIWiring: Sendable, Equatable {
    public var mac: String
    public var device: Int
    /// The ENI's own address (the first local-ipv4) and its subnet.
    public var primaryAddress: IPAddress
    public var subnet: IPPrefix
    public var mtu: UInt32

    public init(mac: String, device: Int, primaryAddress: IPAddress, subnet: IPPrefix, mtu: UInt32) {
        self.mac = mac
        self.device = device
        self.primaryAddress = primaryAddress
        self.subnet = subnet
        self.mtu = mtu
    }

    /// From IMDS's view of the ENI: its first local-ipv4 and its subnet; nil when IMDS lacks them.
    public init?(_ interface: AWS.NetworkInterface, device: Int, mtu: Int) {
        guard let first = interface.localIPv4s.first, let address = IPAddress(first),
            let subnet = interface.subnetIPv4CIDRBlock.flatMap({ IPPrefix($0) })
        else { return nil }
        self.init(mac: interface.mac, device: device, primaryAddress: address, subnet: subnet, mtu: UInt32(mtu))
    }

    /// The ENI's route table: main for the primary ENI, else device + 1.
    public var table: UInt32 { UInt32(ENIState.routeTable(device: device)) }

    /// The VPC router of the subnet: its first address + 1.
    public var gateway: IPAddress? {
        guard let base = subnet.network.v4Value else { return nil }
        return IPAddress(v4: base &+ 1)
    }
}

public enum NodeNetwork {
    /// The priority of the rule for an ENI's own address (vpc-cni.md §9).
    public static let eniRulePriority: UInt32 = 32765

    /// Wires one ENI; returns what it did, for the journal. No link with the ENI's MAC: nothing
    /// is done and the note says so (a container sharing a host's network), or, `requireLink`,
    /// an error (a new ENI: IMDS ahead of the kernel; the caller looks again).
    public static func ensure(
        _ eni: ENIWiring, netlink: RouteNetlink, sysctl: String = "/proc/sys", requireLink: Bool = false
    ) throws(NetlinkError) -> [String] {
        guard let link = try netlink.links().first(where: { $0.address?.description == eni.mac.lowercased() }) else {
            if requireLink {
                throw NetlinkError(.invalidArgument, "wire device \(eni.device)", detail: "no link has MAC \(eni.mac) yet")
            }
            return ["no link has MAC \(eni.mac) (yet): device \(eni.device) not wired"]
        }
        var done: [String] = []
        if link.mtu != eni.mtu {
            try netlink.setLink(link.device, mtu: eni.mtu)
            done.append("\(link.name): mtu \(eni.mtu)")
        }
        if !link.flags.contains(.up) {
            try netlink.setLink(link.device, up: true)
            done.append("\(link.name): up")
        }
        // Loose reverse-path filtering on every ENI that carries pod traffic (aws-node #75).
        if writeSysctl(sysctl + "/net/ipv4/conf/\(link.name)/rp_filter", "2") { done.append("\(link.name): rp_filter 2") }
        guard eni.device != 0, let gateway = eni.gateway else { return done }
        guard let address = IPPrefix(eni.primaryAddress, length: eni.subnet.length) else { return done }
        func tolerate(_ what: String, _ body: () throws(NetlinkError) -> Void) throws(NetlinkError) {
            do {
                try body()
                done.append("\(link.name): \(what)")
            } catch  where error.isExists {
            }
        }
        try tolerate("address \(address)") { () throws(NetlinkError) in try netlink.addAddress(address, to: link.device) }
        // The kernel adds the subnet route to main with the address; pod traffic from this ENI
        // must use its own table instead.
        do {
            try netlink.deleteRoute(Route(eni.subnet, device: link.device, table: Route.mainTable, origin: .kernel))
            done.append("\(link.name): subnet route removed from main")
        } catch  where error.isNotFound {
        }
        let table = eni.table
        let router = IPPrefix(host: gateway)
        try netlink.replaceRoute(Route(router, device: link.device, table: table, scope: .link))
        let defaultRoute = IPPrefix(IPAddress(v4: 0), length: 0)!
        try netlink.replaceRoute(Route(defaultRoute, gateway: gateway, device: link.device, table: table))
        done.append("\(link.name): table \(table) via \(gateway)")
        try tolerate("rule from \(eni.primaryAddress) lookup \(table)") { () throws(NetlinkError) in
            try netlink.addRule(Rule(priority: eniRulePriority, from: IPPrefix(host: eni.primaryAddress), table: table))
        }
        return done
    }

    /// Writes a sysctl when its value differs; true when it wrote.
    static func writeSysctl(_ path: String, _ value: String) -> Bool {
        var current = [UInt8](repeating: 0, count: 16)
        let reader = open(path, O_RDONLY | O_CLOEXEC)
        if reader >= 0 {
            let count = read(reader, &current, current.count)
            close(reader)
            if count > 0, String(decoding: current[..<count], as: UTF8.self).trimmed == value { return false }
        }
        let writer = open(path, O_WRONLY | O_CLOEXEC)
        guard writer >= 0 else { return false }
        defer { close(writer) }
        return Array(value.utf8).withUnsafeBytes { write(writer, $0.baseAddress, $0.count) } == value.utf8.count
    }
}
