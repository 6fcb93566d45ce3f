public import Netlink

/// What the kernel shows of pods (docs/ipamd.md §6): an address is in use by a pod when the
/// main table routes it (a host route, /32 or /128) to a `<vethPrefix>*` link. Every wired pod
/// has that route, and it goes with the veth when the pod's namespace goes. A pod's rules
/// (`to <ip> lookup main prio 512`, `from <ip> lookup <table> prio 1536`) are not a trace: a DEL
/// that had neither a prevResult, the namespace nor ipamd leaves them behind, and counting them
/// would keep that address from being freed for ever. Read once at start and on the periodic
/// reconcile, never on an add.
public enum KernelView {
    /// Pod traces and link names from the kernel, through `netlink`; a failure means the view is
    /// unknown (`HostObservation.kernelKnown` false), never "no pods".
    public static func read(
        _ netlink: RouteNetlink, addressesByENI: [String: Set<String>], vethPrefix: String
    ) throws(NetlinkError) -> HostObservation {
        let links = try netlink.links()
        let names = Dictionary(uniqueKeysWithValues: links.map { ($0.index, $0.name) })
        var traces: [String: String] = [:]
        for family in [AddressFamily.inet, .inet6] {
            for route in try netlink.routes(family: family, table: 254)
            where route.destination.length == (family == .inet ? 32 : 128) {
                guard let index = route.device?.index, let name = names[index], name.hasPrefix(vethPrefix) else { continue }
                traces["\(route.destination.address)"] = "route to \(name)"
            }
        }
        return HostObservation(
            addressesByENI: addressesByENI, kernelTraces: traces, links: Set(links.map(\.name)), vethPrefix: vethPrefix)
    }
}
