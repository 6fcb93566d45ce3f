public import Netlink
import Support

/// What ipamd and its CNI plugin leave in the node's kernel, removed for `nodeboot reset`
/// (docs/compat.md, the reset section), so that a recycled node is as on its first boot without
/// a reboot. Only what carries ipamd's own markers (docs/ipamd.md §5, docs/cni.md):
///
/// - the pods' host veths: `<vethPrefix>` + 11 hex digits (`hostVethName`), kind veth; deleting
///   one deletes its pod end and the pod's host routes with it (only when the pods were stopped);
/// - the pods' rules: `to <address> lookup main prio 512`, `from <address> lookup <table> prio 1536`;
/// - the mark rule `fwmark 0x80/0x80 lookup main prio 1024`;
/// - each secondary ENI's rule `from <its address> lookup <device+1> prio 32765`, the routes of
///   that table, and the address ipamd put on the ENI's link (when the ENI is still attached);
/// - the nft table `ip nodeboot`, last: while anything else is left (a failure, or pods kept
///   because they run on) it is the marker by which a second reset still recognises ipamd's node
///   (the files saying ipamd was configured are gone).
///
/// aws-node makes rules of the same shapes, so none of this is looked at unless ipamd was
/// configured on the node (`ipamdConfigured`) or its table `ip nodeboot` is there; a node where
/// ipamd never ran is left as it is. What ipamd changed without a record of the value before is
/// left: the sysctls (`ip_forward`, `rp_filter`, `accept_ra`: the image's own settings hold the
/// same values) and the MTU and state of ENI links. Every step is through the same mechanisms
/// ipamd uses: rtnetlink (`RouteNetlink`) and one `nft` transaction (`PacketFilter.Command`).
public struct NodeTeardown: Sendable {
    /// A socket in the node's network namespace.
    public var netlink: RouteNetlink
    /// `nft` (nil: from the usual directories; none installed: ipamd cannot have made a table).
    public var nft: PacketFilter.Command?
    /// The host veths' prefix (`/etc/nodeboot/ipamd.json`'s `vethPrefix`, `eni` without it).
    public var vethPrefix: String
    /// `/etc/nodeboot/ipamd.json` or ipamd's state is on the node.
    public var ipamdConfigured: Bool
    /// Delete the pods' veths too (the pods were stopped with the kubelet and `kubepods.slice`).
    public var pods: Bool
    public var timeout: Duration

    public init(
        netlink: RouteNetlink, nft: PacketFilter.Command? = nil, vethPrefix: String = "eni", ipamdConfigured: Bool,
        pods: Bool = true, timeout: Duration = .seconds(5)
    ) {
        self.netlink = netlink
        self.nft = nft
        self.vethPrefix = vethPrefix
        self.ipamdConfigured = ipamdConfigured
        self.pods = pods
        self.timeout = timeout
    }

    /// The lines of what was (or, dry, would be) removed, and what failed, one line each.
    public struct Outcome: Sendable, Equatable {
        public var lines: [String] = []
        public var failures: [String] = []
        public init(lines: [String] = [], failures: [String] = []) {
            self.lines = lines
            self.failures = failures
        }
    }

    /// The host veth prefix `init` wrote for ipamd at `specPath`; `eni` when it is absent or unreadable.
    public static func vethPrefix(specPath: String = NodeSpec.path) -> String {
        ((try? NodeSpec.load(specPath)) ?? nil)?.vethPrefix ?? "eni"
    }

    /// Whether `name` is a pod's host veth as the CNI plugin names it: the prefix and 11 lowercase hex digits.
    public static func isPodVeth(_ name: String, prefix: String) -> Bool {
        guard name.hasPrefix(prefix) else { return false }
        let rest = name.utf8.dropFirst(prefix.utf8.count)
        return rest.count == 11
            && rest.allSatisfy {
                (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || (UInt8(ascii: "a")...UInt8(ascii: "f")).contains($0)
            }
    }

    /// ipamd's rules among `rules`, by priority and shape (see the type).
    public static func isIPAMDRule(_ rule: Rule) -> Bool {
        guard rule.action == .lookup, !rule.invert, rule.inputInterface == nil, rule.outputInterface == nil else { return false }
        func host(_ prefix: IPPrefix?) -> Bool {
            guard let prefix else { return false }
            return prefix.length == (prefix.family == .inet ? 32 : 128)
        }
        switch rule.priority {
        case PodRules.toPod:
            return host(rule.destination) && rule.source == nil && rule.fwmark == nil && rule.table == Route.mainTable
        case PodRules.fromPod:
            return host(rule.source) && rule.destination == nil && rule.fwmark == nil && ENITables.contains(rule.table)
        case NodeNetwork.markRulePriority:
            return rule.source == nil && rule.destination == nil && rule.fwmark == PacketFilter.mark
                && rule.fwmask == PacketFilter.mark && rule.table == Route.mainTable
        case NodeNetwork.eniRulePriority:
            return rule.family == .inet && host(rule.source) && rule.destination == nil && rule.fwmark == nil
                && ENITables.contains(rule.table)
        default:
            return false
        }
    }

    /// The priorities of the CNI plugin's pod rules (`CNIPlugin.PodNetwork`; IPAM does not import it).
    enum PodRules {
        static let toPod: UInt32 = 512
        static let fromPod: UInt32 = 1536
    }

    /// The tables of secondary ENIs: device + 1 for devices 1 up to the largest ENI count EC2 has
    /// (and never main, local or default).
    static let ENITables: ClosedRange<UInt32> = 2...252

    /// On this node: a socket in this process's network namespace, `nft` from the usual
    /// directories, the veth prefix `init` wrote for ipamd.
    public static func onNode(dryRun: Bool, ipamdConfigured: Bool, pods: Bool) async -> Outcome {
        let netlink: RouteNetlink
        do {
            netlink = try RouteNetlink()
        } catch {
            return Outcome(failures: ["cannot open a netlink socket: \(error)"])
        }
        return await NodeTeardown(netlink: netlink, vethPrefix: vethPrefix(), ipamdConfigured: ipamdConfigured, pods: pods)
            .run(dryRun: dryRun)
    }

    public func run(dryRun: Bool) async -> Outcome {
        var outcome = Outcome()
        let table: Bool
        do {
            table = try await tablePresent()
        } catch {
            // A dry run as an ordinary user may not list tables; it says so and goes on.
            if dryRun {
                outcome.lines.append("(the nft tables could not be listed: \(error))")
            } else {
                outcome.failures.append(error.description)
            }
            table = false
        }
        guard ipamdConfigured || table else { return outcome }
        func attempt(_ what: String, _ body: () throws(NetlinkError) -> Void) {
            if dryRun {
                outcome.lines.append(what)
                return
            }
            do {
                try body()
                outcome.lines.append(what.replacingFirstWord())
            } catch  where error.isNotFound {
            } catch {
                outcome.failures.append("cannot \(what): \(error)")
            }
        }
        var podsKept = false
        do {
            // 1. The pods' veths (their routes go with them).
            let links = try netlink.links()
            let names = Dictionary(links.map { ($0.index, $0.name) }, uniquingKeysWith: { first, _ in first })
            let podVeths = links.filter { $0.kind == "veth" && Self.isPodVeth($0.name, prefix: vethPrefix) }
            if pods {
                for link in podVeths {
                    attempt("delete the pod veth \(link.name)") { () throws(NetlinkError) in try netlink.deleteLink(link.device) }
                }
            } else if !podVeths.isEmpty {
                podsKept = true
                outcome.lines.append(
                    "keep \(podVeths.count) pod veth(s) (\(vethPrefix)…) and their rules: kubelet.service is not among the daemons to stop (its pods run on)"
                )
            }
            // 2. Rules, both families; the ENI tables their rules name.
            var tables: [UInt32: IPAddress] = [:]
            for family in [AddressFamily.inet, .inet6] {
                for rule in try netlink.rules(family: family) where Self.isIPAMDRule(rule) {
                    if !pods && (rule.priority == PodRules.toPod || rule.priority == PodRules.fromPod) { continue }
                    if rule.priority == NodeNetwork.eniRulePriority, let source = rule.source {
                        tables[rule.table] = source.address
                    }
                    attempt("delete rule \(rule)") { () throws(NetlinkError) in try netlink.deleteRule(rule) }
                }
            }
            // 3. Each secondary ENI's table, and the address ipamd gave its link (a link still here:
            // its detach failed or is under way).
            let addresses = try netlink.addresses(family: .inet)
            for (number, eniAddress) in tables.sorted(by: { $0.key < $1.key }) {
                let routes = try netlink.routes(family: .inet, table: number)
                let devices = Set(routes.compactMap { $0.device?.index })
                for route in routes {
                    var named = route
                    if let index = route.device?.index { named.device = Device(index: index, name: names[index] ?? "") }
                    attempt("delete route \(named.description)") { () throws(NetlinkError) in try netlink.deleteRoute(route) }
                }
                for address in addresses where address.prefix.address == eniAddress && devices.contains(address.device.index) {
                    let link = names[address.device.index] ?? address.device.description
                    attempt("delete address \(address.prefix) of \(link) (ipamd's, device \(number - 1))") {
                        () throws(NetlinkError) in try netlink.deleteAddress(address.prefix, from: address.device)
                    }
                }
            }
        } catch {
            outcome.failures.append("cannot read the node's links, rules and routes: \(error)")
        }
        // 4. The table, last (the marker while anything above is left).
        if table {
            if dryRun {
                outcome.lines.append("delete the nft table ip \(PacketFilter.table)")
            } else if !outcome.failures.isEmpty || podsKept {
                outcome.lines.append(
                    "keep the nft table ip \(PacketFilter.table): it tells the next nodeboot reset what is ipamd's"
                        + (podsKept ? " (the pods kept above)" : ""))
            } else {
                do {
                    try await deleteTable()
                    outcome.lines.append("deleted the nft table ip \(PacketFilter.table)")
                } catch {
                    outcome.failures.append(error.description)
                }
            }
        }
        return outcome
    }

    /// Whether `nft list tables ip` names `ip nodeboot`; false without nft.
    func tablePresent() async throws(IPAMError) -> Bool {
        guard let command = nft ?? PacketFilter.Command.nft() else { return false }
        let output = try await runNFT(command, ["list", "tables", "ip"], what: "list the nft tables")
        return String(decoding: output, as: UTF8.self).split(separator: "\n").contains {
            String($0).trimmed == "table ip \(PacketFilter.table)"
        }
    }

    /// ipamd's own transaction with external SNAT on (`PacketFilter.ruleset`): declare, delete.
    func deleteTable() async throws(IPAMError) {
        guard let command = nft ?? PacketFilter.Command.nft() else { return }
        let script = "table ip \(PacketFilter.table)\ndelete table ip \(PacketFilter.table)\n"
        _ = try await runNFT(command, [script], what: "delete the nft table ip \(PacketFilter.table)")
    }

    func runNFT(_ command: PacketFilter.Command, _ arguments: [String], what: String) async throws(IPAMError) -> [UInt8] {
        let output: ExternalCommand.Output
        do {
            output = try await ExternalCommand.run(
                command.program, command.arguments + arguments,
                environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"], timeout: timeout)
        } catch {
            throw IPAMError("cannot \(what): \(error.description)")
        }
        if output.timedOut {
            throw IPAMError("cannot \(what): \(command.program) did not finish within \(timeout.secondsText) and was killed")
        }
        guard output.status == 0 else {
            let said = String(decoding: output.stderr, as: UTF8.self).split(separator: "\n").prefix(3).joined(separator: " | ")
            throw IPAMError(
                "cannot \(what): \(command.program) exited with status \(output.status): \(said.isEmpty ? "no message" : said)")
        }
        return output.stdout
    }
}

extension String {
    /// "delete X" → "deleted X", for the lines of what was done.
    fileprivate func replacingFirstWord() -> String {
        hasPrefix("delete ") ? "deleted " + dropFirst("delete ".count) : self
    }
}
