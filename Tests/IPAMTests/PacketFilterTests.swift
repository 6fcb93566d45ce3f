import Foundation
import IPAM
import Netlink
import TestSupport
import Testing

/// The nftables table `ip nodeboot` (docs/ipamd.md §5): golden text, then the real `nft` in
/// scratch network namespaces.
@Suite("ipamd packet filter")
struct PacketFilterTests {
    static func filter(
        vpc: [String] = ["10.0.0.0/16"], settings: Settings = Settings(), primary: String = "ens5", address: String = "10.0.0.5"
    ) -> PacketFilter {
        PacketFilter(
            primaryInterface: primary, primaryAddress: IPAddress(address)!, vpcCIDRs: vpc.map { IPPrefix($0)! },
            settings: settings)
    }

    /// The chains, identical in every ruleset with SNAT on this node (primary ens5, 10.0.0.5).
    static let chains = """
        \tchain pre {
        \t\ttype filter hook prerouting priority mangle; policy accept;
        \t\tiifname "eni*" ct state new ip daddr != @vpc ip daddr != @nosnat ct mark set ct mark | 0x80
        \t\tiifname "ens5" ct state new fib daddr type local ct mark set ct mark | 0x80
        \t\tiifname "eni*" meta mark set ct mark & 0x80
        \t}
        \tchain post {
        \t\ttype nat hook postrouting priority srcnat; policy accept;
        \t\tip daddr @vpc return
        \t\tip daddr @nosnat return
        \t\tfib daddr type local return
        \t\tsnat to 10.0.0.5 fully-random
        \t}
        }

        """

    @Test("defaults: one VPC CIDR, an empty nosnat set, connmark in pre, SNAT to the primary address in post")
    func defaults() {
        #expect(
            Self.filter().ruleset == """
                table ip nodeboot
                delete table ip nodeboot
                table ip nodeboot {
                \tset vpc {
                \t\ttype ipv4_addr
                \t\tflags interval
                \t\telements = { 10.0.0.0/16 }
                \t}
                \tset nosnat {
                \t\ttype ipv4_addr
                \t\tflags interval
                \t}

                """ + Self.chains)
        #expect(Self.filter().problem == nil)
    }

    @Test("EXCLUDE_SNAT_CIDRS fills the nosnat set")
    func excluded() throws {
        let (settings, warnings) = try Settings.parse(["EXCLUDE_SNAT_CIDRS": "192.168.0.0/16,172.16.5.0/24"])
        #expect(warnings.isEmpty)
        #expect(
            Self.filter(settings: settings).ruleset == """
                table ip nodeboot
                delete table ip nodeboot
                table ip nodeboot {
                \tset vpc {
                \t\ttype ipv4_addr
                \t\tflags interval
                \t\telements = { 10.0.0.0/16 }
                \t}
                \tset nosnat {
                \t\ttype ipv4_addr
                \t\tflags interval
                \t\telements = { 172.16.5.0/24, 192.168.0.0/16 }
                \t}

                """ + Self.chains)
    }

    @Test("several VPC CIDRs: sorted networks, host bits cleared, duplicates and covered blocks left out (nft refuses overlaps)")
    func severalVPCCIDRs() {
        let filter = Self.filter(vpc: [
            "100.64.0.0/16", "10.0.0.0/16", "10.0.5.0/24", "10.1.2.3/16", "100.64.0.0/16", "fd00::/56",
        ])
        #expect(
            filter.ruleset == """
                table ip nodeboot
                delete table ip nodeboot
                table ip nodeboot {
                \tset vpc {
                \t\ttype ipv4_addr
                \t\tflags interval
                \t\telements = { 10.0.0.0/16, 10.1.0.0/16, 100.64.0.0/16 }
                \t}
                \tset nosnat {
                \t\ttype ipv4_addr
                \t\tflags interval
                \t}

                """ + Self.chains)
    }

    @Test("external SNAT: the text only deletes the table (and works when there is none); EXCLUDE_SNAT_CIDRS plays no part")
    func externalSNAT() throws {
        let (settings, _) = try Settings.parse(["AWS_VPC_K8S_CNI_EXTERNALSNAT": "true", "EXCLUDE_SNAT_CIDRS": "192.168.0.0/16"])
        let filter = Self.filter(vpc: [], settings: settings)
        #expect(filter.ruleset == "table ip nodeboot\ndelete table ip nodeboot\n")
        #expect(filter.problem == nil, "no VPC CIDR is needed to delete the table")
    }

    @Test("refused before nft runs: no VPC CIDR, a quote in a name, an IPv6 primary address, nft missing")
    func refusals() async throws {
        var problems: [String] = []
        for filter in [
            Self.filter(vpc: []), Self.filter(primary: "ens\"5"), Self.filter(address: "fd00::5"),
            Self.filter(vpc: ["fd00::/56"]),
        ] {
            do {
                try await filter.apply(command: PacketFilter.Command(program: "/bin/false"))
                Issue.record("applied \(filter)")
            } catch {
                problems.append(error.description)
            }
        }
        #expect(
            problems == [
                "ipamd: cannot replace table ip nodeboot: no IPv4 CIDR of the VPC is known (IMDS vpc-ipv4-cidr-blocks): every pod's traffic would be translated",
                "ipamd: cannot replace table ip nodeboot: the primary interface name 'ens\"5' cannot be matched by nftables",
                "ipamd: cannot replace table ip nodeboot: the primary address fd00::5 is not IPv4",
                "ipamd: cannot replace table ip nodeboot: no IPv4 CIDR of the VPC is known (IMDS vpc-ipv4-cidr-blocks): every pod's traffic would be translated",
            ])
        let missing = await #expect(throws: IPAMError.self) {
            try await Self.filter().apply(command: PacketFilter.Command(program: "/nonexistent/nft"))
        }
        #expect(
            missing?.description
                == "ipamd: cannot replace table ip nodeboot: nft is not installed (/nonexistent/nft); install it: apt-get install nftables"
        )
        #expect(PacketFilter.Command.nft(searching: ["/nonexistent"]) == nil)
    }

    @Test("nft failing: its exit status and message, and the fix")
    func nftFails() async throws {
        // `sh -c 'echo ... >&2; exit 1' sh SCRIPT` stands for an nft that refuses the script.
        let command = PacketFilter.Command(
            program: "/bin/sh",
            arguments: ["-c", "echo 'Error: Could not process rule: Operation not permitted' >&2; exit 1", "sh"])
        let refused = await #expect(throws: IPAMError.self) { try await Self.filter().apply(command: command) }
        #expect(
            refused?.description
                == "ipamd: cannot replace table ip nodeboot: /bin/sh exited with status 1: Error: Could not process rule: Operation not permitted; ipamd needs CAP_NET_ADMIN: run it as root"
        )
        let slow = PacketFilter.Command(program: "/bin/sh", arguments: ["-c", "sleep 5", "sh"])
        let stuck = await #expect(throws: IPAMError.self) {
            try await Self.filter().apply(command: slow, timeout: .milliseconds(200))
        }
        #expect(
            stuck?.description.hasPrefix(
                "ipamd: cannot replace table ip nodeboot: /bin/sh did not finish within 0.2 s and was killed")
                == true)
    }

    // MARK: the real nft, in scratch network namespaces

    /// Nil when this machine can run nft in network namespaces, else why not.
    static let unavailable: String? = {
        if let reason = KernelViewTests.unavailable { return reason }
        guard PacketFilter.Command.nft() != nil else { return "needs nft (Debian nftables: scripts/setup.sh test)" }
        guard ChildProcess.exists("python3") else { return "needs python3 (the UDP listener)" }
        return nil
    }()

    static func ip(_ arguments: String...) async throws -> String {
        try await run(["ip"] + arguments)
    }

    static func run(_ arguments: [String], stdin: String? = nil) async throws -> String {
        let result = try await ChildProcess.run(
            ["/usr/bin/env"] + arguments, environment: ChildProcess.cleanEnvironment(), stdin: stdin, timeout: 20)
        try #require(result.status == 0, "\(arguments.joined(separator: " ")): \(result.stderr)")
        return result.stdout
    }

    /// `nft` inside the namespace.
    static func nft(in namespace: String) -> PacketFilter.Command {
        PacketFilter.Command(program: "/usr/bin/ip", arguments: ["netns", "exec", namespace, "nft"])
    }

    /// Runs `body` with fresh namespaces named after `names` (deleted afterwards, also on failure).
    static func withNamespaces(_ names: [String], _ body: ([String]) async throws -> Void) async throws {
        let namespaces = names.map { "nb\($0)-\(getpid())" }
        var made: [String] = []
        do {
            for namespace in namespaces {
                _ = try await ip("netns", "add", namespace)
                made.append(namespace)
            }
            try await body(namespaces)
        } catch {
            for namespace in made { _ = try? await ip("netns", "del", namespace) }
            throw error
        }
        for namespace in made { _ = try await ip("netns", "del", namespace) }
    }

    @Test(
        "nft takes the table; applied again it is the same table; with external SNAT it is gone, and deleting it again is fine",
        // Root only: nft runs in a scratch network namespace; the host's rules are never touched.
        .enabled(if: unavailable == nil, Comment(rawValue: unavailable ?? "")))
    func applyInNamespace() async throws {
        try await Self.withNamespaces(["nft"]) { namespaces in
            let namespace = namespaces[0]
            let (settings, _) = try Settings.parse(["EXCLUDE_SNAT_CIDRS": "192.168.0.0/16"])
            let filter = Self.filter(vpc: ["10.0.0.0/16", "100.64.0.0/16"], settings: settings)
            try await filter.apply(command: Self.nft(in: namespace))
            let first = try await Self.run(["ip", "netns", "exec", namespace, "nft", "list", "table", "ip", "nodeboot"])
            try await filter.apply(command: Self.nft(in: namespace))
            let second = try await Self.run(["ip", "netns", "exec", namespace, "nft", "list", "table", "ip", "nodeboot"])
            #expect(first == second, "a second apply leaves the same table")
            let ruleset = try await Self.run(["ip", "netns", "exec", namespace, "nft", "list", "ruleset"])
            #expect(ruleset.components(separatedBy: "table ip nodeboot").count == 2, "one table: \(ruleset)")

            let listing = try await Self.run(["ip", "netns", "exec", namespace, "nft", "-j", "list", "table", "ip", "nodeboot"])
            let objects = try #require(
                (try JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [String: Any])?["nftables"] as? [[String: Any]])
            func all(_ kind: String) -> [[String: Any]] { objects.compactMap { $0[kind] as? [String: Any] } }
            #expect(all("table").map { "\($0["family"] ?? "") \($0["name"] ?? "")" } == ["ip nodeboot"])
            let sets = Dictionary(uniqueKeysWithValues: all("set").map { ("\($0["name"] ?? "")", $0) })
            func elements(_ name: String) -> [String] {
                (sets[name]?["elem"] as? [[String: Any]] ?? []).compactMap { element in
                    (element["prefix"] as? [String: Any]).map { "\($0["addr"] ?? "")/\($0["len"] ?? "")" }
                }
            }
            #expect(elements("vpc") == ["10.0.0.0/16", "100.64.0.0/16"])
            #expect(elements("nosnat") == ["192.168.0.0/16"])
            #expect(sets.values.allSatisfy { ($0["flags"] as? [String]) == ["interval"] && $0["type"] as? String == "ipv4_addr" })
            #expect(
                all("chain").map { "\($0["name"] ?? "") \($0["type"] ?? "") \($0["hook"] ?? "") \($0["prio"] ?? "")" }.sorted()
                    == [
                        "post nat postrouting 100", "pre filter prerouting -150",
                    ])
            let rules = all("rule")
            #expect(rules.filter { $0["chain"] as? String == "pre" }.count == 3)
            #expect(rules.filter { $0["chain"] as? String == "post" }.count == 4)
            let snat = try #require(
                rules.last { $0["chain"] as? String == "post" }.flatMap { rule in
                    (rule["expr"] as? [[String: Any]])?.compactMap { $0["snat"] as? [String: Any] }.first
                })
            #expect(snat["addr"] as? String == "10.0.0.5")
            #expect("\(snat["flags"] ?? "")".contains("fully-random"))

            let external = Self.filter(vpc: [], settings: try Settings.parse(["AWS_VPC_K8S_CNI_EXTERNALSNAT": "true"]).0)
            try await external.apply(command: Self.nft(in: namespace))
            let after = try await Self.run(["ip", "netns", "exec", namespace, "nft", "list", "ruleset"])
            #expect(!after.contains("nodeboot"), "the table is gone: \(after)")
            try await external.apply(command: Self.nft(in: namespace))
        }
    }

    /// A UDP listener on 203.0.113.10:9999 and 10.0.200.10:9999 that prints, for each datagram,
    /// `<destination> <arrival interface> <source>` once, for 3 s or until both were seen.
    static let listener = """
        import select, socket, struct, time
        socks = []
        for address in ("203.0.113.10", "10.0.200.10"):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.setsockopt(socket.IPPROTO_IP, 8, 1)  # IP_PKTINFO
            s.bind((address, 9999))
            socks.append(s)
        print("ready", flush=True)
        seen, end = set(), time.time() + 3
        while time.time() < end and len(seen) < 2:
            readable, _, _ = select.select(socks, [], [], 0.1)
            for s in readable:
                data, ancillary, _, peer = s.recvmsg(64, 64)
                index = struct.unpack("i", ancillary[0][2][:4])[0]
                line = "%s %s %s" % (s.getsockname()[0], socket.if_indextoname(index), peer[0])
                if line not in seen:
                    seen.add(line)
                    print(line, flush=True)
        """

    @Test(
        "a pod's UDP to an outside address leaves through the primary interface with the node's address; to the VPC it keeps the pod's address and its ENI's table",
        // Root only: three scratch network namespaces (pod, node, outside) joined by veth pairs.
        .enabled(if: unavailable == nil, Comment(rawValue: unavailable ?? "")))
    func snatHappens() async throws {
        try await Self.withNamespaces(["pod", "node", "out"]) { namespaces in
            let (pod, node, outside) = (namespaces[0], namespaces[1], namespaces[2])
            // The outside: the VPC router of both node interfaces and two far addresses, one in
            // the VPC (10.0.200.10) and one not (203.0.113.10); no reverse-path filtering.
            for name in ["all", "default"] {
                _ = try await Self.ip("netns", "exec", outside, "sysctl", "-qw", "net.ipv4.conf.\(name).rp_filter=0")
            }
            _ = try await Self.ip("-n", outside, "link", "add", "eth0", "type", "veth", "peer", "name", "ens5", "netns", node)
            _ = try await Self.ip(
                "-n", outside, "link", "add", "eth1", "type", "veth", "peer", "name", "ens6", "address", "0e:00:00:00:00:06",
                "netns", node)
            _ = try await Self.ip("-n", outside, "address", "add", "10.0.0.1/24", "dev", "eth0")
            _ = try await Self.ip("-n", outside, "address", "add", "10.0.2.1/24", "dev", "eth1")
            _ = try await Self.ip("-n", outside, "address", "add", "203.0.113.10/32", "dev", "lo")
            _ = try await Self.ip("-n", outside, "address", "add", "10.0.200.10/32", "dev", "lo")
            for link in ["lo", "eth0", "eth1"] { _ = try await Self.ip("-n", outside, "link", "set", link, "up") }
            // The node: ens5 is the primary ENI (main: default via 10.0.0.1), ens6 a secondary ENI
            // (table 2: default via 10.0.2.1); the pod's address is on ens6's ENI, so its traffic
            // uses table 2 unless it carries the mark.
            _ = try await Self.ip("-n", node, "address", "add", "10.0.0.5/24", "dev", "ens5")
            _ = try await Self.ip("-n", node, "address", "add", "10.0.2.5/24", "dev", "ens6")
            _ = try await Self.ip(
                "-n", node, "link", "add", "enipod0000001", "address", "0e:00:00:00:01:01", "type", "veth", "peer", "name",
                "eth0",
                "netns", pod)
            for link in ["lo", "ens5", "ens6", "enipod0000001"] { _ = try await Self.ip("-n", node, "link", "set", link, "up") }
            _ = try await Self.ip("-n", node, "route", "add", "default", "via", "10.0.0.1", "dev", "ens5")
            _ = try await Self.ip("-n", node, "route", "add", "default", "via", "10.0.2.1", "dev", "ens6", "table", "2")
            _ = try await Self.ip("-n", node, "route", "add", "10.0.1.20/32", "dev", "enipod0000001", "scope", "link")
            _ = try await Self.ip("-n", node, "rule", "add", "from", "10.0.1.20/32", "lookup", "2", "prio", "1536")
            // The pod, wired as the CNI plugin does it.
            _ = try await Self.ip("-n", pod, "address", "add", "10.0.1.20/32", "dev", "eth0")
            for link in ["lo", "eth0"] { _ = try await Self.ip("-n", pod, "link", "set", link, "up") }
            _ = try await Self.ip("-n", pod, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
            _ = try await Self.ip("-n", pod, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
            _ = try await Self.ip(
                "-n", pod, "neigh", "add", "169.254.1.1", "lladdr", "0e:00:00:00:01:01", "dev", "eth0", "nud", "permanent")

            // nodeboot's part: the host settings (mark rule, ip_forward, rp_filter) and the table. A new
            // namespace may inherit the host's ip_forward 1 (a runtime or a CNI plugin set it there).
            _ = try await Self.ip("netns", "exec", node, "sh", "-c", "echo 0 > /proc/sys/net/ipv4/ip_forward")
            let notes = try NetworkNamespace(named: node).runOnDedicatedThread {
                try NodeNetwork.ensureHost(eniMACs: ["0e:00:00:00:00:06"], settings: Settings(), netlink: try RouteNetlink())
            }
            #expect(notes.contains("ip_forward 1") && notes.contains("ens6: rp_filter 2"), "\(notes)")
            try await Self.filter().apply(command: Self.nft(in: node))

            let arrivals = try await withThrowingTaskGroup(of: String.self) { group in
                group.addTask { try await Self.run(["ip", "netns", "exec", outside, "python3", "-c", Self.listener]) }
                // The listener prints "ready" once bound; a datagram sent before is lost, so each
                // is sent ten times over a second and the listener keeps the first of each.
                let sender = """
                    import socket, time
                    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                    for _ in range(10):
                        for address in ("203.0.113.10", "10.0.200.10"):
                            s.sendto(b"x", (address, 9999))
                        time.sleep(0.1)
                    """
                try await Task.sleep(for: .milliseconds(300))
                _ = try await Self.run(["ip", "netns", "exec", pod, "python3", "-c", sender])
                return try await group.next() ?? ""
            }
            let lines = arrivals.split(separator: "\n").map(String.init)
            #expect(lines.first == "ready")
            #expect(
                Set(lines.dropFirst()) == [
                    "203.0.113.10 eth0 10.0.0.5",  // marked: main, out of ens5, translated
                    "10.0.200.10 eth1 10.0.1.20",  // the VPC: the pod's address, its ENI's table
                ])
        }
    }
}
