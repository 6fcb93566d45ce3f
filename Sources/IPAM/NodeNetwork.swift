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

    /// Undoes `ensure` for a freed ENI at `device` (its link is gone or going): the rule from its
    /// address to its table, and whatever routes the table still holds. Without this a later
    /// ENI (or a pod given that address) would be sent out of a table that leads nowhere.
    /// Returns what it removed; nothing to remove is not an error.
    public static func unwire(device: Int, netlink: RouteNetlink) throws(NetlinkError) -> [String] {
        guard device != 0 else { return [] }
        let table = UInt32(ENIState.routeTable(device: device))
        var done: [String] = []
        for rule in try netlink.rules(family: .inet) where rule.table == table && rule.priority == eniRulePriority {
            do {
                try netlink.deleteRule(rule)
                done.append("rule \(rule) removed")
            } catch  where error.isNotFound {
            }
        }
        for route in try netlink.routes(family: .inet, table: table) {
            do {
                try netlink.deleteRoute(route)
                done.append("table \(table): \(route.destination) removed")
            } catch  where error.isNotFound {
            }
        }
        return done
    }

    /// The priority of the rule that sends marked pod traffic through main (vpc-cni.md §9).
    public static let markRulePriority: UInt32 = 1024

    /// `fwmark 0x80/0x80 lookup main prio 1024`: packets the packet filter marked (a pod's
    /// connection out of the VPC, replies of a NodePort connection) leave through main, i.e. the
    /// primary interface, whatever ENI the pod's address is on.
    public static var markRule: Rule {
        Rule(priority: markRulePriority, fwmark: PacketFilter.mark, fwmask: PacketFilter.mark, table: Route.mainTable)
    }

    /// The node-wide part of §5 (the packet filter is `PacketFilter`): the mark rule, present
    /// unless external SNAT is on and then removed; `net/ipv4/ip_forward = 1`; loose reverse-path
    /// filtering (`rp_filter = 2`, aws-node #75) on the link of each MAC in `eniMACs` (every ENI
    /// that carries pod traffic, the primary included). Returns what it changed, for the journal;
    /// a second run with the same inputs returns only the notes about links not there. `sysctl`
    /// is the root of the sysctl tree (`/proc/sys`; a directory in tests). An IPv6 node also
    /// forwards IPv6 and keeps accepting router advertisements on its ENIs (`accept_ra = 2`:
    /// forwarding alone would stop them, and with them the default route). Throws `NetlinkError`
    /// for netlink and `IPAMError` for a sysctl that cannot be written.
    public static func ensureHost(
        eniMACs: [String], settings: Settings, netlink: RouteNetlink, sysctl: String = "/proc/sys", ipv6: Bool = false
    ) throws -> [String] {
        var done: [String] = []
        if let note = try ensureMarkRule(present: !settings.externalSNAT, netlink: netlink) { done.append(note) }
        if try setSysctl(sysctl, "net/ipv4/ip_forward", "1") { done.append("ip_forward 1") }
        if ipv6, try setSysctl(sysctl, "net/ipv6/conf/all/forwarding", "1") { done.append("IPv6 forwarding 1") }
        let links = try netlink.links()
        for mac in eniMACs {
            guard let link = links.first(where: { $0.address?.description == mac.lowercased() }) else {
                done.append("no link has MAC \(mac) (yet): rp_filter not set")
                continue
            }
            if try setSysctl(sysctl, "net/ipv4/conf/\(link.name)/rp_filter", "2") { done.append("\(link.name): rp_filter 2") }
            if ipv6, try setSysctl(sysctl, "net/ipv6/conf/\(link.name)/accept_ra", "2") {
                done.append("\(link.name): accept_ra 2")
            }
        }
        return done
    }

    /// Adds or deletes `markRule`; what it did, or nil when it was so already.
    static func ensureMarkRule(present: Bool, netlink: RouteNetlink) throws(NetlinkError) -> String? {
        let rule = markRule
        if present {
            do {
                try netlink.addRule(rule)
                return "rule \(rule)"
            } catch  where error.isExists {
                return nil
            }
        }
        do {
            try netlink.deleteRule(rule)
            return "rule \(rule) removed (external SNAT)"
        } catch  where error.isNotFound {
            return nil
        }
    }

    /// The name of the link with this MAC (the primary interface for `PacketFilter`), or nil.
    public static func linkName(mac: String, netlink: RouteNetlink) throws(NetlinkError) -> String? {
        try netlink.links().first(where: { $0.address?.description == mac.lowercased() })?.name
    }

    /// Writes `root/name` when its value differs from `value`; true when it wrote. A sysctl that
    /// cannot be read or written is an error naming it.
    static func setSysctl(_ root: String, _ name: String, _ value: String) throws(IPAMError) -> Bool {
        let path = root + "/" + name
        let dotted = name.split(separator: "/").joined(separator: ".")
        func failure(_ verb: String) -> IPAMError {
            let reason = String(cString: strerror(errno))
            return IPAMError(
                "ipamd: cannot \(verb) \(path) (sysctl \(dotted) = \(value)): \(reason); ipamd must run as root in the node's network namespace with /proc/sys writable"
            )
        }
        var current = [UInt8](repeating: 0, count: 16)
        let reader = open(path, O_RDONLY | O_CLOEXEC)
        guard reader >= 0 else { throw failure("read") }
        let count = read(reader, &current, current.count)
        close(reader)
        if count > 0, String(decoding: current[..<count], as: UTF8.self).trimmed == value { return false }
        let writer = open(path, O_WRONLY | O_CLOEXEC | O_TRUNC)
        guard writer >= 0 else { throw failure("write") }
        defer { close(writer) }
        guard Array((value + "\n").utf8).withUnsafeBytes({ write(writer, $0.baseAddress, $0.count) }) == value.utf8.count + 1
        else {
            throw failure("write")
        }
        return true
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
