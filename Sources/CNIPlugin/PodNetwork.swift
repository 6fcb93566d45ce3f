public import Netlink

#if canImport(Glibc)
    import Glibc
#endif

/// One pod attachment as the kernel should hold it (vpc-cni.md §5): what ipamd assigned and
/// the names it goes under.
public struct PodAttachment: Sendable, Equatable {
    /// `eni` + 11 hex digits (`hostVethName`), in the host namespace.
    public var hostVeth: String
    /// `CNI_IFNAME` (`eth0`), in the pod's namespace.
    public var ifname: String
    /// The pod's addresses as host prefixes (/32, /128).
    public var addresses: [IPPrefix]
    /// The route table of the ENI the addresses belong to: 254 (main) on the primary ENI.
    public var table: UInt32
    public var mtu: UInt32

    public init(hostVeth: String, ifname: String, addresses: [IPPrefix], table: UInt32, mtu: UInt32) {
        self.hostVeth = hostVeth
        self.ifname = ifname
        self.addresses = addresses
        self.table = table
        self.mtu = mtu
    }
}

/// The two ends of a wired pod.
public struct WiredPod: Sendable, Equatable {
    public var hostMAC: MACAddress?
    public var podMAC: MACAddress?
}

/// The pod's network over rtnetlink, as aws-cni wires it (vpc-cni.md §5), with `host` a socket
/// in the node's namespace and `pod` one opened inside the pod's. No link dump anywhere: links
/// are looked up by name (one `RTM_GETLINK` each).
public struct PodNetwork: Sendable {
    /// The pod's gateway: a link-local address no interface holds; the pod reaches it through a
    /// permanent neighbour entry naming the host veth's MAC.
    public static func gateway(_ family: AddressFamily) -> IPAddress {
        family == .inet ? IPAddress(v4: 0xA9FE_0101) : IPAddress("fe80::1")!
    }

    /// The priorities of the per-pod rules (vpc-cni.md §5, §9): `to <ip> lookup main`, and
    /// `from <ip> lookup <table>` for an address on a secondary ENI.
    public static let toPodPriority: UInt32 = 512
    public static let fromPodPriority: UInt32 = 1536

    public let host: RouteNetlink
    /// The root of the host namespace's sysctl tree (`/proc/sys`; a directory in tests).
    public let sysctl: String

    public init(host: RouteNetlink, sysctl: String = "/proc/sys") {
        self.host = host
        self.sysctl = sysctl
    }

    /// aws-cni's settings of an IPv6 pod's host veth (vpc-cni.md §5), written before it goes up:
    /// no router advertisements taken from the pod, redirects accepted, host (not router)
    /// behaviour on the link. Forwarding between pods follows `all.forwarding`, which ipamd sets.
    static let hostVethIPv6: [(name: String, value: String)] = [
        ("accept_ra", "0"), ("accept_redirects", "1"), ("forwarding", "0"),
    ]

    func setIPv6(_ veth: String) throws(NetlinkError) {
        for (name, value) in Self.hostVethIPv6 {
            let path = "\(sysctl)/net/ipv6/conf/\(veth)/\(name)"
            let descriptor = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC)
            guard descriptor >= 0 else {
                throw NetlinkError(.namespace, "set \(path) to \(value)", errno: errno)
            }
            let bytes = Array(value.utf8)
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            let failure = errno
            close(descriptor)
            guard written == bytes.count else {
                throw NetlinkError(.namespace, "set \(path) to \(value)", errno: written < 0 ? failure : EIO)
            }
        }
    }

    static func paired(_ hostLink: Link, _ podLink: Link) -> Bool {
        hostLink.parentIndex == podLink.index && podLink.parentIndex == hostLink.index
    }

    /// Wires the pod, or finds it wired (a repeated ADD): the veth pair created from the host
    /// with its pod end directly in `namespace` (never moved), both up at the MTU; in the pod the
    /// addresses, the route to the gateway, the default route via it and the gateway's permanent
    /// neighbour entry; on the host the route to each address via the veth and the rules.
    /// A host veth of the same name that is not this pod end's peer is an older sandbox's of the
    /// same pod, and is replaced. On failure what was created is removed (`remove`).
    public func add(_ attachment: PodAttachment, namespace: NetworkNamespace, pod: RouteNetlink) throws(NetlinkError)
        -> WiredPod
    {
        var hostLink = try host.link(named: attachment.hostVeth)
        var podLink = try pod.link(named: attachment.ifname)
        if let existingHost = hostLink, let existingPod = podLink, Self.paired(existingHost, existingPod) {
            // A repeated ADD: the rest below is made idempotent.
        } else {
            if podLink != nil {
                throw NetlinkError(
                    .invalidArgument, "add veth \(attachment.hostVeth) peer \(attachment.ifname) netns \(namespace.path)",
                    detail: "\(attachment.ifname) already exists in the pod's namespace and is not this pod's veth")
            }
            if let stale = hostLink {
                try host.deleteLink(stale.device)
            }
            try host.createVeth(
                attachment.hostVeth, address: Self.hostMAC(attachment.hostVeth), peer: attachment.ifname,
                peerNamespace: namespace, mtu: attachment.mtu)
            hostLink = try host.link(named: attachment.hostVeth)
            podLink = try pod.link(named: attachment.ifname)
        }
        guard let hostLink, let podLink else {
            throw NetlinkError(
                .malformed, "add veth \(attachment.hostVeth) peer \(attachment.ifname)",
                detail: "an end of the pair is not there after it was created")
        }
        do {
            try wire(attachment, hostLink: hostLink, podLink: podLink, pod: pod)
        } catch {
            remove(addresses: attachment.addresses, hostVeth: attachment.hostVeth, pod: nil, ifname: attachment.ifname)
            throw error
        }
        return WiredPod(hostMAC: hostLink.address, podMAC: podLink.address)
    }

    /// The host end's MAC, given when the pair is created. A veth the kernel addresses at random
    /// (`addr_assign_type` 1) gets a new MAC from systemd-udevd (`MACAddressPolicy=persistent`, the
    /// default `99-default.link`) moments after it appears: after the pod's permanent neighbour
    /// entry for the gateway was written with the old one, so the pod's frames go nowhere (found
    /// by scripts/vm-test.py in the booted image). An address set at creation (`addr_assign_type`
    /// 3, set by userspace) is left alone. Locally administered, unicast, from the name (itself a
    /// hash of the pod): the same on a repeated ADD; it need only differ from the pod's end.
    static func hostMAC(_ name: String) -> MACAddress? {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x100_0000_01b3
        }
        return MACAddress(bytes: [0x02] + (0..<5).map { UInt8(truncatingIfNeeded: hash >> (8 * $0)) })
    }

    func wire(_ attachment: PodAttachment, hostLink: Link, podLink: Link, pod: RouteNetlink) throws(NetlinkError) {
        let hostDevice = hostLink.device
        let eth0 = podLink.device
        if !hostLink.isUp {
            if attachment.addresses.contains(where: { $0.family == .inet6 }) { try setIPv6(attachment.hostVeth) }
            try host.setLink(hostDevice, up: true)
        }
        for prefix in attachment.addresses {
            do {
                try pod.addAddress(prefix, to: eth0, noDAD: prefix.family == .inet6)
            } catch  where error.isExists {}
        }
        if !podLink.isUp { try pod.setLink(eth0, up: true) }
        for family in Set(attachment.addresses.map(\.family)).sorted(by: { $0.rawValue < $1.rawValue }) {
            let gateway = Self.gateway(family)
            if family == .inet {
                try pod.replaceRoute(Route(IPPrefix(host: gateway), device: eth0, scope: .link))
            }
            try pod.replaceRoute(Route(.any(family), gateway: gateway, device: eth0))
            try pod.addNeighbour(
                Neighbour(gateway, linkAddress: hostLink.address, device: eth0, state: .permanent), replace: true)
        }
        for prefix in attachment.addresses {
            try host.replaceRoute(Route(prefix, device: hostDevice, scope: prefix.family == .inet ? .link : .universe))
            try ensure(Rule(priority: Self.toPodPriority, to: prefix, table: Route.mainTable))
            if attachment.table != Route.mainTable {
                try ensure(Rule(priority: Self.fromPodPriority, from: prefix, table: attachment.table))
            }
        }
    }

    func ensure(_ rule: Rule) throws(NetlinkError) {
        do {
            try host.addRule(rule)
        } catch  where error.isExists {}
    }

    /// Undoes the host side of `addresses` (their rules; their route when it goes through
    /// `hostVeth`) and deletes the veth pair when it is this attachment's: its route carried one
    /// of the addresses, or (with `pod`) the pod's `ifname` is its peer. A veth of the same name
    /// that is neither belongs to a newer sandbox of the same pod and is left alone. Everything
    /// already gone counts as done; other failures are returned as notes (DEL is best effort).
    @discardableResult
    public func remove(addresses: [IPPrefix], hostVeth: String, pod: RouteNetlink?, ifname: String) -> [String] {
        var notes: [String] = []
        func attempt(_ body: () throws(NetlinkError) -> Void) -> Bool {
            do {
                try body()
                return true
            } catch  where error.isNotFound {
                return false
            } catch {
                notes.append(error.description)
                return false
            }
        }
        for prefix in addresses {
            _ = attempt { () throws(NetlinkError) in
                try host.deleteRule(Rule(priority: Self.toPodPriority, to: prefix, table: Route.mainTable))
            }
            // Every from-rule of the address (aws-cni deletes them all), whatever its table.
            for _ in 0..<8 {
                guard
                    attempt({ () throws(NetlinkError) in
                        try host.deleteRule(Rule(priority: Self.fromPodPriority, from: prefix, table: 0))
                    })
                else { break }
            }
        }
        var hostLink: Link?
        _ = attempt { () throws(NetlinkError) in hostLink = try host.link(named: hostVeth) }
        guard let hostLink else { return notes }
        var ours = false
        for prefix in addresses {
            if attempt({ () throws(NetlinkError) in
                try host.deleteRoute(Route(prefix, device: hostLink.device))
            }) {
                ours = true
            }
        }
        if !ours, let pod {
            var podLink: Link?
            _ = attempt { () throws(NetlinkError) in podLink = try pod.link(named: ifname) }
            if let podLink, Self.paired(hostLink, podLink) { ours = true }
        }
        if ours {
            _ = attempt { () throws(NetlinkError) in try host.deleteLink(hostLink.device) }
        }
        return notes
    }

    /// The pod's own addresses on `ifname` when it is `hostVeth`'s peer (global scope; for a DEL
    /// that has neither a prevResult nor ipamd).
    public func podAddresses(hostVeth: String, pod: RouteNetlink, ifname: String) throws(NetlinkError) -> [IPPrefix] {
        guard let hostLink = try host.link(named: hostVeth), let podLink = try pod.link(named: ifname),
            Self.paired(hostLink, podLink)
        else { return [] }
        return try pod.addresses().filter { $0.device.index == podLink.index && $0.scope == .universe }.map {
            IPPrefix(host: $0.prefix.address)
        }
    }

    /// What differs from `attachment` (empty when the pod is wired as ADD wires it).
    public func differences(_ attachment: PodAttachment, pod: RouteNetlink) throws(NetlinkError) -> [String] {
        guard let hostLink = try host.link(named: attachment.hostVeth) else {
            return ["host veth \(attachment.hostVeth) is missing"]
        }
        guard let podLink = try pod.link(named: attachment.ifname) else {
            return ["\(attachment.ifname) is missing in the pod's namespace"]
        }
        var problems: [String] = []
        if !Self.paired(hostLink, podLink) {
            problems.append("\(attachment.ifname) is not the peer of host veth \(attachment.hostVeth)")
        }
        if !hostLink.isUp { problems.append("host veth \(attachment.hostVeth) is down") }
        if !podLink.isUp { problems.append("\(attachment.ifname) is down") }
        if podLink.mtu != attachment.mtu {
            problems.append("\(attachment.ifname) has MTU \(podLink.mtu), ipamd says \(attachment.mtu)")
        }
        let podAddresses = Set(
            try pod.addresses().filter { $0.device.index == podLink.index }.map { IPPrefix(host: $0.prefix.address) })
        for prefix in attachment.addresses where !podAddresses.contains(prefix) {
            problems.append("\(attachment.ifname) lacks \(prefix)")
        }
        for family in Set(attachment.addresses.map(\.family)).sorted(by: { $0.rawValue < $1.rawValue }) {
            let gateway = Self.gateway(family)
            let routes = try pod.routes(family: family, table: Route.mainTable)
            if !routes.contains(where: {
                $0.destination.length == 0 && $0.gateway == gateway && $0.device?.index == podLink.index
            }) {
                problems.append("the pod has no default route via \(gateway) dev \(attachment.ifname)")
            }
            if family == .inet,
                !routes.contains(where: {
                    $0.destination == IPPrefix(host: gateway) && $0.gateway == nil && $0.device?.index == podLink.index
                        && $0.scope == .link
                })
            {
                problems.append("the pod has no route to \(gateway) dev \(attachment.ifname) scope link")
            }
            let neighbours = try pod.neighbours(family: family)
            if !neighbours.contains(where: {
                $0.address == gateway && $0.device.index == podLink.index && $0.linkAddress == hostLink.address
                    && $0.state.contains(.permanent)
            }) {
                problems.append(
                    "the pod has no permanent neighbour \(gateway) lladdr \(hostLink.address.map { "\($0)" } ?? "?")")
            }
            let hostRoutes = try host.routes(family: family, table: Route.mainTable)
            let rules = try host.rules(family: family)
            for prefix in attachment.addresses where prefix.family == family {
                if !hostRoutes.contains(where: { $0.destination == prefix && $0.device?.index == hostLink.index }) {
                    problems.append("the host has no route \(prefix) dev \(attachment.hostVeth)")
                }
                if !rules.contains(where: {
                    $0.priority == Self.toPodPriority && $0.destination == prefix && $0.source == nil
                        && $0.table == Route.mainTable
                }) {
                    problems.append("the host has no rule to \(prefix) lookup main prio \(Self.toPodPriority)")
                }
                let fromRules = rules.filter { $0.priority == Self.fromPodPriority && $0.source == prefix }
                if attachment.table == Route.mainTable {
                    if !fromRules.isEmpty { problems.append("the host has a from-rule for \(prefix) on the primary ENI") }
                } else if fromRules.map(\.table) != [attachment.table] {
                    problems.append(
                        "the host has no rule from \(prefix) lookup \(attachment.table) prio \(Self.fromPodPriority) "
                            + "(only: \(fromRules.map(\.description)))")
                }
            }
        }
        return problems
    }
}
