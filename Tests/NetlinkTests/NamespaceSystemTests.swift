import Foundation
import Netlink
import Synchronization
import Testing

/// A command the test relies on failed.
struct CommandFailure: Error, CustomStringConvertible {
    var description: String
}

/// Two scratch network namespaces, `nbtest-<pid>` (a node) and `nbtest-<pid>-pod` (a pod), made
/// and removed with `ip netns`. Nothing here touches the test machine's own interfaces, routes or
/// rules: every link, address, route, rule and neighbour lives in one of them.
enum Scratch {
    static let node = "nbtest-\(getpid())"
    static let pod = "nbtest-\(getpid())-pod"

    /// Nil when this machine can run the namespace tests, else why it cannot.
    static let unavailable: String? = {
        guard geteuid() == 0 else { return "needs root for network namespaces (running as uid \(geteuid()))" }
        let probe = "nbtest-probe-\(getpid())"
        let added = run(["ip", "netns", "add", probe])
        guard added.status == 0 else {
            return "needs network namespaces: ip netns add \(probe): exit \(added.status): \(added.stderr)"
        }
        _ = run(["ip", "netns", "del", probe])
        return nil
    }()

    /// Runs a program (found on PATH) to completion; small outputs only.
    static func run(_ arguments: [String]) -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        do {
            try process.run()
        } catch {
            return (127, "", "\(arguments[0]): \(error)")
        }
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (
            process.terminationStatus, String(decoding: stdout, as: UTF8.self),
            String(decoding: stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        )
    }

    /// `ip -n NAMESPACE -j ARGS…` parsed: the list of objects `ip` prints.
    static func ip(_ namespace: String, _ arguments: String...) throws -> [[String: Any]] {
        let result = run(["ip", "-n", namespace, "-j"] + arguments)
        guard result.status == 0 else {
            throw CommandFailure(
                description: "ip -n \(namespace) -j \(arguments.joined(separator: " ")): exit \(result.status): \(result.stderr)")
        }
        if result.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { return [] }
        let parsed = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8))
        return parsed as? [[String: Any]] ?? []
    }

    /// One line per object, the given keys in order (`dst=default gateway=169.254.1.1 dev=eth0`),
    /// absent keys left out: what the assertions compare.
    static func lines(_ objects: [[String: Any]], _ keys: String...) -> [String] {
        objects.map { object in
            keys.compactMap { key in object[key].map { "\(key)=\(describe($0))" } }.joined(separator: " ")
        }
    }

    static func describe(_ value: Any) -> String {
        if let list = value as? [Any] { return list.map(describe).joined(separator: ",") }
        return "\(value)"
    }
}

@Suite(
    "rtnetlink against the kernel, in scratch network namespaces",
    // Needs root and `ip netns add` (creating and entering network namespaces); the reason is
    // printed when either is missing, and the test is reported as skipped, never as passed.
    .enabled(if: Scratch.unavailable == nil, Comment(rawValue: Scratch.unavailable ?? "")))
struct NamespaceSystemTests {
    static let hostMAC = MACAddress("02:00:00:00:00:01")!
    static let podMAC = MACAddress("02:00:0a:00:61:1e")!

    @Test("a pod wired as aws-cni does it, checked with ip -j; changes undone; EEXIST and ENOENT as errors")
    func podWiring() throws {
        for name in [Scratch.node, Scratch.pod] {
            _ = Scratch.run(["ip", "netns", "del", name])  // a leftover of a killed run with this pid
            let added = Scratch.run(["ip", "netns", "add", name])
            try #require(added.status == 0, "ip netns add \(name): \(added.stderr)")
        }
        defer {
            for name in [Scratch.node, Scratch.pod] { _ = Scratch.run(["ip", "netns", "del", name]) }
        }
        let node = try NetworkNamespace(named: Scratch.node)
        let pod = try NetworkNamespace(named: Scratch.pod)
        // One socket per namespace, each opened on a thread that entered it and then ended.
        let nodeNetlink = try node.runOnDedicatedThread { try RouteNetlink() }
        let podNetlink = try pod.runOnDedicatedThread { try RouteNetlink() }

        // The pair is created from the pod's side with the host end directly in the node's
        // namespace (no move), each end with its chosen MAC.
        try podNetlink.createVeth(
            "eth0", address: Self.podMAC, peer: "enitest0", peerAddress: Self.hostMAC, peerNamespace: node)
        let eth0 = try #require(try podNetlink.link(named: "eth0")).device
        let hostVeth = try #require(try nodeNetlink.link(named: "enitest0")).device
        #expect(try podNetlink.link(named: "enitest0") == nil)
        #expect(try nodeNetlink.link(named: "eth0") == nil)

        // Pod side (vpc-cni.md §5).
        try podNetlink.addAddress(.p("10.0.97.30/32"), to: eth0)
        try podNetlink.addAddress(.p("fd00::1e/128"), to: eth0, noDAD: true)
        try podNetlink.setLink(eth0, mtu: 9001)
        try podNetlink.setLink(eth0, up: true)
        try podNetlink.addRoute(Route(.p("169.254.1.1/32"), device: eth0))
        try podNetlink.addRoute(Route(.any(.inet), gateway: .a("169.254.1.1"), device: eth0))
        try podNetlink.addNeighbour(Neighbour(.a("169.254.1.1"), linkAddress: Self.hostMAC, device: eth0))

        // Node side: the host veth, the pod's /32 in main, an ENI's table 2, a table over 255,
        // the pod's rules.
        try nodeNetlink.setLink(hostVeth, mtu: 9001)
        try nodeNetlink.setLink(hostVeth, up: true)
        try nodeNetlink.addRoute(Route(.p("10.0.97.30/32"), device: hostVeth))
        try nodeNetlink.replaceRoute(Route(.p("10.0.97.30/32"), device: hostVeth))  // idempotent
        try nodeNetlink.addRoute(Route(.p("10.0.96.1/32"), device: hostVeth, table: 2))
        try nodeNetlink.addRoute(Route(.any(.inet), gateway: .a("10.0.96.1"), device: hostVeth, table: 2))
        try nodeNetlink.addRoute(Route(.p("10.0.97.40/32"), device: hostVeth, table: 300))
        let fromRule = Rule(priority: 1536, from: .p("10.0.97.30/32"), table: 2)
        try nodeNetlink.addRule(fromRule)
        try nodeNetlink.addRule(Rule(priority: 512, to: .p("10.0.97.30/32"), table: Route.mainTable))
        try nodeNetlink.addRule(Rule(priority: 1024, fwmark: 0x80, fwmask: 0x80, table: Route.mainTable))

        // What ip sees in the pod.
        let podLinks = try Scratch.ip(Scratch.pod, "link", "show", "dev", "eth0")
        #expect(
            Scratch.lines(podLinks, "ifname", "mtu", "address", "operstate") == [
                "ifname=eth0 mtu=9001 address=02:00:0a:00:61:1e operstate=UP"
            ])
        let podAddresses = try Scratch.ip(Scratch.pod, "addr", "show", "dev", "eth0")
        let addressInfo = podAddresses.first?["addr_info"] as? [[String: Any]] ?? []
        #expect(
            Scratch.lines(addressInfo.filter { $0["scope"] as? String == "global" }, "local", "prefixlen", "nodad")
                == ["local=10.0.97.30 prefixlen=32", "local=fd00::1e prefixlen=128 nodad=1"])
        #expect(
            Scratch.lines(try Scratch.ip(Scratch.pod, "route", "show"), "dst", "gateway", "dev", "scope") == [
                "dst=default gateway=169.254.1.1 dev=eth0", "dst=169.254.1.1 dev=eth0 scope=link",
            ])
        #expect(
            Scratch.lines(try Scratch.ip(Scratch.pod, "neigh", "show"), "dst", "dev", "lladdr", "state") == [
                "dst=169.254.1.1 dev=eth0 lladdr=02:00:00:00:00:01 state=PERMANENT"
            ])

        // What ip sees on the node.
        #expect(
            Scratch.lines(try Scratch.ip(Scratch.node, "link", "show", "dev", "enitest0"), "ifname", "mtu", "address", "flags")
                == ["ifname=enitest0 mtu=9001 address=02:00:00:00:00:01 flags=BROADCAST,MULTICAST,UP,LOWER_UP"])
        #expect(
            Scratch.lines(try Scratch.ip(Scratch.node, "route", "show"), "dst", "gateway", "dev", "scope", "protocol") == [
                "dst=10.0.97.30 dev=enitest0 scope=link"
            ])
        #expect(
            Scratch.lines(try Scratch.ip(Scratch.node, "route", "show", "table", "2"), "dst", "gateway", "dev", "scope")
                == ["dst=default gateway=10.0.96.1 dev=enitest0", "dst=10.0.96.1 dev=enitest0 scope=link"])
        #expect(
            Scratch.lines(try Scratch.ip(Scratch.node, "route", "show", "table", "300"), "dst", "dev", "scope") == [
                "dst=10.0.97.40 dev=enitest0 scope=link"
            ])
        #expect(
            Scratch.lines(try Scratch.ip(Scratch.node, "rule", "show"), "priority", "src", "dst", "fwmark", "fwmask", "table")
                == [
                    "priority=0 src=all table=local", "priority=512 src=all dst=10.0.97.30 table=main",
                    "priority=1024 src=all fwmark=0x80 fwmask=0x80 table=main", "priority=1536 src=10.0.97.30 table=2",
                    "priority=32766 src=all table=main", "priority=32767 src=all table=default",
                ])

        // Our own dumps agree.
        #expect(
            try nodeNetlink.routes(family: .inet, table: 2) == [
                Route(.any(.inet), gateway: .a("10.0.96.1"), device: hostVeth, table: 2),
                Route(.p("10.0.96.1/32"), device: hostVeth, table: 2),
            ])
        #expect(try nodeNetlink.rules(family: .inet).contains(fromRule))
        let podLink = try #require(try podNetlink.links().first { $0.name == "eth0" })
        #expect(podLink.kind == "veth")
        #expect(podLink.address == Self.podMAC)
        #expect(podLink.mtu == 9001)
        #expect(podLink.isUp)
        #expect(
            try podNetlink.addresses(family: .inet).map(\.prefix).contains(.p("10.0.97.30/32")))
        #expect(
            try podNetlink.neighbours(family: .inet) == [
                Neighbour(.a("169.254.1.1"), linkAddress: Self.hostMAC, device: eth0)
            ])

        // Adding again: EEXIST, named (what callers ensuring a rule treat as success).
        let ruleAgain = #expect(throws: NetlinkError.self) { try nodeNetlink.addRule(fromRule) }
        #expect(ruleAgain?.isExists == true)
        #expect(ruleAgain?.description == "add rule from 10.0.97.30/32 lookup 2 prio 1536: File exists (EEXIST)")
        let routeAgain = #expect(throws: NetlinkError.self) {
            try nodeNetlink.addRoute(Route(.p("10.0.97.30/32"), device: hostVeth))
        }
        #expect(routeAgain?.description == "add route 10.0.97.30/32 dev enitest0: File exists (EEXIST)")

        // Undo, as a CNI DEL would; deleting again is "not found".
        try nodeNetlink.deleteRule(fromRule)
        let ruleGone = #expect(throws: NetlinkError.self) { try nodeNetlink.deleteRule(fromRule) }
        #expect(ruleGone?.isNotFound == true)
        try nodeNetlink.deleteRoute(Route(.p("10.0.97.30/32"), device: hostVeth))
        try nodeNetlink.deleteRoute(Route(.any(.inet), gateway: .a("10.0.96.1"), device: hostVeth, table: 2))
        try podNetlink.deleteNeighbour(.a("169.254.1.1"), device: eth0)
        try podNetlink.deleteAddress(.p("fd00::1e/128"), from: eth0)
        try podNetlink.setLink(eth0, up: false)
        #expect(Scratch.lines(try Scratch.ip(Scratch.node, "route", "show"), "dst").isEmpty)
        #expect(
            Scratch.lines(try Scratch.ip(Scratch.node, "route", "show", "table", "2"), "dst") == ["dst=10.0.96.1"])
        #expect(!Scratch.lines(try Scratch.ip(Scratch.node, "rule", "show"), "priority").contains("priority=1536"))
        #expect(
            Scratch.lines(try Scratch.ip(Scratch.pod, "neigh", "show"), "dst", "state").allSatisfy {
                !$0.contains("PERMANENT")
            })
        let remaining = try Scratch.ip(Scratch.pod, "addr", "show", "dev", "eth0").first?["addr_info"] as? [[String: Any]]
        #expect(Scratch.lines(remaining ?? [], "local") == ["local=10.0.97.30"])
        #expect(
            Scratch.lines(try Scratch.ip(Scratch.pod, "link", "show", "dev", "eth0"), "flags") == [
                "flags=BROADCAST,MULTICAST"
            ])

        // A pair made inside the pod, one end moved to the node; deleting one end takes both.
        try podNetlink.createVeth("nbmove0", peer: "nbmove1")
        let moving = try #require(try podNetlink.link(named: "nbmove1")).device
        try podNetlink.moveLink(moving, to: node)
        #expect(try podNetlink.link(named: "nbmove1") == nil)
        #expect(try nodeNetlink.link(named: "nbmove1") != nil)
        try podNetlink.deleteLink(try #require(try podNetlink.link(named: "nbmove0")).device)
        #expect(try nodeNetlink.link(named: "nbmove1") == nil)

        // run(_:) on a thread of our own: inside the namespace, then back where it was.
        let outcome = Mutex<(before: UInt64, inside: Result<[String], any Error>, after: UInt64)?>(nil)
        let done = DispatchSemaphore(value: 0)
        let thread = Thread {
            let before = Self.namespaceInode()
            let inside = Result { () throws -> [String] in
                try node.run { try RouteNetlink().links().map(\.name) }
            }
            let after = Self.namespaceInode()
            outcome.withLock { $0 = (before, inside, after) }
            done.signal()
        }
        thread.start()
        done.wait()
        let result = try #require(outcome.withLock { $0 })
        #expect(try result.inside.get() == ["lo", "enitest0"])
        #expect(result.before == result.after)
        #expect(result.before != 0)
    }

    /// The inode of the calling thread's network namespace.
    static func namespaceInode() -> UInt64 {
        var status = stat()
        guard stat("/proc/thread-self/ns/net", &status) == 0 else { return 0 }
        return UInt64(status.st_ino)
    }
}
