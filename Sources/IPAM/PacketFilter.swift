public import Netlink
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// ipamd's SNAT and connmark rules (docs/ipamd.md §5, the nftables decision of §1; aws-node's
/// iptables equivalent: vpc-cni.md §9) as one nftables table, `ip nodeboot`.
///
/// Pods on a secondary ENI that talk to an address outside the VPC (and outside
/// `EXCLUDE_SNAT_CIDRS`) must leave through the primary interface with the node's primary
/// address: such a connection gets connection mark 0x80 when it starts, its packets from the pod
/// carry the mark (the rule `fwmark 0x80/0x80 lookup main prio 1024` sends them through main), and
/// postrouting translates their source. A connection that arrives on the primary interface for
/// the node itself (a NodePort) gets the mark too, so a pod's replies leave the way the request
/// came in.
///
/// `ruleset` is pure; `apply` hands it to `nft` as one transaction: the table is declared (a no-op
/// when it exists), deleted and written whole, so the kernel holds either the old table or the
/// new one, never half of either. With external SNAT the text only deletes the table.
public struct PacketFilter: Sendable, Equatable {
    /// The table's name (family `ip`).
    public static let table = "nodeboot"
    /// The connection and packet mark bit, aws-node's `AWS_VPC_K8S_CNI_CONNMARK` default.
    public static let mark: UInt32 = 0x80

    /// The interface the primary ENI is (`ens5`): NodePort connections arrive on it.
    public var primaryInterface: String
    /// The primary ENI's primary address: the source pods' outbound traffic is translated to.
    public var primaryAddress: IPAddress
    /// The VPC's IPv4 CIDR blocks: traffic to them keeps the pod's address. Other families are
    /// left out (the table is `ip`).
    public var vpcCIDRs: [IPPrefix]
    /// `EXCLUDE_SNAT_CIDRS`: more destinations that keep the pod's address.
    public var excludeSNATCIDRs: [IPPrefix]
    /// `AWS_VPC_K8S_CNI_EXTERNALSNAT`: something outside the node translates; the table is removed.
    public var externalSNAT: Bool
    /// The host side of pod veths starts with this (`eni`, the conflist's `vethPrefix`).
    public var vethPrefix: String

    public init(
        primaryInterface: String, primaryAddress: IPAddress, vpcCIDRs: [IPPrefix], excludeSNATCIDRs: [IPPrefix] = [],
        externalSNAT: Bool = false, vethPrefix: String = "eni"
    ) {
        self.primaryInterface = primaryInterface
        self.primaryAddress = primaryAddress
        self.vpcCIDRs = vpcCIDRs
        self.excludeSNATCIDRs = excludeSNATCIDRs
        self.externalSNAT = externalSNAT
        self.vethPrefix = vethPrefix
    }

    /// The rules `settings` ask for (`externalSNAT`, `excludeSNATCIDRs`).
    public init(
        primaryInterface: String, primaryAddress: IPAddress, vpcCIDRs: [IPPrefix], settings: Settings,
        vethPrefix: String = "eni"
    ) {
        self.init(
            primaryInterface: primaryInterface, primaryAddress: primaryAddress, vpcCIDRs: vpcCIDRs,
            excludeSNATCIDRs: settings.excludeSNATCIDRs, externalSNAT: settings.externalSNAT, vethPrefix: vethPrefix)
    }

    /// The `nft` script: the first two lines remove whatever table `ip nodeboot` there is (the
    /// declaration makes the delete succeed when there is none); unless external SNAT is on, the
    /// whole table follows. Set elements are networks (host bits cleared), sorted, without the
    /// prefixes another element covers: nft refuses overlapping intervals.
    public var ruleset: String {
        var lines = ["table ip \(Self.table)", "delete table ip \(Self.table)"]
        guard !externalSNAT else { return lines.joined(separator: "\n") + "\n" }
        let mark = "0x" + String(Self.mark, radix: 16)
        let veths = "\"\(vethPrefix)*\""
        func set(_ name: String, _ prefixes: [IPPrefix]) -> [String] {
            let elements = Self.intervals(prefixes)
            return ["\tset \(name) {", "\t\ttype ipv4_addr", "\t\tflags interval"]
                + (elements.isEmpty ? [] : ["\t\telements = { " + elements.joined(separator: ", ") + " }"]) + ["\t}"]
        }
        lines.append("table ip \(Self.table) {")
        lines += set("vpc", vpcCIDRs)
        lines += set("nosnat", excludeSNATCIDRs)
        lines += [
            "\tchain pre {",
            "\t\ttype filter hook prerouting priority mangle; policy accept;",
            // A pod's new connection out of the VPC: it must leave through the primary interface.
            "\t\tiifname \(veths) ct state new ip daddr != @vpc ip daddr != @nosnat ct mark set ct mark | \(mark)",
            // A new connection to the node from outside (NodePort): replies go back the same way.
            "\t\tiifname \"\(primaryInterface)\" ct state new fib daddr type local ct mark set ct mark | \(mark)",
            // Every packet from a pod carries its connection's bit, for `fwmark 0x80/0x80 lookup main`.
            "\t\tiifname \(veths) meta mark set ct mark & \(mark)",
            "\t}",
            "\tchain post {",
            "\t\ttype nat hook postrouting priority srcnat; policy accept;",
            "\t\tip daddr @vpc return",
            "\t\tip daddr @nosnat return",
            "\t\tfib daddr type local return",
            "\t\tsnat to \(primaryAddress) fully-random",
            "\t}",
            "}",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    /// IPv4 networks, sorted, each once, none inside another.
    static func intervals(_ prefixes: [IPPrefix]) -> [String] {
        let networks = prefixes.compactMap { prefix -> (base: UInt32, length: Int)? in
            prefix.network.v4Value.map { ($0, prefix.length) }
        }
        .sorted { $0.base != $1.base ? $0.base < $1.base : $0.length < $1.length }
        var kept: [(base: UInt32, length: Int)] = []
        for network in networks {
            if let last = kept.last, last.length == 0 || network.base >> (32 - last.length) == last.base >> (32 - last.length) {
                continue
            }
            kept.append(network)
        }
        return kept.map { "\(IPAddress(v4: $0.base))/\($0.length)" }
    }

    /// Why the rules cannot be written as asked, or nil: names go into the ruleset as quoted
    /// strings, and an empty VPC list would translate pod-to-pod traffic too.
    public var problem: String? {
        if externalSNAT { return nil }
        func validName(_ name: String, wildcard: Bool) -> Bool {
            !name.isEmpty && name.utf8.count <= (wildcard ? 14 : 15)
                && name.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7f && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "*") }
        }
        guard validName(primaryInterface, wildcard: false) else {
            return "the primary interface name '\(primaryInterface)' cannot be matched by nftables"
        }
        guard validName(vethPrefix, wildcard: true) else {
            return "the veth prefix '\(vethPrefix)' is not an interface name prefix"
        }
        guard primaryAddress.family == .inet else { return "the primary address \(primaryAddress) is not IPv4" }
        guard vpcCIDRs.contains(where: { $0.family == .inet }) else {
            return "no IPv4 CIDR of the VPC is known (IMDS vpc-ipv4-cidr-blocks): every pod's traffic would be translated"
        }
        return nil
    }

    /// The command that runs `nft`: the program (an absolute path) and the arguments before the
    /// script. Tests run it in a scratch namespace: `Command(program: "/usr/bin/ip", arguments:
    /// ["netns", "exec", NS, "nft"])`.
    public struct Command: Sendable, Equatable {
        public var program: String
        public var arguments: [String]

        public init(program: String, arguments: [String] = []) {
            self.program = program
            self.arguments = arguments
        }

        /// `nft` from the usual directories; nil when nftables is not installed.
        public static func nft(searching directories: [String] = ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]) -> Command? {
            directories.map { $0 + "/nft" }.first { access($0, X_OK) == 0 }.map { Command(program: $0) }
        }
    }

    /// Writes `ruleset` in one `nft` transaction, within `timeout`. Applying the same rules
    /// again replaces the table with an identical one. `command` nil: `nft` from the usual
    /// directories.
    ///
    /// `nft` gets the script as one argument, not on standard input (`ExternalCommand` gives a
    /// child `/dev/null`); nft parses its arguments as one buffer and commits it as one batch,
    /// exactly as `nft -f FILE`.
    public func apply(command: Command? = nil, timeout: Duration = .seconds(5)) async throws(IPAMError) {
        let what = externalSNAT ? "delete table ip \(Self.table) (external SNAT)" : "replace table ip \(Self.table)"
        if let problem {
            throw IPAMError("ipamd: cannot \(what): \(problem)")
        }
        guard let command = command ?? Command.nft(), access(command.program, X_OK) == 0 else {
            throw IPAMError(
                "ipamd: cannot \(what): nft is not installed (\(command?.program ?? "no nft in /usr/sbin, /sbin, /usr/bin, /bin")); "
                    + "install it: apt-get install nftables")
        }
        let output: ExternalCommand.Output
        do {
            output = try await ExternalCommand.run(
                command.program, command.arguments + [ruleset],
                environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"], timeout: timeout)
        } catch {
            throw IPAMError("ipamd: cannot \(what): \(error.description)")
        }
        if output.timedOut {
            throw IPAMError(
                "ipamd: cannot \(what): \(command.program) did not finish within \(timeout.secondsText) and was killed; "
                    + "retry, and look for a stuck nft process or netlink socket")
        }
        guard output.status == 0 else {
            let said = String(decoding: output.stderr, as: UTF8.self).split(separator: "\n").prefix(3).joined(separator: " | ")
            let hint =
                said.contains("Operation not permitted")
                ? "ipamd needs CAP_NET_ADMIN: run it as root"
                : "the kernel needs nf_tables with nat, ct and fib (modprobe nf_tables nft_chain_nat nft_ct nft_fib_ipv4)"
            throw IPAMError(
                "ipamd: cannot \(what): \(command.program) exited with status \(output.status): \(said.isEmpty ? "no message" : said); \(hint)"
            )
        }
    }
}
