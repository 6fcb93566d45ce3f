import CNIPlugin
import Foundation
import IPAMProtocol
import Netlink
import TestSupport
import Testing
import WireJSON

/// The built `nodeboot-cni`, run as containerd runs it (environment, stdin, stdout) inside a scratch
/// network namespace standing for the node, against pods that are scratch namespaces and an
/// in-process ipamd on a real Unix socket. The machine's own network is never touched.
enum Namespaces {
    /// Nil when this machine can run these tests, else why not.
    static let unavailable: String? = {
        guard geteuid() == 0 else { return "needs root for network namespaces (running as uid \(geteuid()))" }
        guard ChildProcess.exists("ip") else { return "needs iproute2's ip" }
        guard ChildProcess.exists("ping") || ChildProcess.exists("python3") else {
            return "needs ping (iputils-ping) or python3 (an ICMP echo over a raw socket)"
        }
        guard FileManager.default.isExecutableFile(atPath: binary) else { return "needs the built \(binary)" }
        return nil
    }()

    static let binary = Paths.debugBinaries.appendingPathComponent("nodeboot-cni").path
    static let path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    static func run(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) async throws
        -> ChildProcess.Result
    {
        try await ChildProcess.run(
            arguments, environment: ["PATH": path].merging(environment) { $1 }, stdin: stdin, timeout: 30)
    }

    /// `ip ARGS…`, which must succeed.
    @discardableResult
    static func ip(_ arguments: String...) async throws -> String {
        let result = try await run(["ip"] + arguments)
        try #require(result.status == 0, "ip \(arguments.joined(separator: " ")): \(result.stderr)")
        return result.stdout
    }

    /// `ip -n NAMESPACE -j ARGS…` as objects.
    static func json(_ namespace: String, _ arguments: String...) async throws -> [[String: Any]] {
        let result = try await run(["ip", "-n", namespace, "-j"] + arguments)
        try #require(result.status == 0, "ip -n \(namespace) -j \(arguments.joined(separator: " ")): \(result.stderr)")
        if result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return [] }
        return try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]])
    }

    /// One line per object: the keys given, in order, absent ones left out.
    static func lines(_ objects: [[String: Any]], _ keys: String...) -> [String] {
        objects.map { object in
            keys.compactMap { key in
                object[key].map { value in
                    "\(key)=" + ((value as? [Any])?.map { "\($0)" }.joined(separator: ",") ?? "\(value)")
                }
            }.joined(separator: " ")
        }
    }

    /// One ICMP echo from `namespace` to `address`, answered within a second: `ping -c1 -W1`, or
    /// the same over a raw socket in python3 where iputils-ping is not installed.
    static func ping(from namespace: String, _ address: String) async throws -> Bool {
        if ChildProcess.exists("ping") {
            return try await run(["ip", "netns", "exec", namespace, "ping", "-c1", "-W1", address]).status == 0
        }
        return try await run(["ip", "netns", "exec", namespace, "python3", "-c", echo, address]).status == 0
    }

    static let echo = """
        import os, socket, struct, sys
        target = sys.argv[1]
        six = ":" in target
        if six:
            s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_ICMPV6)
        else:
            s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
        s.settimeout(1)
        ident = os.getpid() & 0xFFFF
        def checksum(data):
            total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
            total = (total >> 16) + (total & 0xFFFF)
            return ~(total + (total >> 16)) & 0xFFFF
        body = b"nodeboot"
        request, reply = (128, 129) if six else (8, 0)
        packet = struct.pack("!BBHHH", request, 0, 0, ident, 1) + body
        if not six:  # the kernel computes ICMPv6 checksums itself
            packet = struct.pack("!BBHHH", request, 0, checksum(packet), ident, 1) + body
        s.sendto(packet, (target, 0))
        try:
            while True:
                data, address = s.recvfrom(2048)
                start = 0 if six else (data[0] & 0x0F) * 4
                kind, _, _, answer, _ = struct.unpack("!BBHHH", data[start:start + 8])
                if kind == reply and answer == ident and socket.inet_pton(s.family, address[0]) == socket.inet_pton(s.family, target):
                    sys.exit(0)
        except socket.timeout:
            sys.exit(1)
        """

    /// Scratch namespaces `nbcni-<pid>-<suffix>`, removed afterwards (also when `body` fails).
    static func with(_ suffixes: [String], _ body: ([String]) async throws -> Void) async throws {
        let names = suffixes.map { "nbcni-\(getpid())-\($0)" }
        for name in names {
            _ = try await run(["ip", "netns", "del", name])  // a leftover of a killed run with this pid
            try await ip("netns", "add", name)
        }
        do {
            try await body(names)
        } catch {
            for name in names { _ = try? await run(["ip", "netns", "del", name]) }
            throw error
        }
        for name in names { try await ip("netns", "del", name) }
    }
}

/// One pod as the test drives it: the kubelet's arguments, its namespace, what ipamd gives it.
struct TestPod {
    var container: String
    var namespace: String
    var name: String
    var assignment: Assignment

    var netns: String { "/var/run/netns/\(namespace)" }
    var hostVeth: String { hostVethName(namespace: "default", name: name) }
    var address: String { String(assignment.ips[0].split(separator: "/")[0]) }

    static func assignment(_ ip: String, device: Int) -> Assignment {
        Assignment(
            ips: [ip], device: device, table: device == 0 ? 254 : device + 1, mtu: 9001, vpcCIDRs: ["10.0.0.0/16"],
            externalSNAT: false, eni: "eni-\(device)")
    }
}

@Suite(
    "nodeboot-cni wires pods in scratch network namespaces",
    .serialized,
    // Root only: it creates network namespaces and programs only them; skipped with the reason otherwise.
    .enabled(if: Namespaces.unavailable == nil, Comment(rawValue: Namespaces.unavailable ?? "")))
struct PodWiringSystemTests {
    static let conflistEntry =
        #"{"cniVersion":"1.0.0","name":"nodeboot","type":"nodeboot-cni","socket":"SOCKET","mtu":9001,"vethPrefix":"eni","ipFamily":"ipv4"PREV}"#

    /// A fake ipamd at a socket under a temporary directory that serves `pods` by container id.
    static func ipamd(_ pods: [TestPod]) -> FakeIPAMD {
        let table = Dictionary(uniqueKeysWithValues: pods.map { ($0.container, $0.assignment) })
        return FakeIPAMD { request in
            switch request {
            case .add(let key, _, _):
                guard let assignment = table[key.container] else { return .failed(ProtocolError(.noAddress, "none")) }
                return .added(assignment)
            case .del(let key, _, _):
                return .deleted(known: table[key.container] != nil, table[key.container])
            case .check(let key):
                guard let assignment = table[key.container] else {
                    return .failed(ProtocolError(.unknown, "no attachment \(key)"))
                }
                return .checked(assignment)
            default:
                return .status(["ready": true])
            }
        }
    }

    /// Runs the binary in the node's namespace with the runtime's environment and stdin.
    static func cni(
        _ command: String, _ pod: TestPod, node: String, socket: String, netns: String? = nil, prevResult: String? = nil
    ) async throws -> Spawn.Result {
        let stdin = conflistEntry.replacingOccurrences(of: "SOCKET", with: socket)
            .replacingOccurrences(of: "PREV", with: prevResult.map { ",\"prevResult\":\($0)" } ?? "")
        return await Spawn.run(
            ["ip", "netns", "exec", node, Namespaces.binary],
            environment: [
                "PATH": Namespaces.path,
                "CNI_COMMAND": command, "CNI_CONTAINERID": pod.container, "CNI_NETNS": netns ?? pod.netns,
                "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
                "CNI_ARGS":
                    "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=\(pod.name);K8S_POD_INFRA_CONTAINER_ID=\(pod.container);K8S_POD_UID=uid-\(pod.name)",
            ], stdin: stdin)
    }

    static func mac(_ namespace: String, _ link: String) async throws -> String {
        try #require(try await Namespaces.json(namespace, "link", "show", link).first?["address"] as? String)
    }

    @Test(
        "a pod on the primary ENI and one on a secondary: wired as aws-cni does, they ping each other and the node; ADD again gives the same result; CHECK passes and names a missing neighbour; DEL (with prevResult; without prevResult or ipamd; again) leaves nothing"
    )
    func twoPods() async throws {
        let directory = try temporaryDirectory("nbcni")
        defer { removeTree(directory) }
        let socket = directory + "/ipamd.sock"
        try await Namespaces.with(["node", "a", "b"]) { names in
            let node = names[0]
            let a = TestPod(
                container: "aaaa1111", namespace: names[1], name: "web-a",
                assignment: TestPod.assignment("10.0.97.30/32", device: 0))
            let b = TestPod(
                container: "bbbb2222", namespace: names[2], name: "web-b",
                assignment: TestPod.assignment("10.0.98.40/32", device: 1))
            let ipamd = Self.ipamd([a, b])
            try ipamd.listen(at: socket)
            defer { ipamd.stop() }
            try await Namespaces.ip("-n", node, "link", "set", "lo", "up")
            try await Namespaces.ip("-n", node, "addr", "add", "10.0.0.10/32", "dev", "lo")
            _ = try await Namespaces.run(["ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv4.ip_forward=1"])

            var results: [String: String] = [:]
            for pod in [a, b] {
                let added = try await Self.cni("ADD", pod, node: node, socket: socket)
                try #require(added.status == 0, "ADD \(pod.name): \(added.stdout) \(added.stderr)")
                let hostMAC = try await Self.mac(node, pod.hostVeth)
                let podMAC = try await Self.mac(pod.namespace, "eth0")
                #expect(
                    added.stdout
                        == #"{"cniVersion":"1.0.0","interfaces":[{"name":"\#(pod.hostVeth)","mac":"\#(hostMAC)"},{"name":"eth0","mac":"\#(podMAC)","sandbox":"\#(pod.netns)"}],"ips":[{"interface":1,"address":"\#(pod.address)/32","gateway":"169.254.1.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}],"dns":{}}"#
                        + "\n")
                results[pod.container] = added.stdout.trimmingCharacters(in: .newlines)

                // The pod's side.
                let eth0 = try #require(try await Namespaces.json(pod.namespace, "addr", "show", "eth0").first)
                #expect(eth0["mtu"] as? Int == 9001)
                #expect((eth0["flags"] as? [String])?.contains("UP") == true)
                let inet = (eth0["addr_info"] as? [[String: Any]] ?? []).filter { $0["family"] as? String == "inet" }
                #expect(
                    Namespaces.lines(inet, "local", "prefixlen", "scope") == ["local=\(pod.address) prefixlen=32 scope=global"])
                #expect(
                    Namespaces.lines(try await Namespaces.json(pod.namespace, "route", "show"), "dst", "gateway", "dev", "scope")
                        .sorted() == ["dst=169.254.1.1 dev=eth0 scope=link", "dst=default gateway=169.254.1.1 dev=eth0"])
                #expect(
                    Namespaces.lines(
                        try await Namespaces.json(pod.namespace, "-4", "neigh", "show"), "dst", "dev", "lladdr", "state")
                        == ["dst=169.254.1.1 dev=eth0 lladdr=\(hostMAC) state=PERMANENT"])
                let veth = try #require(try await Namespaces.json(node, "link", "show", pod.hostVeth).first)
                #expect(veth["mtu"] as? Int == 9001)
                #expect((veth["flags"] as? [String])?.contains("UP") == true)
                // Its MAC was set at creation (addr_assign_type 3), so systemd-udevd leaves it alone.
                #expect(hostMAC.hasPrefix("02:"), "\(hostMAC)")
                let assign = try await Namespaces.run([
                    "ip", "netns", "exec", node, "cat", "/sys/class/net/\(pod.hostVeth)/addr_assign_type",
                ])
                #expect(assign.stdout == "3\n", "\(assign.stdout)\(assign.stderr)")
            }

            // The node's side: a route per pod, the to-rules, the from-rule of the secondary ENI's pod.
            #expect(
                Namespaces.lines(try await Namespaces.json(node, "route", "show", "table", "main"), "dst", "dev", "scope")
                    .sorted()
                    == ["dst=10.0.97.30 dev=\(a.hostVeth) scope=link", "dst=10.0.98.40 dev=\(b.hostVeth) scope=link"])
            #expect(
                Namespaces.lines(try await Namespaces.json(node, "rule", "show"), "priority", "src", "dst", "table")
                    == [
                        "priority=0 src=all table=local", "priority=512 src=all dst=10.0.97.30 table=main",
                        "priority=512 src=all dst=10.0.98.40 table=main", "priority=1536 src=10.0.98.40 table=2",
                        "priority=32766 src=all table=main", "priority=32767 src=all table=default",
                    ])

            for (from, to) in [
                (a.namespace, b.address), (b.namespace, a.address), (a.namespace, "10.0.0.10"), (b.namespace, "10.0.0.10"),
                (node, a.address), (node, b.address),
            ] {
                #expect(try await Namespaces.ping(from: from, to), "ping from \(from) to \(to)")
            }

            // ADD again: the same result, nothing added twice.
            let again = try await Self.cni("ADD", a, node: node, socket: socket)
            #expect(again.status == 0)
            #expect(again.stdout.trimmingCharacters(in: .newlines) == results[a.container])
            #expect(try await Namespaces.json(node, "rule", "show").count == 6)

            // CHECK with the result; then without the gateway's neighbour entry.
            let checked = try await Self.cni("CHECK", b, node: node, socket: socket, prevResult: results[b.container])
            #expect(checked.status == 0, "\(checked.stdout) \(checked.stderr)")
            #expect(checked.stdout.isEmpty)
            try await Namespaces.ip("-n", b.namespace, "neigh", "del", "169.254.1.1", "dev", "eth0")
            let broken = try await Self.cni("CHECK", b, node: node, socket: socket, prevResult: results[b.container])
            #expect(broken.status == 1)
            let error = try JSON(parsing: broken.stdout)
            #expect(error["code"] == 102)
            let bMAC = try await Self.mac(node, b.hostVeth)
            #expect(
                error["msg"]?.string
                    == "the pod's network differs from what ADD made: the pod has no permanent neighbour 169.254.1.1 lladdr \(bMAC)"
            )
            #expect(try await Self.cni("ADD", b, node: node, socket: socket).status == 0, "ADD repairs")
            #expect(try await Self.cni("CHECK", b, node: node, socket: socket, prevResult: results[b.container]).status == 0)

            // DEL with the cached result while ipamd runs.
            let deleted = try await Self.cni("DEL", a, node: node, socket: socket, prevResult: results[a.container])
            #expect(deleted.status == 0 && deleted.stdout.isEmpty, "\(deleted.stdout) \(deleted.stderr)")
            #expect(
                ipamd.requests.last
                    == .del(
                        AttachmentKey(container: a.container, ifname: "eth0", network: "nodeboot"),
                        pod: PodReference(namespace: "default", name: "web-a", uid: "uid-web-a"), reason: "cni del"))
            #expect(try await Namespaces.json(a.namespace, "link", "show").map { $0["ifname"] as? String } == ["lo"])
            #expect(!(try await Namespaces.ping(from: b.namespace, a.address)), "a deleted pod is unreachable")

            // DEL without prevResult and without ipamd: the pod's own interface says what to undo.
            ipamd.stop()
            let orphan = try await Self.cni("DEL", b, node: node, socket: socket)
            #expect(orphan.status == 0 && orphan.stdout.isEmpty, "\(orphan.stdout) \(orphan.stderr)")
            #expect(orphan.stderr.contains("10.0.98.40/32 (from the pod's interface)"), "\(orphan.stderr)")
            // Once more, and without the namespace: nothing to do, still a success.
            #expect(try await Self.cni("DEL", b, node: node, socket: socket).status == 0)
            #expect(try await Self.cni("DEL", a, node: node, socket: socket, netns: "").status == 0)

            #expect(try await Namespaces.json(node, "link", "show").map { $0["ifname"] as? String } == ["lo"])
            #expect(try await Namespaces.json(node, "route", "show", "table", "main").isEmpty)
            #expect(
                try await Namespaces.json(node, "-6", "route", "show", "table", "main").filter {
                    ($0["dst"] as? String)?.hasPrefix("fe80") != true
                }.isEmpty)
            #expect(
                Namespaces.lines(try await Namespaces.json(node, "rule", "show"), "priority")
                    == ["priority=0", "priority=32766", "priority=32767"])
            for pod in [a, b] {
                #expect(try await Namespaces.json(pod.namespace, "link", "show").map { $0["ifname"] as? String } == ["lo"])
            }
        }
    }

    @Test("a failed ADD changes nothing on the node and gives the address back to ipamd")
    func failedAdd() async throws {
        let directory = try temporaryDirectory("nbcni")
        defer { removeTree(directory) }
        let socket = directory + "/ipamd.sock"
        try await Namespaces.with(["node", "c"]) { names in
            let node = names[0]
            let pod = TestPod(
                container: "cccc3333", namespace: names[1], name: "web-c",
                assignment: TestPod.assignment("10.0.98.41/32", device: 1))
            let ipamd = Self.ipamd([pod])
            try ipamd.listen(at: socket)
            defer { ipamd.stop() }
            // The pod's namespace already has an eth0 that is not ours.
            try await Namespaces.ip("-n", pod.namespace, "link", "add", "eth0", "type", "veth", "peer", "name", "other0")
            let added = try await Self.cni("ADD", pod, node: node, socket: socket)
            #expect(added.status == 1)
            let error = try JSON(parsing: added.stdout)
            #expect(error["code"] == 101)
            #expect(
                error["msg"]?.string
                    == "add veth \(pod.hostVeth) peer eth0 netns \(pod.netns): invalid argument: eth0 already exists in "
                    + "the pod's namespace and is not this pod's veth")
            #expect(ipamd.requests.map(\.op) == ["add", "del"])
            if case .del(_, _, let reason) = ipamd.requests.last { #expect(reason == "add failed") }
            #expect(try await Namespaces.json(node, "link", "show").map { $0["ifname"] as? String } == ["lo"])
            #expect(try await Namespaces.json(node, "route", "show", "table", "main").isEmpty)
            #expect(try await Namespaces.json(node, "rule", "show").count == 3)
        }
    }

    @Test("missing variables: code 4 from the binary, ipamd never asked, nothing created")
    func refusedBeforeAnything() async throws {
        let directory = try temporaryDirectory("nbcni")
        defer { removeTree(directory) }
        let socket = directory + "/ipamd.sock"
        try await Namespaces.with(["node", "d"]) { names in
            let pod = TestPod(
                container: "dddd4444", namespace: names[1], name: "web-d",
                assignment: TestPod.assignment("10.0.97.31/32", device: 0))
            let ipamd = Self.ipamd([pod])
            try ipamd.listen(at: socket)
            defer { ipamd.stop() }
            let refused = try await Self.cni("ADD", pod, node: names[0], socket: socket, netns: "")
            #expect(refused.status == 1)
            #expect(
                refused.stdout
                    == #"{"cniVersion":"1.0.0","code":4,"msg":"ADD: CNI_NETNS is not set","details":"the runtime sets CNI_CONTAINERID, CNI_NETNS (not needed for DEL) and CNI_IFNAME for ADD, CHECK and DEL"}"#
                    + "\n")
            let gone = try await Self.cni("ADD", pod, node: names[0], socket: socket, netns: "/var/run/netns/nbcni-none")
            #expect(try JSON(parsing: gone.stdout)["code"] == 4)
            #expect(ipamd.requests.isEmpty)
            #expect(try await Namespaces.json(names[0], "link", "show").map { $0["ifname"] as? String } == ["lo"])
        }
    }

    @Test(
        "IPv6: two pods get their /128, a default route via fe80::1 with a permanent neighbour, reach each other and the node; DEL leaves nothing"
    )
    func ipv6Pods() async throws {
        let directory = try temporaryDirectory("nbcni")
        defer { removeTree(directory) }
        let socket = directory + "/ipamd.sock"
        try await Namespaces.with(["node6", "e", "f"]) { names in
            let node = names[0]
            let e = TestPod(
                container: "eeee5555", namespace: names[1], name: "web-e",
                assignment: TestPod.assignment("2001:db8:0:1::5/128", device: 0))
            let f = TestPod(
                container: "ffff6666", namespace: names[2], name: "web-f",
                assignment: TestPod.assignment("2001:db8:0:1::6/128", device: 0))
            let ipamd = Self.ipamd([e, f])
            try ipamd.listen(at: socket)
            defer { ipamd.stop() }
            try await Namespaces.ip("-n", node, "link", "set", "lo", "up")
            try await Namespaces.ip("-n", node, "addr", "add", "fd00::10/128", "dev", "lo")
            _ = try await Namespaces.run(["ip", "netns", "exec", node, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
            for pod in [e, f] {
                let added = try await Self.cni("ADD", pod, node: node, socket: socket)
                try #require(added.status == 0, "ADD \(pod.name): \(added.stdout) \(added.stderr)")
                let hostMAC = try await Self.mac(node, pod.hostVeth)
                let podMAC = try await Self.mac(pod.namespace, "eth0")
                #expect(
                    added.stdout
                        == #"{"cniVersion":"1.0.0","interfaces":[{"name":"\#(pod.hostVeth)","mac":"\#(hostMAC)"},{"name":"eth0","mac":"\#(podMAC)","sandbox":"\#(pod.netns)"}],"ips":[{"interface":1,"address":"\#(pod.address)/128","gateway":"fe80::1"}],"routes":[{"dst":"::/0","gw":"fe80::1"}],"dns":{}}"#
                        + "\n")
                let eth0 = try #require(try await Namespaces.json(pod.namespace, "addr", "show", "eth0").first)
                let global = (eth0["addr_info"] as? [[String: Any]] ?? []).filter { $0["scope"] as? String == "global" }
                #expect(Namespaces.lines(global, "local", "prefixlen") == ["local=\(pod.address) prefixlen=128"])
                #expect(
                    Namespaces.lines(try await Namespaces.json(pod.namespace, "-6", "route", "show"), "dst", "gateway", "dev")
                        .filter { !$0.hasPrefix("dst=fe80::/64") }.sorted()
                        == ["dst=\(pod.address) dev=eth0", "dst=default gateway=fe80::1 dev=eth0"],
                    "the address's own prefix route (the kernel's), the default route")
                #expect(
                    Namespaces.lines(
                        try await Namespaces.json(pod.namespace, "-6", "neigh", "show", "fe80::1"), "dst", "lladdr", "state")
                        == ["dst=fe80::1 lladdr=\(hostMAC) state=PERMANENT"])
                #expect(try await Self.cni("CHECK", pod, node: node, socket: socket).status == 0)
                var settings: [String] = []
                for name in ["accept_ra", "accept_redirects", "forwarding"] {
                    let value = try await Namespaces.run([
                        "ip", "netns", "exec", node, "cat", "/proc/sys/net/ipv6/conf/\(pod.hostVeth)/\(name)",
                    ])
                    settings.append("\(name)=\(value.stdout.trimmingCharacters(in: .whitespacesAndNewlines))")
                }
                #expect(settings == ["accept_ra=0", "accept_redirects=1", "forwarding=0"], "the host veth's IPv6 settings")
            }
            #expect(
                Namespaces.lines(try await Namespaces.json(node, "-6", "route", "show", "table", "main"), "dst", "dev")
                    .filter { !$0.hasPrefix("dst=fe80::/64") && !$0.hasSuffix("dev=lo") }.sorted()
                    == ["dst=\(e.address) dev=\(e.hostVeth)", "dst=\(f.address) dev=\(f.hostVeth)"])
            #expect(
                Namespaces.lines(try await Namespaces.json(node, "-6", "rule", "show"), "priority", "dst", "table")
                    == [
                        "priority=0 table=local", "priority=512 dst=\(e.address) table=main",
                        "priority=512 dst=\(f.address) table=main", "priority=32766 table=main",
                    ])
            // Neighbour discovery needs the veths' link-local addresses past DAD (about a second): a few tries.
            for (from, to) in [(e.namespace, f.address), (f.namespace, "fd00::10"), (node, e.address)] {
                var reached = false
                for _ in 0..<4 where !reached { reached = try await Namespaces.ping(from: from, to) }
                #expect(reached, "ping from \(from) to \(to)")
            }
            for pod in [e, f] {
                #expect(try await Self.cni("DEL", pod, node: node, socket: socket).status == 0)
            }
            #expect(try await Namespaces.json(node, "link", "show").map { $0["ifname"] as? String } == ["lo"])
            #expect(try await Namespaces.json(node, "-6", "rule", "show").count == 2)
            #expect(
                try await Namespaces.json(node, "-6", "route", "show", "table", "main").filter {
                    ($0["dst"] as? String)?.hasPrefix("2001:db8") == true
                }.isEmpty)
        }
    }

    @Test(
        "a new sandbox of the same pod replaces the old one's host veth; the old sandbox's late DEL leaves the new one wired"
    )
    func newSandbox() async throws {
        let directory = try temporaryDirectory("nbcni")
        defer { removeTree(directory) }
        let socket = directory + "/ipamd.sock"
        try await Namespaces.with(["node", "old", "new"]) { names in
            let node = names[0]
            let old = TestPod(
                container: "0ld5a4db0x", namespace: names[1], name: "web-g",
                assignment: TestPod.assignment("10.0.98.50/32", device: 1))
            let new = TestPod(
                container: "new5a4db0x", namespace: names[2], name: "web-g",
                assignment: TestPod.assignment("10.0.98.51/32", device: 1))
            let ipamd = Self.ipamd([old, new])
            try ipamd.listen(at: socket)
            defer { ipamd.stop() }
            let first = try await Self.cni("ADD", old, node: node, socket: socket)
            try #require(first.status == 0, "\(first.stdout) \(first.stderr)")
            let second = try await Self.cni("ADD", new, node: node, socket: socket)
            try #require(second.status == 0, "\(second.stdout) \(second.stderr)")
            #expect(old.hostVeth == new.hostVeth)
            #expect(try await Namespaces.json(old.namespace, "link", "show").map { $0["ifname"] as? String } == ["lo"])
            let late = try await Self.cni(
                "DEL", old, node: node, socket: socket, prevResult: first.stdout.trimmingCharacters(in: .newlines))
            #expect(late.status == 0)
            #expect(try await Self.cni("CHECK", new, node: node, socket: socket).status == 0, "the new sandbox is intact")
            #expect(
                Namespaces.lines(try await Namespaces.json(node, "rule", "show"), "priority", "src", "dst", "table")
                    .filter { $0.contains("10.0.98.5") }
                    == ["priority=512 src=all dst=10.0.98.51 table=main", "priority=1536 src=10.0.98.51 table=2"])
            #expect(try await Self.cni("DEL", new, node: node, socket: socket).status == 0)
            #expect(try await Namespaces.json(node, "link", "show").map { $0["ifname"] as? String } == ["lo"])
        }
    }

    @Test("ADD/DEL cycles through the binary, one pod at a time and 16 at once: no veth, route, rule or address left")
    func cycles() async throws {
        let directory = try temporaryDirectory("nbcni")
        defer { removeTree(directory) }
        let socket = directory + "/ipamd.sock"
        let concurrent = 16
        let (sequentialCycles, concurrentCycles) = (200, 25)
        try await Namespaces.with(["node"] + (0..<concurrent).map { "p\($0)" }) { names in
            let node = names[0]
            let pods = (0..<concurrent).map { index in
                TestPod(
                    container: "cycle\(index)", namespace: names[index + 1], name: "cycle-\(index)",
                    assignment: TestPod.assignment("10.0.99.\(index + 10)/32", device: index % 3))
            }
            let ipamd = Self.ipamd(pods)
            try ipamd.listen(at: socket)
            defer { ipamd.stop() }
            let timings = Locked<[Double]>([])
            @Sendable func cycle(_ pod: TestPod) async throws {
                let added = try await Self.cni("ADD", pod, node: node, socket: socket)
                try #require(added.status == 0, "ADD \(pod.name): \(added.stdout) \(added.stderr)")
                if let line = added.stderr.split(separator: "\n").first(where: { $0.hasSuffix(" ms") }),
                    let value = Double(line.split(separator: " ").dropLast().last ?? "")
                {
                    timings.update { $0.append(value) }
                }
                let deleted = try await Self.cni(
                    "DEL", pod, node: node, socket: socket, prevResult: added.stdout.trimmingCharacters(in: .newlines))
                try #require(deleted.status == 0, "DEL \(pod.name): \(deleted.stdout) \(deleted.stderr)")
            }
            for _ in 0..<sequentialCycles { try await cycle(pods[0]) }
            let sequential = timings.current.sorted()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for pod in pods {
                    group.addTask { for _ in 0..<concurrentCycles { try await cycle(pod) } }
                }
                try await group.waitForAll()
            }
            let adds = ipamd.requests.filter { $0.op == "add" }.count
            let dels = ipamd.requests.filter { $0.op == "del" }.count
            #expect(adds == sequentialCycles + concurrent * concurrentCycles && dels == adds)
            #expect(try await Namespaces.json(node, "link", "show").map { $0["ifname"] as? String } == ["lo"])
            #expect(
                try await Namespaces.json(node, "route", "show", "table", "all").filter {
                    ($0["dst"] as? String)?.hasPrefix("10.0.99.") == true
                }.isEmpty)
            #expect(try await Namespaces.json(node, "rule", "show").count == 3)
            #expect(try await Namespaces.json(node, "neigh", "show").isEmpty)
            for pod in pods {
                #expect(try await Namespaces.json(pod.namespace, "link", "show").map { $0["ifname"] as? String } == ["lo"])
            }
            let concurrentTimes = timings.current.dropFirst(sequential.count).sorted()
            for (label, sorted) in [("one at a time", sequential), ("16 at once", concurrentTimes)] where !sorted.isEmpty {
                print(
                    "nodeboot-cni ADD \(label), the plugin's own time over \(sorted.count) cycles: "
                        + "p50 \(sorted[sorted.count / 2]) ms, p99 \(sorted[sorted.count * 99 / 100]) ms")
            }
        }
    }
}
