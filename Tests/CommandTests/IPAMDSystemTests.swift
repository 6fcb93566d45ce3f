import Foundation
import IPAMProtocol
import TestSupport
import Testbed
import Testing
import WireJSON

#if canImport(Glibc)
    import Glibc
#endif

/// Issue 12's system proof (docs/ipamd.md §11, "system (root)"): the real `nodeboot ipamd`
/// binary in a network namespace standing for the node, against the in-process testbed as
/// the m5.large it runs on. The namespace `nb-node-<pid>` is joined to the test's by a veth
/// pair (198.18.n.1 here, 198.18.n.2 there); its end is the primary ENI's NIC (its MAC, and
/// the instance's primary address, so the daemon's SNAT of its own traffic is a no-op). The
/// testbed's attach hook plays the hypervisor: each ENI EC2 attaches becomes a NIC `eth<device>`
/// with its MAC in the node namespace, the peer of a port in `nb-vpc-<pid>`; a detach unplugs it.
/// The tests drive adds and deletes through the socket (a file under `--root`, reachable from
/// here) and look at what a user would: the status reply, the daemon's log, EC2's model, and
/// the node's links, addresses, routes, rules, sysctls and nftables table.
@Suite("nodeboot ipamd in a network namespace", .serialized)
struct IPAMDSystemTests {
    /// Nil when this machine can run these tests, else why not.
    static let unavailable: String? = {
        guard geteuid() == 0 else { return "skipped (needs root and network namespaces: running as uid \(geteuid()))" }
        guard ChildProcess.exists("ip") else { return "skipped (needs root and network namespaces: iproute2's ip is missing)" }
        let probe = "nbsysprobe-\(getpid())"
        let said = shellOutput("ip netns add \(probe)")
        guard said.status == 0 else {
            return "skipped (needs root and network namespaces: ip netns add \(probe): \(said.output))"
        }
        _ = shellOutput("ip netns del \(probe)")
        guard ChildProcess.exists("nft") else { return "skipped (needs nft: apt-get install nftables)" }
        return nil
    }()

    static let instanceID = "i-1234567890abcdef0"
    static let limits = "m5.large allows 3 ENIs × 10 IPv4 addresses"

    @Test(
        "secondary IPv4: the pool fills to WARM_ENI_TARGET on the primary ENI; pods make it grow a second and a third ENI, each plugged in, wired and tagged; the 28th pod is refused naming the m5.large's limits; deleted pods' addresses cool down before reuse; the node's links, tables, rules, sysctls and nft table as §5",
        .enabled(if: unavailable == nil, Comment(rawValue: unavailable ?? "")))
    func secondaryAddresses() async throws {
        try await Self.withNode(settings: ["IP_COOLDOWN_PERIOD": "3"]) { node in
            let started = ContinuousClock.now
            let filled = try await node.waitForStatus("the primary ENI's 9 secondary addresses (WARM_ENI_TARGET=1)") {
                $0["total"]?.int == 9 && $0["free"]?.int == 9 && $0["enis"]?.array?.count == 1
            }
            #expect(filled["ready"]?.bool == true)
            #expect(filled["mode"]?.string == "ipv4-secondary")
            #expect(filled["instance"]?.string == Self.instanceID)
            #expect(filled["limits"]?.string == Self.limits)
            #expect(filled["maxPods"]?.int == 29)
            var enis = await node.managedENIs()
            #expect(enis.map(\.privateIpAddresses.count) == [10], "EC2: the primary address and 9 secondaries")
            try await node.expectHost(enis: enis)
            try await node.expectPacketFilter()
            let conflist = try String(contentsOfFile: node.root + "/etc/cni/net.d/10-nodeboot.conflist", encoding: .utf8)
            #expect(conflist.contains(#""ipFamily":"ipv4""#) && conflist.contains(#""mtu":9001"#))
            let filledAt = ContinuousClock.now - started

            // Pods: the 1st empties the warm ENI's worth, so a second ENI comes; the 10th, a third.
            var assignments: [Assignment] = []
            for index in 0..<27 { assignments.append(try await node.add(index)) }
            let full = try await node.waitForStatus("27 addresses, all assigned, on 3 ENIs") {
                $0["total"]?.int == 27 && $0["assigned"]?.int == 27 && $0["enis"]?.array?.count == 3
            }
            #expect(full["free"]?.int == 0)
            let refusal = try await node.refusal(27, containing: "cannot grow")
            #expect(refusal.code == .noAddress && refusal.retry)
            #expect(
                refusal.message
                    == "no free address: ipamd has 0 of 27 free and cannot grow: \(Self.limits); all 27 are assigned")
            let grownAt = ContinuousClock.now - started

            // EC2: three ENIs attached at devices 0-2, each with 9 pod addresses; the two new ones
            // nodeboot's (description, tags), deleted with the instance.
            enis = await node.managedENIs()
            #expect(enis.map { $0.attachment?.deviceIndex ?? -1 } == [0, 1, 2])
            #expect(enis.allSatisfy { $0.privateIpAddresses.count == 10 && $0.status == "in-use" })
            #expect(enis.allSatisfy { $0.attachment?.deleteOnTermination == true }, "DeleteOnTermination on every ENI")
            for eni in enis.dropFirst() {
                #expect(eni.description == "nodeboot-\(Self.instanceID)")
                #expect(eni.tags["node.k8s.amazonaws.com/instance_id"] == Self.instanceID)
                #expect(eni.tags["cluster.k8s.amazonaws.com/name"] == "my-cluster")
                let created = eni.tags["node.k8s.amazonaws.com/createdAt"] ?? ""
                #expect((try? Date(created, strategy: .iso8601)) != nil, "createdAt '\(created)' is RFC 3339")
                #expect(eni.subnetId == enis[0].subnetId && eni.securityGroupIds == enis[0].securityGroupIds)
            }
            #expect(node.hookFailures.current.isEmpty, "\(node.hookFailures.current)")
            // Every pod has its own address, one of its ENI's secondaries, with that ENI's table.
            #expect(Set(assignments.flatMap(\.ips)).count == 27)
            for assignment in assignments {
                let eni = enis.first { $0.networkInterfaceId == assignment.eni }
                let address = assignment.ips.first.map { String($0.dropLast(3)) } ?? ""
                #expect(
                    assignment.ips.first?.hasSuffix("/32") == true
                        && eni?.privateIpAddresses.dropFirst().contains(address) == true,
                    "\(assignment)")
                #expect(assignment.device == eni?.attachment?.deviceIndex)
                #expect(assignment.table == (assignment.device == 0 ? 254 : assignment.device + 1))
                #expect(assignment.mtu == 9001 && assignment.vpcCIDRs == ["192.0.2.0/24"] && !assignment.externalSNAT)
            }
            // Packing: the primary ENI's 9 first, then the second's, then the third's.
            #expect(
                assignments.map(\.device) == Array(repeating: 0, count: 9) + Array(repeating: 1, count: 9)
                    + Array(repeating: 2, count: 9))

            // The node: both new NICs up and wired, the host part unchanged.
            try await node.expectHost(enis: enis)
            try await node.expectPacketFilter()
            let log = node.log
            for eni in enis.dropFirst() {
                #expect(
                    log.contains(
                        "ipamd: attached \(eni.networkInterfaceId) at device \(eni.attachment?.deviceIndex ?? -1) with 9 addresses"
                    ),
                    "\(log)")
            }
            // The pool's decision in the status reply, as of the last pass.
            let decided = try await node.waitForStatus("the decision at the limit") {
                $0["target"]?.string?.hasPrefix("0 free") == true
            }
            #expect(
                decided["target"]?.string
                    == "0 free of 27, 27 assigned (WARM_ENI_TARGET=1): cannot grow: \(Self.limits); all 27 are assigned")

            // Deleted pods' addresses cool down for IP_COOLDOWN_PERIOD=3: none is handed out again
            // before (the refusal says when the first is free), then they are.
            let deleting = ContinuousClock.now
            for index in assignments.indices { try await node.delete(index) }
            if ContinuousClock.now - deleting < .seconds(2) {  // else the first may be free already
                let reply = try await node.tryAdd(27)
                guard case .failed(let cooling) = reply else {
                    Issue.record("an add while every address cools down answered \(reply)")
                    return
                }
                #expect(
                    cooling.code == .noAddress
                        && cooling.message.hasPrefix(
                            "no free address: ipamd has 0 of 27 free, 27 cooling down (the first is free again in "),
                    "\(cooling.message)")
            }
            _ = try await node.waitForStatus("27 free again after the cooldown") {
                $0["free"]?.int == 27 && $0["cooling"]?.int == 0 && $0["assigned"]?.int == 0
            }
            let reused = try await node.add(27)
            #expect(reused.device == 0 && assignments.flatMap(\.ips).contains(reused.ips.first ?? ""))
            print(
                "ipamd system (secondary IPv4): filled in \(Self.seconds(filledAt)) s, 3 ENIs and the limit in \(Self.seconds(grownAt)) s, "
                    + "\(Self.seconds(ContinuousClock.now - started)) s in all")
        }
    }

    @Test(
        "WARM_IP_TARGET=3: the pool holds exactly 3 spare addresses as pods come, on a second ENI once the primary is full; when the pods leave, the addresses above target go back to EC2 after the cooldown, and the young spare ENI stays",
        .enabled(if: unavailable == nil, Comment(rawValue: unavailable ?? "")))
    func warmIPTarget() async throws {
        try await Self.withNode(settings: ["WARM_IP_TARGET": "3", "IP_COOLDOWN_PERIOD": "1"]) { node in
            let started = ContinuousClock.now
            _ = try await node.waitForStatus("3 addresses on the primary ENI") { $0["total"]?.int == 3 && $0["free"]?.int == 3 }
            for index in 0..<12 { _ = try await node.add(index) }
            let grown = try await node.waitForStatus("12 assigned and 3 spare") {
                $0["total"]?.int == 15 && $0["assigned"]?.int == 12 && $0["free"]?.int == 3
            }
            #expect(grown["enis"]?.array?.compactMap { $0["addresses"]?.int } == [9, 6], "the primary ENI full, then the second")
            var enis = await node.managedENIs()
            #expect(enis.map { $0.privateIpAddresses.count - 1 } == [9, 6], "EC2 agrees")
            try await node.expectHost(enis: enis)
            for index in 0..<12 { try await node.delete(index) }
            let shrunk = try await node.waitForStatus("back to 3 addresses") { $0["total"]?.int == 3 && $0["free"]?.int == 3 }
            #expect(shrunk["cooling"]?.int == 0 && shrunk["assigned"]?.int == 0)
            // The pool lets go of the addresses before UnassignPrivateIpAddresses is answered: wait for EC2 too.
            for _ in 0..<100 {
                enis = await node.managedENIs()
                if enis.map({ $0.privateIpAddresses.count - 1 }).reduce(0, +) == 3 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(enis.map { $0.privateIpAddresses.count - 1 }.reduce(0, +) == 3, "EC2 took back 12 addresses: \(enis)")
            #expect(enis.count == 2, "the second ENI is younger than 60 s: kept (the pool's hysteresis)")
            let calls = await node.testbed.requests().compactMap(\.action)
            #expect(calls.contains("UnassignPrivateIpAddresses"))
            #expect(calls.filter { $0 == "CreateNetworkInterface" }.count == 1)
            try await node.expectHost(enis: enis)
            print("ipamd system (WARM_IP_TARGET): \(Self.seconds(ContinuousClock.now - started)) s")
        }
    }

    @Test(
        "prefix delegation: one /28 on the primary ENI; the first pod makes a second /28 come on it (WARM_PREFIX_TARGET=1 keeps a whole /28 free; no new ENI); 16 pods are packed into the first; once they leave and cool down, the /28 above target goes back to EC2; the node as §5",
        .enabled(if: unavailable == nil, Comment(rawValue: unavailable ?? "")))
    func prefixDelegation() async throws {
        try await Self.withNode(settings: ["ENABLE_PREFIX_DELEGATION": "true", "IP_COOLDOWN_PERIOD": "1"]) { node in
            let started = ContinuousClock.now
            let filled = try await node.waitForStatus("one /28 (WARM_PREFIX_TARGET=1)") {
                $0["total"]?.int == 16 && $0["enis"]?.array?.first?["prefixes"]?.array?.count == 1
            }
            #expect(filled["mode"]?.string == "ipv4-prefix")
            var enis = await node.managedENIs()
            #expect(enis.count == 1 && enis.first?.ipv4Prefixes.count == 1 && enis.first?.privateIpAddresses.count == 1)
            let first = try #require(enis.first?.ipv4Prefixes.first)
            #expect(filled["enis"]?.array?.first?["prefixes"]?.array?.compactMap(\.string) == [first])
            try await node.expectHost(enis: enis)
            try await node.expectPacketFilter()

            var addresses: [String] = []
            for index in 0..<16 {
                let assignment = try await node.add(index)
                addresses += assignment.ips
                #expect(assignment.device == 0 && assignment.table == 254)
            }
            #expect(Set(addresses).count == 16)
            #expect(addresses.allSatisfy { Self.contains(first, $0) }, "every pod from \(first): \(addresses)")
            _ = try await node.waitForStatus("a second /28 on the primary ENI") {
                $0["total"]?.int == 32 && $0["enis"]?.array?.count == 1
            }
            enis = await node.managedENIs()
            #expect(enis.count == 1 && enis.first?.ipv4Prefixes.count == 2, "a second /28, not a new ENI")
            for index in 0..<16 { try await node.delete(index) }
            let given = try await node.waitForStatus("one /28 given back after the cooldown") {
                $0["total"]?.int == 16 && $0["enis"]?.array?.first?["prefixes"]?.array?.count == 1
            }
            #expect(given["assigned"]?.int == 0 && given["free"]?.int == 16)
            // The pool lets go of the /28 before its UnassignPrivateIpAddresses is answered: wait for EC2 too.
            for _ in 0..<100 {
                enis = await node.managedENIs()
                if enis.first?.ipv4Prefixes.count == 1 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(enis.first?.ipv4Prefixes.count == 1)
            let calls = await node.testbed.requests().compactMap(\.action)
            #expect(!calls.contains("CreateNetworkInterface"))
            #expect(calls.filter { $0 == "UnassignPrivateIpAddresses" }.count == 1)
            #expect(calls.filter { $0 == "AssignPrivateIpAddresses" }.count == 2)
            try await node.expectHost(enis: enis)
            print("ipamd system (prefix delegation): \(Self.seconds(ContinuousClock.now - started)) s")
        }
    }

    @Test(
        "IPv6 (ipamd.json ipFamily ipv6): one /80 on the primary ENI and no other EC2 change; a pod gets a /128 from it; no NAT table; IPv6 forwarding and accept_ra as §5",
        .enabled(if: unavailable == nil, Comment(rawValue: unavailable ?? "")))
    func ipv6() async throws {
        try await Self.withNode(settings: [:], ipFamily: "ipv6") { node in
            let started = ContinuousClock.now
            let filled = try await node.waitForStatus("a /80 on the primary ENI") {
                $0["enis"]?.array?.first?["prefixes"]?.array?.count == 1
            }
            #expect(filled["mode"]?.string == "ipv6" && filled["ready"]?.bool == true)
            let enis = await node.managedENIs()
            #expect(enis.count == 1)
            let prefix = try #require(enis.first?.ipv6Prefixes.first)
            #expect(enis.first?.ipv6Prefixes.count == 1 && prefix.hasSuffix("/80"))
            #expect(filled["enis"]?.array?.first?["prefixes"]?.array?.compactMap(\.string) == [prefix])
            let assignment = try await node.add(0)
            let address = try #require(assignment.ips.first)
            #expect(address.hasSuffix("/128") && Self.contains(prefix, address), "\(address) from \(prefix)")
            #expect(assignment.device == 0 && assignment.table == 254)
            let calls = await node.testbed.requests().compactMap(\.action)
            #expect(calls.filter { $0 == "AssignIpv6Addresses" }.count == 1)
            #expect(!calls.contains("CreateNetworkInterface") && !calls.contains("AssignPrivateIpAddresses"))
            let conflist = try String(contentsOfFile: node.root + "/etc/cni/net.d/10-nodeboot.conflist", encoding: .utf8)
            #expect(conflist.contains(#""ipFamily":"ipv6""#))
            // §5: no NAT table for IPv6 pods (they have VPC addresses).
            let table = try await ChildProcess.run(
                ["ip", "netns", "exec", node.namespace, "nft", "list", "table", "ip", "nodeboot"],
                environment: ChildProcess.cleanEnvironment())
            #expect(table.status != 0, "no table ip nodeboot: \(table.stdout)")
            let link = try #require(try await node.json("link", "show", "eth0").first)
            #expect(link["mtu"] as? Int == 9001 && (link["flags"] as? [String])?.contains("UP") == true)
            // §5: IPv6 forwarding, and router advertisements still accepted on the primary interface.
            #expect(try await node.sysctl("net.ipv6.conf.all.forwarding") == "1")
            #expect(try await node.sysctl("net.ipv6.conf.eth0.accept_ra") == "2")
            print("ipamd system (IPv6): \(Self.seconds(ContinuousClock.now - started)) s")
        }
    }
}

// MARK: - The node

extension IPAMDSystemTests {
    /// The namespaces, the testbed and the daemon of one test.
    struct Node: Sendable {
        let namespace: String
        let vpcNamespace: String
        let root: String
        let testbed: Testbed
        let primaryMAC: String
        let primaryAddress: String
        /// The test's link to the node, `198.18.n.0/30`.
        let link: String
        let hookFailures: Locked<[String]>
        var socket: String { root + "/run/nodeboot/ipamd.sock" }
        var logPath: String { root + "/ipamd.log" }
        var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

        // MARK: the socket

        func send(_ request: Request) async throws -> Reply {
            let client = IPAMClient(socketPath: socket, connectTimeout: .seconds(1), answerTimeout: .seconds(5))
            // On a thread of its own: the blocking client must not hold the cooperative pool,
            // which the in-process testbed needs to answer the daemon.
            let result = await withCheckedContinuation {
                (continuation: CheckedContinuation<Result<Reply, IPAMClient.Failure>, Never>) in
                Thread.detachNewThread {
                    do throws(IPAMClient.Failure) {
                        continuation.resume(returning: .success(try client.send(request)))
                    } catch {
                        continuation.resume(returning: .failure(error))
                    }
                }
            }
            return try result.get()
        }

        func status() async throws -> JSON {
            guard case .status(let status) = try await send(.status) else { throw TestSupportError("status: not a status reply") }
            return status
        }

        /// Polls the status reply until `condition` holds (the socket may not be there yet).
        @discardableResult
        func waitForStatus(
            _ what: String, timeout: Duration = .seconds(45), _ condition: (JSON) -> Bool
        ) async throws -> JSON {
            let deadline = ContinuousClock.now + timeout
            var last = "no answer"
            while ContinuousClock.now < deadline {
                if let status = try? await status() {
                    if condition(status) { return status }
                    last = status.text
                }
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TestSupportError("ipamd's status never showed \(what) within \(timeout); last: \(last)")
        }

        static func key(_ index: Int) -> AttachmentKey {
            AttachmentKey(container: "sys\(index)", ifname: "eth0", network: "nodeboot")
        }

        /// Adds pod `index`, again while the pool is still growing (a retryable refusal that
        /// does not say it cannot grow), as the container runtime repeats an ADD.
        func add(_ index: Int) async throws -> Assignment {
            let deadline = ContinuousClock.now + .seconds(45)
            while true {
                let reply = try await tryAdd(index)
                switch reply {
                case .added(let assignment): return assignment
                case .failed(let error)
                where error.code == .noAddress && error.retry && !error.message.contains("cannot grow")
                    && ContinuousClock.now < deadline:
                    try await Task.sleep(for: .milliseconds(50))
                default: throw TestSupportError("add of pod \(index) answered \(reply)")
                }
            }
        }

        /// One add of pod `index`, as the CNI plugin sends it.
        func tryAdd(_ index: Int) async throws -> Reply {
            let pod = PodReference(namespace: "default", name: "pod\(index)", uid: "uid\(index)")
            return try await send(.add(Self.key(index), netns: "/var/run/netns/pod\(index)", pod: pod))
        }

        /// The refusal of an add of pod `index` once its message contains `text`.
        func refusal(_ index: Int, containing text: String) async throws -> ProtocolError {
            let deadline = ContinuousClock.now + .seconds(30)
            var last = "nothing"
            while ContinuousClock.now < deadline {
                let reply = try await tryAdd(index)
                if case .failed(let error) = reply, error.message.contains(text) { return error }
                last = "\(reply)"
                try await Task.sleep(for: .milliseconds(100))
            }
            throw TestSupportError("pod \(index)'s add never said '\(text)'; last: \(last)")
        }

        func delete(_ index: Int) async throws {
            let reply = try await send(.del(Self.key(index), pod: nil, reason: "system test"))
            guard case .deleted(true, _) = reply else { throw TestSupportError("del of pod \(index) answered \(reply)") }
        }

        // MARK: EC2

        /// The ENIs attached to the instance, by device index.
        func managedENIs() async -> [TestbedNetworkInterface] {
            await testbed.networkInterfaces().filter { $0.attachment?.instanceId == IPAMDSystemTests.instanceID }
                .sorted { ($0.attachment?.deviceIndex ?? 0) < ($1.attachment?.deviceIndex ?? 0) }
        }

        // MARK: the node's network

        func json(_ arguments: String...) async throws -> [[String: Any]] {
            let output = try await IPAMDSystemTests.run(["ip", "-n", namespace, "-j"] + arguments)
            return try #require(try JSONSerialization.jsonObject(with: Data(output.utf8)) as? [[String: Any]], "\(output)")
        }

        func sysctl(_ name: String) async throws -> String {
            try await IPAMDSystemTests.run(["ip", "netns", "exec", namespace, "sysctl", "-n", name])
                .trimmingCharacters(in: .whitespacesAndNewlines)
        }

        /// docs/ipamd.md §5 for these ENIs (EC2's view): each ENI's NIC found by MAC, MTU 9001,
        /// up, loose rp_filter; a secondary ENI's address, its table and rule, no subnet route in
        /// main; the mark rule; ip_forward. The rules are exactly these.
        func expectHost(enis: [TestbedNetworkInterface]) async throws {
            let links = try await json("link", "show")
            #expect(try await sysctl("net.ipv4.ip_forward") == "1")
            var rules = ["0 from all lookup local", "1024 from all fwmark 0x80/0x80 lookup main"]
            for eni in enis {
                let device = eni.attachment?.deviceIndex ?? -1
                let link = links.first { ($0["address"] as? String) == eni.macAddress }
                let name = link?["ifname"] as? String ?? "?"
                #expect(name == "eth\(device)", "the NIC of \(eni.networkInterfaceId) (\(eni.macAddress))")
                #expect(link?["mtu"] as? Int == 9001, "\(name): MTU")
                #expect((link?["flags"] as? [String])?.contains("UP") == true, "\(name): up")
                #expect(try await sysctl("net.ipv4.conf.\(name).rp_filter") == "2", "\(name): rp_filter")
                guard device > 0, let primary = eni.privateIpAddresses.first else { continue }
                let addresses = try await json("-4", "address", "show", "dev", name).first?["addr_info"] as? [[String: Any]]
                #expect(addresses?.map { "\($0["local"] ?? "")/\($0["prefixlen"] ?? "")" } == ["\(primary)/24"], "\(name)")
                let table = try await json("route", "show", "table", "\(device + 1)")
                #expect(
                    table.map { "\($0["dst"] ?? "") \($0["gateway"].map { "via \($0) " } ?? "")dev \($0["dev"] ?? "")" }.sorted()
                        == ["192.0.2.1 dev \(name)", "default via 192.0.2.1 dev \(name)"], "table \(device + 1)")
                rules.append("32765 from \(primary) lookup \(device + 1)")
            }
            let main = try await json("route", "show", "table", "main")
            #expect(
                main.map { "\($0["dst"] ?? "") dev \($0["dev"] ?? "")" }.sorted() == [
                    "\(link) dev eth0"
                ], "main: only the test's link (no ENI subnet route)")
            rules += ["32766 from all lookup main", "32767 from all lookup default"]
            let shown = try await json("rule", "show").map { rule in
                "\(rule["priority"] ?? "") from \(rule["src"] ?? "")"
                    + (rule["fwmark"].map { " fwmark \($0)/\(rule["fwmask"] ?? "")" } ?? "") + " lookup \(rule["table"] ?? "")"
            }
            #expect(shown == rules)
        }

        /// The table `ip nodeboot` of §5, as nft lists it (its text and its JSON): the VPC's CIDR,
        /// no excluded CIDRs, the connmark chain and the SNAT chain to the primary address.
        func expectPacketFilter() async throws {
            let text = try await IPAMDSystemTests.run([
                "ip", "netns", "exec", namespace, "nft", "list", "table", "ip", "nodeboot",
            ])
            #expect(
                text == """
                    table ip nodeboot {
                    \tset vpc {
                    \t\ttype ipv4_addr
                    \t\tflags interval
                    \t\telements = { 192.0.2.0/24 }
                    \t}

                    \tset nosnat {
                    \t\ttype ipv4_addr
                    \t\tflags interval
                    \t}

                    \tchain pre {
                    \t\ttype filter hook prerouting priority mangle; policy accept;
                    \t\tiifname "eni*" ct state new ip daddr != @vpc ip daddr != @nosnat ct mark set ct mark | 0x00000080
                    \t\tiifname "eth0" ct state new fib daddr type local ct mark set ct mark | 0x00000080
                    \t\tiifname "eni*" meta mark set ct mark & 0x00000080
                    \t}

                    \tchain post {
                    \t\ttype nat hook postrouting priority srcnat; policy accept;
                    \t\tip daddr @vpc return
                    \t\tip daddr @nosnat return
                    \t\tfib daddr type local return
                    \t\tsnat to \(primaryAddress) fully-random
                    \t}
                    }

                    """)
            let listing = try await IPAMDSystemTests.run(
                ["ip", "netns", "exec", namespace, "nft", "-j", "list", "table", "ip", "nodeboot"])
            let objects = try #require(
                (try JSONSerialization.jsonObject(with: Data(listing.utf8)) as? [String: Any])?["nftables"] as? [[String: Any]])
            func all(_ kind: String) -> [[String: Any]] { objects.compactMap { $0[kind] as? [String: Any] } }
            #expect(all("table").map { "\($0["family"] ?? "") \($0["name"] ?? "")" } == ["ip nodeboot"])
            #expect(
                all("set").map { set in
                    let flags = (set["flags"] as? [String])?.joined(separator: ",") ?? ""
                    return "\(set["name"] ?? "") \(set["type"] ?? "") \(flags) \(set["elem"] == nil ? "empty" : "elements")"
                } == ["vpc ipv4_addr interval elements", "nosnat ipv4_addr interval empty"])
            #expect(
                all("chain").map {
                    "\($0["name"] ?? "") \($0["type"] ?? "") \($0["hook"] ?? "") \($0["prio"] ?? "") \($0["policy"] ?? "")"
                }
                    == ["pre filter prerouting -150 accept", "post nat postrouting 100 accept"])
            let rules = all("rule").map { $0["chain"] as? String ?? "" }
            #expect(rules == ["pre", "pre", "pre", "post", "post", "post", "post"])
            let ruleset = try await IPAMDSystemTests.run(["ip", "netns", "exec", namespace, "nft", "list", "tables"])
            #expect(ruleset == "table ip nodeboot\n", "nothing else in the node's nftables")
        }
    }

    /// The n of 198.18.n.0/30, the link between the test and the node (the restart test uses
    /// 198.19.0.0/16): from the pid, the next one not on a link here (another test run).
    static func freeOctet() async throws -> Int {
        let used = try await run(["ip", "-4", "-o", "address", "show"])
        let start = Int(getpid() % 250)
        return (0..<250).map { (start + $0) % 250 + 1 }.first { !used.contains(" 198.18.\($0).1/") } ?? start + 1
    }

    /// Sets up the node (namespaces, the link, the testbed with its hooks, ipamd.json), starts
    /// `nodeboot ipamd` in it, runs `body`, stops the daemon with SIGTERM (it must exit 0), and
    /// removes everything however the test ends.
    static func withNode(
        settings: [String: String], ipFamily: String = "ipv4", _ body: (Node) async throws -> Void
    ) async throws {
        let pid = getpid()
        let namespace = "nb-node-\(pid)"
        let vpcNamespace = "nb-vpc-\(pid)"
        let hostLink = "nbsys\(pid % 100_000)"
        let octet = try await freeOctet()
        let hostAddress = "198.18.\(octet).1"
        let primaryAddress = "198.18.\(octet).2"
        let primaryMAC = "0e:49:61:0f:c3:11"
        let root = try temporaryDirectory("nbsys")
        let daemon = Locked<Process?>(nil)
        // Whatever happens below: the daemon killed, the namespaces (and with them every NIC and
        // the node's end of the link), the link and the root removed.
        defer {
            if let process = daemon.current, process.isRunning { kill(process.processIdentifier, SIGKILL) }
            for command in ["ip netns del \(namespace)", "ip netns del \(vpcNamespace)", "ip link del \(hostLink)"] {
                _ = shellOutput(command)  // gone already, normally: only the status differs
            }
            removeTree(root)
        }
        for command in [
            ["ip", "netns", "add", namespace], ["ip", "netns", "add", vpcNamespace],
            ["ip", "link", "add", hostLink, "type", "veth", "peer", "name", "eth0", "address", primaryMAC, "netns", namespace],
            ["ip", "address", "add", "\(hostAddress)/30", "dev", hostLink], ["ip", "link", "set", hostLink, "up"],
            ["ip", "-n", namespace, "address", "add", "\(primaryAddress)/30", "dev", "eth0"],
            ["ip", "-n", namespace, "link", "set", "eth0", "up"], ["ip", "-n", namespace, "link", "set", "lo", "up"],
            ["ip", "-n", vpcNamespace, "link", "set", "lo", "up"],
        ] {
            _ = try await run(command)
        }

        // The m5.large whose primary address is the node's end of the link.
        let configuration = try JSONDecoder().decode(
            TestbedConfiguration.self,
            from: Data(
                """
                {"instance": {"metadata": {"values": {"instance-id": "\(instanceID)", "instance-type": "m5.large",
                  "local-ipv4": "\(primaryAddress)", "mac-local-ipv4s": "\(primaryAddress)", "mac": "\(primaryMAC)"}},
                  "dynamic": {"values": {"instance-identity-document": {"region": "us-west-2",
                    "availabilityZone": "us-west-2f", "instanceId": "\(instanceID)", "instanceType": "m5.large"}}}}}
                """.utf8))
        let testbed = try await Testbed.start(configuration, host: hostAddress)
        let hookFailures = Locked<[String]>([])
        // The hypervisor: an attached ENI is a NIC eth<device> with its MAC in the node (down, MTU
        // 1500, as a hot-plugged NIC comes), the peer of vpc<device> in the VPC namespace.
        await testbed.setNetworkHooks(
            onAttach: { event in
                let device = event.deviceIndex
                for command in [
                    [
                        "ip", "-n", vpcNamespace, "link", "add", "vpc\(device)", "type", "veth", "peer", "name", "eth\(device)",
                        "address", event.macAddress, "netns", namespace,
                    ],
                    ["ip", "-n", vpcNamespace, "link", "set", "vpc\(device)", "up"],
                ] {
                    if let failure = await attempt(command) { hookFailures.update { $0.append(failure) } }
                }
            },
            onDetach: { event in
                if let failure = await attempt(["ip", "-n", vpcNamespace, "link", "del", "vpc\(event.deviceIndex)"]) {
                    hookFailures.update { $0.append(failure) }
                }
            })
        let node = Node(
            namespace: namespace, vpcNamespace: vpcNamespace, root: root, testbed: testbed, primaryMAC: primaryMAC,
            primaryAddress: primaryAddress, link: "198.18.\(octet).0/30", hookFailures: hookFailures)
        do {
            // What `nodeboot init --daemon nodeboot-ipamd` renders for this node.
            try FileManager.default.createDirectory(atPath: root + "/etc/nodeboot", withIntermediateDirectories: true)
            try
                (#"{"schema":"nodeboot.ipamd/v1","cluster":"my-cluster","ipFamily":"\#(ipFamily)","maxPods":29,"#
                + #""instanceType":"m5.large","limits":{"maxENIs":3,"ipv4PerENI":10,"source":"table"},"vethPrefix":"eni"}"#
                + "\n").write(toFile: root + "/etc/nodeboot/ipamd.json", atomically: true, encoding: .utf8)
            FileManager.default.createFile(atPath: node.logPath, contents: nil)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["ip", "netns", "exec", namespace, IPAMDCommandTests.binary, "ipamd", "--root", root]
            var environment = testbed.environment
            environment["SWIFT_BACKTRACE"] = "enable=no"
            environment.merge(settings) { $1 }
            process.environment = ChildProcess.cleanEnvironment(environment)
            let output = try FileHandle(forWritingTo: URL(fileURLWithPath: node.logPath))
            process.standardOutput = output
            process.standardError = output
            process.standardInput = FileHandle.nullDevice
            try process.run()
            daemon.update { $0 = process }
            try await node.waitForStatus("an answer on the socket") { _ in true }
            try await body(node)
            #expect(process.isRunning, "ipamd still serving at the end: \(node.log)")
            kill(process.processIdentifier, SIGTERM)
            for _ in 0..<400 where process.isRunning { try await Task.sleep(for: .milliseconds(25)) }
            #expect(!process.isRunning && process.terminationStatus == 0, "SIGTERM: ipamd exits 0")
        } catch {
            print("ipamd's log (last 60 lines):\n" + node.log.split(separator: "\n").suffix(60).joined(separator: "\n"))
            try? await testbed.shutdown()  // the test's error is the one that matters
            throw error
        }
        try await testbed.shutdown()
    }

    /// Runs a command (on PATH) to completion; its standard output; a failure names it.
    static func run(_ arguments: [String]) async throws -> String {
        let result = try await ChildProcess.run(arguments, environment: ChildProcess.cleanEnvironment(), timeout: 20)
        guard result.status == 0 else {
            throw TestSupportError("\(arguments.joined(separator: " ")): exit \(result.status): \(result.stderr)")
        }
        return result.stdout
    }

    /// Runs a command; nil when it succeeded, else what went wrong (for the hooks, which cannot throw).
    static func attempt(_ arguments: [String]) async -> String? {
        do {
            _ = try await run(arguments)
            return nil
        } catch {
            return "\(error)"
        }
    }

    /// `sh -c command` with its output and status; for the synchronous probe and clean-up.
    static func shellOutput(_ command: String) -> (status: Int32, output: String) {
        guard let pipe = popen(command + " 2>&1", "r") else { return (-1, "popen failed") }
        var output = ""
        var buffer = [CChar](repeating: 0, count: 512)
        while fgets(&buffer, Int32(buffer.count), pipe) != nil {
            output += String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let status = pclose(pipe)
        return (status, output.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Whether `address` (`a.b.c.d/32` or `x::y/128`, or bare) is inside `prefix`.
    static func contains(_ prefix: String, _ address: String) -> Bool {
        let parts = prefix.split(separator: "/")
        guard parts.count == 2, let length = Int(parts[1]),
            let network = bytes(String(parts[0])),
            let host = bytes(String(address.split(separator: "/").first ?? ""))
        else { return false }
        guard network.count == host.count else { return false }
        for bit in 0..<length where (network[bit / 8] >> (7 - bit % 8)) & 1 != (host[bit / 8] >> (7 - bit % 8)) & 1 {
            return false
        }
        return true
    }

    static func bytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 { return withUnsafeBytes(of: &v6) { Array($0) } }
        return nil
    }

    static func seconds(_ duration: Duration) -> String {
        let (whole, fraction) = duration.components
        return String(format: "%.1f", Double(whole) + Double(fraction) / 1e18)
    }
}
