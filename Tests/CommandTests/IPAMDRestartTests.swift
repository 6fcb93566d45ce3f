import Bootstrap
import Foundation
import IPAMProtocol
import SigV4
import TestSupport
import Testbed
import Testing

#if canImport(Glibc)
    import Glibc
#endif
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// Issue 12's proof "restart safety" (docs/ipamd.md §11): the real `nodeboot ipamd` binary,
/// SIGKILLed at random moments and restarted at once while 16 clients add and delete through
/// its socket, must never hand out an address twice, lose one, or disagree with EC2 (and, as
/// root, with the kernel's pod routes).
///
/// The pool is small and busy on purpose: an instance type of 2 ENIs × 14 addresses (13 pod
/// addresses each, 26 in all) and `WARM_IP_TARGET=8`, `MINIMUM_IP_TARGET=16`, so the reconciler
/// runs all the time the clients do: it fills the primary ENI, creates a second ENI, assigns
/// addresses when the clients hold many and gives them back when they hold few (an unassign
/// intent in the checkpoint), and every restart takes the created ENI back (through the
/// checkpoint's allocations, or by adopting it from EC2's description). A kill can land in
/// any of those steps, not only in an add or a delete. `IP_COOLDOWN_PERIOD=0` during the run: a
/// released address may be handed out again at once, the most contended case (and the only one
/// in which 26 addresses serve over a thousand releases a second). The clients go on past 10,000
/// operations until the daemon has been killed 20 times (10,000 take about 4 s here, 20 kills
/// about 17 s). The last restart sets a cooldown, so the final state has assigned, cooling and
/// free addresses.
@Suite("nodeboot ipamd: restart safety", .serialized)
struct IPAMDRestartTests {
    static let clients = 16
    static let operations = 10_000
    static let minimumKills = 20
    /// Clients with an even index end with one pod added: the final state is not empty.
    static let kept = (0..<clients).filter { $0 % 2 == 0 }.count

    /// Nil when this machine can run the namespace variant, else why it cannot.
    static let unavailable: String? = {
        guard geteuid() == 0 else { return "needs root for network namespaces (running as uid \(geteuid()))" }
        guard ChildProcess.exists("ip") else { return "needs iproute2's ip" }
        let probe = "nbrsprobe-\(getpid())"
        guard Spawn.run(["ip", "netns", "add", probe]) == 0 else {
            return "needs network namespaces: ip netns add \(probe) failed"
        }
        _ = Spawn.run(["ip", "netns", "del", probe])
        return nil
    }()

    @Test(
        "10,000 adds and dels or more from 16 clients while ipamd is SIGKILLed at random (20 times or more) and restarted: no address held twice, none lost, checkpoint = ledgers = EC2"
    )
    func killedAtRandom() async throws {
        try await RestartRun(namespace: nil).run()
    }

    @Test(
        "as root, ipamd in a network namespace and every pod wired as a /32 route to an eni* link: after 10,000 operations or more under SIGKILL, the kernel's pod routes = the checkpoint",
        .enabled(if: unavailable == nil, Comment(rawValue: unavailable ?? "")))
    func killedAtRandomWithPodRoutes() async throws {
        try await RestartRun(namespace: "nbrs-\(getpid())").run()
    }
}

// MARK: - An EC2 change interrupted

/// The random kills rarely land inside an ENI's creation or release (one or two per run): these
/// two kill the daemon there on purpose. The testbed holds one EC2 call without answering (and
/// without carrying it out), the daemon is killed while it waits, and is started again.
extension IPAMDRestartTests {
    @Test(
        "a SIGKILL between CreateNetworkInterface and its attach leaves no ENI behind: the restart attaches or deletes it (docs/ipamd.md §4 step 1, §6 intent createENI)"
    )
    func killedWhileCreatingENI() async throws {
        try await Self.withDaemon(
            faults: [FaultRule(endpoint: .ec2, action: "AttachNetworkInterface", blackhole: true, count: 1)],
            settings: ["WARM_IP_TARGET": "1", "MINIMUM_IP_TARGET": "20"]
        ) { testbed, daemon, root in
            // 20 addresses need a second ENI at once; its attach is never answered.
            let created = await Self.waitFor(testbed) { $0.contains { $0.description.hasPrefix("nodeboot-") } }
            try #require(created, "ipamd created no ENI")
            try await Task.sleep(for: .milliseconds(500))
            await daemon.kill()
            await testbed.setFaults([])
            try daemon.start()
            let state = try #require(await RestartRun(namespace: nil).settle(testbed: testbed, root: root))
            #expect(state.agrees, "ipamd's ENIs \(state.statusENIs), EC2's \(state.ec2Addresses.mapValues(\.count))")
            #expect(
                state.detached.isEmpty,
                "ENIs nodeboot created, attached to nothing after the restart (leaked): \(state.detached.map { "\($0.networkInterfaceId) \($0.status)" })"
            )
        }
    }

    @Test(
        "a SIGKILL between detaching a spare ENI and deleting it leaves no ENI behind: the restart deletes it (docs/ipamd.md §4 free an ENI, §6 intent freeENI)"
    )
    func killedWhileFreeingENI() async throws {
        try await Self.withDaemon(faults: [], settings: ["WARM_ENI_TARGET": "2"]) { testbed, daemon, root in
            // Two full ENIs: the primary and one ipamd created.
            let grown = try #require(await RestartRun(namespace: nil).settle(testbed: testbed, root: root))
            try #require(grown.managed.count == 2, "ipamd did not grow to two ENIs: \(grown.statusENIs)")
            let spare = try #require(grown.managed.first { $0.description.hasPrefix("nodeboot-") }).networkInterfaceId
            // Made long ago, as far as its tag tells a restart (an ENI younger than 60 s is kept).
            try await Self.tag(testbed, spare, "node.k8s.amazonaws.com/createdAt", "2020-01-01T00:00:00Z")
            // Restarted with no warm ENI: the spare is detached, and its delete is never answered.
            await daemon.kill()
            daemon.setEnvironment("WARM_ENI_TARGET", "0")
            await testbed.setFaults([FaultRule(endpoint: .ec2, action: "DeleteNetworkInterface", blackhole: true, count: 1)])
            try daemon.start()
            let detached = await Self.waitFor(testbed) { $0.contains { $0.networkInterfaceId == spare && $0.attachment == nil } }
            try #require(detached, "ipamd did not detach the spare ENI \(spare)")
            try await Task.sleep(for: .milliseconds(500))
            await daemon.kill()
            await testbed.setFaults([])
            try daemon.start()
            let state = try #require(await RestartRun(namespace: nil).settle(testbed: testbed, root: root))
            #expect(state.agrees, "ipamd's ENIs \(state.statusENIs), EC2's \(state.ec2Addresses.mapValues(\.count))")
            #expect(
                state.detached.isEmpty,
                "ENIs nodeboot created, attached to nothing after the restart (leaked): \(state.detached.map { "\($0.networkInterfaceId) \($0.status)" })"
            )
        }
    }

    /// The testbed (2 ENIs × 14 addresses) with `faults`, and the daemon started with `settings`;
    /// every daemon is killed and the root removed however `body` ends.
    static func withDaemon(
        faults: [FaultRule], settings: [String: String], _ body: (Testbed, Daemon, String) async throws -> Void
    ) async throws {
        var configuration = TestbedConfiguration.default
        configuration.instanceTypes = [
            .init(instanceType: "m4.xlarge", maximumNetworkInterfaces: 2, ipv4AddressesPerInterface: 14)
        ]
        configuration.faults = faults
        let testbed = try await Testbed.start(configuration)
        let root = NSTemporaryDirectory() + "nb-restart-\(UUID().uuidString.prefix(8))"
        var environment = testbed.environment.merging(settings) { $1 }
        environment["NODEBOOT_IPAMD_HOST_NETWORK"] = "skip"
        environment["NODEBOOT_IPAMD_METRICS_ADDRESS"] = "127.0.0.1:\(try freeLoopbackPort())"
        environment["SWIFT_BACKTRACE"] = "enable=no"
        let daemon = Daemon(
            command: [IPAMDCommandTests.binary, "ipamd", "--root", root], environment: ChildProcess.cleanEnvironment(environment),
            log: NSTemporaryDirectory() + "nb-restart-\(getpid()).log")
        do {
            try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
            try daemon.start()
            try await body(testbed, daemon, root)
        } catch {
            await daemon.kill()
            try? FileManager.default.removeItem(atPath: root)
            try? await testbed.shutdown()
            throw error
        }
        await daemon.kill()
        try? FileManager.default.removeItem(atPath: root)
        try? FileManager.default.removeItem(atPath: daemon.logPath)
        try await testbed.shutdown()
    }

    /// Sets a tag on an ENI through the testbed's EC2 (CreateTags, signed with the instance role).
    static func tag(_ testbed: Testbed, _ eni: String, _ key: String, _ value: String) async throws {
        let url = try #require(URL(string: testbed.awsEndpoint + "/"))
        let form = [
            ("Action", "CreateTags"), ("Version", "2016-11-15"), ("ResourceId.1", eni), ("Tag.1.Key", key),
            ("Tag.1.Value", value),
        ]
        let body = Array(form.map { "\($0.0)=\(SigV4Signer.uriEncode($0.1))" }.joined(separator: "&").utf8)
        let unsigned = SigV4Request(
            method: "POST", path: "/",
            headers: [
                ("host", "\(url.host ?? ""):\(url.port ?? 80)"),
                ("content-type", "application/x-www-form-urlencoded; charset=utf-8"),
            ], body: body)
        let signed = SigV4Signer(credentials: testbed.roleCredentials, region: testbed.region, service: "ec2").sign(
            unsigned, date: Date())
        var request = URLRequest(url: url)
        request.httpMethod = "POST"
        request.httpBody = Data(body)
        for (name, value) in signed.headers where name.lowercased() != "host" {
            request.setValue(value, forHTTPHeaderField: name)
        }
        let (data, response) = try await URLSession.shared.data(for: request)
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        try #require(status == 200, "CreateTags \(eni): \(status) \(String(decoding: data, as: UTF8.self))")
    }

    /// Polls EC2's ENIs (every 50 ms, at most 20 s) until `condition` holds; whether it did.
    static func waitFor(_ testbed: Testbed, _ condition: ([TestbedNetworkInterface]) -> Bool) async -> Bool {
        for _ in 0..<400 {
            if condition(await testbed.networkInterfaces()) { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }
}

/// One run of the scenario; `namespace` nil: the host's network (no kernel part).
struct RestartRun {
    let namespace: String?
    /// The link between the test's namespace (the testbed) and the daemon's.
    var hostLink: String { "nbrs\(getpid() % 100_000)" }
    var subnet: Int { Int(getpid() % 250) + 1 }
    var testbedHost: String { namespace == nil ? "127.0.0.1" : "198.19.\(subnet).1" }

    func run() async throws {
        if let namespace { try setUpNamespace(namespace) }
        var configuration = TestbedConfiguration.default
        // 2 ENIs × 14 IPv4 addresses: 13 pod addresses per ENI, 26 in all (the instance is an m4.xlarge).
        configuration.instanceTypes = [
            .init(instanceType: "m4.xlarge", maximumNetworkInterfaces: 2, ipv4AddressesPerInterface: 14)
        ]
        let testbed: Testbed
        do {
            testbed = try await Testbed.start(configuration, host: testbedHost)
        } catch {
            tearDownNamespace()
            throw error
        }
        let base = FileManager.default.isWritableFile(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        // tmpfs where there is one, as /run is in production (the checkpoint is fsynced per change).
        let root = base + "/nb-restart-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        var environment = testbed.environment
        environment["NODEBOOT_IPAMD_HOST_NETWORK"] = "skip"
        environment["NODEBOOT_IPAMD_METRICS_ADDRESS"] = "127.0.0.1:\(try freeLoopbackPort())"
        environment["WARM_IP_TARGET"] = "8"
        environment["MINIMUM_IP_TARGET"] = "16"
        environment["IP_COOLDOWN_PERIOD"] = "0"
        // A crash ends the daemon at once (and shows as an exit of its own), not after a backtrace.
        environment["SWIFT_BACKTRACE"] = "enable=no"
        let command =
            (namespace.map { ["ip", "netns", "exec", $0] } ?? [])
            + [IPAMDCommandTests.binary, "ipamd", "--root", root]
        let daemon = Daemon(command: command, environment: ChildProcess.cleanEnvironment(environment), log: root + "/ipamd.log")
        // Every daemon is killed, the namespace and the root removed, however the run ends.
        var clean = false
        do {
            clean = try await scenario(daemon: daemon, testbed: testbed, root: root)
        } catch {
            await cleanUp(daemon: daemon, testbed: testbed, root: root, printLog: true)
            throw error
        }
        await cleanUp(daemon: daemon, testbed: testbed, root: root, printLog: !clean)
    }

    func cleanUp(daemon: Daemon, testbed: Testbed, root: String, printLog: Bool) async {
        await daemon.kill()
        if printLog, let log = try? String(contentsOfFile: root + "/ipamd.log", encoding: .utf8) {
            print("ipamd's log (last 40 lines):\n" + log.split(separator: "\n").suffix(40).joined(separator: "\n"))
        }
        try? FileManager.default.removeItem(atPath: root)
        try? await testbed.shutdown()
        tearDownNamespace()
    }

    /// The run and its assertions; false when something was found (the daemon's log is printed then).
    func scenario(daemon: Daemon, testbed: Testbed, root: String) async throws -> Bool {
        let socket = root + "/run/nodeboot/ipamd.sock"
        let shared = Shared(namespace: namespace)
        let started = ContinuousClock.now
        try daemon.start()
        // 16 clients on threads of their own: the blocking client must not hold the cooperative
        // pool, which the in-process testbed needs to answer the daemon.
        let ledgers = Locked<[Int: [AttachmentKey: String]]>([:])
        let finished = Locked(0)
        for index in 0..<IPAMDRestartTests.clients {
            Thread.detachNewThread {
                let ledger = Client(index: index, socket: socket, shared: shared, daemon: daemon).run()
                ledgers.update { $0[index] = ledger }
                finished.update { $0 += 1 }
            }
        }
        // The killer: SIGKILL at a random moment 0.2–1.5 s after the last start, restart at once.
        while finished.current < IPAMDRestartTests.clients {
            let pause = Duration.milliseconds(Int.random(in: 200...1500))
            let until = ContinuousClock.now + pause
            while ContinuousClock.now < until && finished.current < IPAMDRestartTests.clients {
                try await Task.sleep(for: .milliseconds(10))
            }
            guard finished.current < IPAMDRestartTests.clients else { break }
            if let exit = await daemon.killAndRestart() { shared.problem("ipamd exited by itself (\(exit)) before a kill") }
        }
        let clientsDone = ContinuousClock.now - started

        // One more kill, and a restart with a cooldown: a deleted pod's address is then cooling,
        // so the final state has assigned, cooling and free addresses.
        daemon.setEnvironment("IP_COOLDOWN_PERIOD", "60")
        if let exit = await daemon.killAndRestart() { shared.problem("ipamd exited by itself (\(exit)) before a kill") }
        let ledger = ledgers.current.values.reduce(into: [AttachmentKey: String]()) { $0.merge($1) { a, _ in a } }
        var final = ledger
        if let (key, address) = ledgers.current[0]?.first {
            let client = Client(index: 0, socket: socket, shared: shared, daemon: daemon)
            client.unwire(address)
            if case .deleted(let known, let assignment)? = client.send(.del(key, pod: nil, reason: "test"))?.0 {
                #expect(known && assignment?.ips == ["\(address)/32"], "the kept pod \(key) at \(address) was deleted")
            }
            final[key] = nil
        }
        let settled = await settle(testbed: testbed, root: root)
        let total = ContinuousClock.now - started
        let counts = shared.counts.current
        let log = (try? String(contentsOfFile: root + "/ipamd.log", encoding: .utf8)) ?? ""
        #expect(shared.problems.current.isEmpty, "while running: \(shared.problems.current.prefix(20))")
        guard let state = settled else {
            Issue.record("ipamd never answered a status request after the run (\(daemon.kills) kills, \(counts))")
            return false
        }
        print(
            "ipamd restart safety\(namespace.map { " (namespace \($0), pods wired as /32 routes)" } ?? " (host network, no kernel part)"): "
                + "\(counts.adds + counts.dels) operations (\(counts.adds) adds, \(counts.dels) dels, \(IPAMDRestartTests.kept) pods kept) "
                + "from \(IPAMDRestartTests.clients) clients in \(clientsDone.printed) s (\(total.printed) s in all); "
                + "\(daemon.kills) SIGKILLs and restarts; \(counts.unreachable) requests retried for no answer "
                + "(refused, reset, timed out), \(counts.refusals) for a retryable refusal (\(counts.refusalCodes)); "
                + "the pool ended with \(state.status["total"] ?? "?") addresses on \(state.managed.count) ENIs; "
                + "the reconciler meanwhile (ipamd's log): \(Self.count(log, "growing")) grows, \(Self.count(log, "giving back")) "
                + "give-backs, \(Self.count(log, "attached eni-")) ENIs attached, \(Self.count(log, "adopted eni-")) adopted again"
        )

        #expect(counts.adds + counts.dels >= IPAMDRestartTests.operations)
        #expect(daemon.kills >= IPAMDRestartTests.minimumKills, "\(daemon.kills) kills")
        check(state, ledger: final)
        if let namespace {
            // docs/ipamd.md §6 kernel traces: every pod route is an allocation and every allocation has its route.
            let routes = Set(try await podRoutes(namespace))
            #expect(routes == Set(state.allocations.map(\.address)), "kernel pod routes vs checkpoint allocations")
        }
        return shared.problems.current.isEmpty && state.agrees && state.detached.isEmpty
    }

    /// Lines of `log` that contain `text`.
    static func count(_ log: String, _ text: String) -> Int {
        log.split(separator: "\n").filter { $0.contains(text) }.count
    }

    // MARK: - The final state

    struct FinalState {
        /// The status reply as the daemon sent it.
        var text: String
        var checkpoint: [String: Any]
        var allocations: [(key: AttachmentKey, address: String, eni: String)]
        var status: [String: Any]
        /// The instance's attached ENIs ipamd manages (the primary, and those it created), by EC2.
        var managed: [TestbedNetworkInterface]
        /// ENIs nodeboot created that are attached to nothing.
        var detached: [TestbedNetworkInterface]
        var statusENIs: [String: Int]
        var intents: [Any]

        /// EC2's pod addresses by ENI (all but each ENI's own).
        var ec2Addresses: [String: Set<String>] {
            Dictionary(uniqueKeysWithValues: managed.map { ($0.networkInterfaceId, Set($0.privateIpAddresses.dropFirst())) })
        }

        /// The daemon agrees with EC2 on the ENIs and their address counts, and has no EC2 change in flight.
        var agrees: Bool {
            intents.isEmpty && statusENIs == ec2Addresses.mapValues(\.count)
        }
    }

    /// Waits (at most 20 s) until the daemon, its checkpoint and EC2 agree and stay so for half a
    /// second (the reconciler may be between an EC2 answer and its record); returns the last look.
    func settle(testbed: Testbed, root: String) async -> FinalState? {
        let paths = NodePaths(root: root)
        var last: FinalState?
        var stable = 0
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(250))
            guard let text = try? IPAMStatus.liveJSON(paths, deadline: .seconds(1)),
                let reply = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                let bytes = FileManager.default.contents(atPath: root + "/run/nodeboot/ipamd/checkpoint.json"),
                let checkpoint = try? JSONSerialization.jsonObject(with: bytes) as? [String: Any]
            else { continue }
            let interfaces = await testbed.networkInterfaces()
            let instance = await testbed.networkState().instance.instanceId
            let managed = interfaces.filter {
                guard let attachment = $0.attachment, attachment.instanceId == instance, attachment.networkCardIndex == 0 else {
                    return false
                }
                return attachment.deviceIndex == 0 || $0.description.hasPrefix("nodeboot-")
            }
            let allocations = (checkpoint["allocations"] as? [[String: Any]] ?? []).map { item in
                (
                    key: AttachmentKey(
                        container: item["container"] as? String ?? "", ifname: item["ifname"] as? String ?? "",
                        network: item["network"] as? String ?? ""),
                    address: item["address"] as? String ?? "", eni: item["eni"] as? String ?? ""
                )
            }
            var statusENIs: [String: Int] = [:]
            for eni in reply["enis"] as? [[String: Any]] ?? [] {
                statusENIs[eni["id"] as? String ?? ""] = (eni["addresses"] as? NSNumber)?.intValue ?? -1
            }
            let state = FinalState(
                text: text, checkpoint: checkpoint, allocations: allocations, status: reply, managed: managed,
                detached: interfaces.filter { $0.description.hasPrefix("nodeboot-") && $0.attachment == nil },
                statusENIs: statusENIs, intents: checkpoint["intents"] as? [Any] ?? [])
            if state.agrees, let last, last.agrees, last.text == text {
                stable += 1
                if stable >= 2 { return state }
            } else {
                stable = 0
            }
            last = state
        }
        return last
    }

    func check(_ state: FinalState, ledger: [AttachmentKey: String]) {
        let ec2 = state.ec2Addresses
        let everyEC2Address = ec2.values.reduce(into: Set<String>()) { $0.formUnion($1) }
        let addresses = state.allocations.map(\.address)
        // No address held by two keys.
        let twice = Dictionary(grouping: addresses, by: { $0 }).filter { $0.value.count > 1 }.keys.sorted()
        #expect(twice.isEmpty, "addresses allocated to two keys in the checkpoint: \(twice)")
        // The checkpoint's allocations are exactly the clients' ledgers: every answered add not deleted, nothing else.
        let recorded = Dictionary(state.allocations.map { ($0.key, $0.address) }, uniquingKeysWith: { a, _ in a })
        let missing = ledger.filter { recorded[$0.key] != $0.value }
        let extra = recorded.filter { ledger[$0.key] != $0.value }
        #expect(missing.isEmpty, "answered adds not deleted that the checkpoint lacks: \(missing)")
        #expect(extra.isEmpty, "checkpoint allocations no client holds: \(extra)")
        // Every allocation is an address EC2 lists on the ENI the checkpoint names.
        let misplaced = state.allocations.filter { ec2[$0.eni]?.contains($0.address) != true }
        #expect(misplaced.isEmpty, "allocations not on their ENI in EC2: \(misplaced.map { "\($0.address) on \($0.eni)" })")
        // The ENIs in EC2 are those the daemon reports, each with EC2's number of addresses.
        #expect(
            state.statusENIs == ec2.mapValues(\.count),
            "ENIs and their addresses: ipamd's status \(state.statusENIs), EC2 \(ec2.mapValues(\.count))")
        #expect(state.intents.isEmpty, "EC2 changes still in flight in the checkpoint: \(state.intents)")
        // Each EC2 address is exactly one of assigned, cooling and free (none lost, none invented).
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let cooling = Set(
            (state.checkpoint["cooling"] as? [[String: Any]] ?? []).filter { ($0["until"] as? NSNumber)?.int64Value ?? 0 > now }
                .compactMap { $0["address"] as? String })
        #expect(cooling.isSubset(of: everyEC2Address) && cooling.isDisjoint(with: addresses))
        let total = (state.status["total"] as? NSNumber)?.intValue
        let assigned = (state.status["assigned"] as? NSNumber)?.intValue
        let coolingCount = (state.status["cooling"] as? NSNumber)?.intValue
        let free = (state.status["free"] as? NSNumber)?.intValue
        #expect(total == everyEC2Address.count, "status total \(total ?? -1), EC2 \(everyEC2Address.count) addresses")
        #expect(assigned == addresses.count && coolingCount == cooling.count)
        #expect((assigned ?? 0) + (coolingCount ?? 0) + (free ?? 0) == everyEC2Address.count)
        #expect(cooling.count >= 1 && (free ?? 0) >= 1 && addresses.count == IPAMDRestartTests.kept - 1, "\(state.status)")
        // A created ENI left detached is an ENI (and addresses) nobody manages any more.
        #expect(
            state.detached.isEmpty,
            "ENIs nodeboot created, now attached to nothing (leaked): \(state.detached.map { "\($0.networkInterfaceId) \($0.status)" })"
        )
    }

    // MARK: - The namespace

    func setUpNamespace(_ namespace: String) throws {
        let peer = "nbrsn\(getpid() % 100_000)"
        let steps: [[String]] = [
            ["ip", "netns", "add", namespace],
            ["ip", "link", "add", hostLink, "type", "veth", "peer", "name", peer, "netns", namespace],
            ["ip", "addr", "add", "198.19.\(subnet).1/30", "dev", hostLink],
            ["ip", "link", "set", hostLink, "up"],
            ["ip", "-n", namespace, "addr", "add", "198.19.\(subnet).2/30", "dev", peer],
            ["ip", "-n", namespace, "link", "set", peer, "up"],
            ["ip", "-n", namespace, "link", "set", "lo", "up"],
        ]
        // One eni* link (a pod's host veth) per client.
        let links = (0..<IPAMDRestartTests.clients).flatMap { index in
            [
                ["ip", "-n", namespace, "link", "add", Client.link(index), "type", "veth", "peer", "name", "podrs\(index)"],
                ["ip", "-n", namespace, "link", "set", Client.link(index), "up"],
                ["ip", "-n", namespace, "link", "set", "podrs\(index)", "up"],
            ]
        }
        for step in steps + links {
            let status = Spawn.run(step)
            guard status == 0 else {
                tearDownNamespace()
                throw TestSupportError("\(step.joined(separator: " ")): exit \(status)")
            }
        }
    }

    func tearDownNamespace() {
        guard let namespace else { return }
        _ = Spawn.run(["ip", "netns", "del", namespace])
        _ = Spawn.run(["ip", "link", "del", hostLink])  // gone with the namespace's end already, normally
    }

    /// Addresses with a /32 route to an eni* link in the namespace's main table.
    func podRoutes(_ namespace: String) async throws -> [String] {
        let result = try await ChildProcess.run(["ip", "-n", namespace, "-j", "route", "show", "table", "main"])
        try #require(result.status == 0, "ip route show: \(result.stderr)")
        let routes = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [[String: Any]] ?? []
        return routes.compactMap { route in
            guard let destination = route["dst"] as? String, let device = route["dev"] as? String, device.hasPrefix("eni"),
                !destination.contains("/") || destination.hasSuffix("/32")
            else { return nil }
            return destination.split(separator: "/").first.map(String.init)
        }
    }
}

// MARK: - Clients

/// What the clients share: who uses which address now, what went wrong, the counts.
final class Shared: Sendable {
    struct Counts: Sendable {
        var adds = 0
        var dels = 0
        var reserved = 0
        var unreachable = 0
        var refusals = 0
        var refusalCodes: [String: Int] = [:]
    }

    let namespace: String?
    /// Address → the key using it now: set when an add's reply arrives, cleared before the del
    /// is sent (the pod stops using it first, as the CNI plugin does), so the daemon cannot have
    /// handed the address to another key in between.
    let inUse = Locked<[String: AttachmentKey]>([:])
    let problems = Locked<[String]>([])
    let counts = Locked(Counts())
    let deadline = ContinuousClock.now + .seconds(240)

    init(namespace: String?) { self.namespace = namespace }

    func problem(_ text: String) { problems.update { $0.append(text) } }

    /// Reserves one operation; false once 10,000 are reserved and the daemon was killed often enough.
    func reserve(daemon: Daemon) -> Bool {
        let enoughKills = daemon.kills >= IPAMDRestartTests.minimumKills
        return counts.update { counts in
            guard counts.reserved < IPAMDRestartTests.operations || !enoughKills else { return false }
            counts.reserved += 1
            return true
        }
    }
}

/// One client: a node's pods coming and going. It holds 0 to 2 pods; each step adds a fresh
/// container or deletes one it holds, at random, so pods live across many steps and across
/// restarts (a pod deleted within milliseconds would hide a daemon that forgets assignments). A
/// request that gets no answer (refused, reset, timed out) or a retryable refusal is sent again
/// unchanged until it is answered, as the container runtime repeats ADD and DEL.
struct Client {
    let index: Int
    let socket: String
    let shared: Shared
    let daemon: Daemon

    static func link(_ index: Int) -> String { "enirs\(index)" }

    /// Runs the loop; returns the ledger: the pods added and not deleted (one for a client with
    /// an even index, none for the others).
    func run() -> [AttachmentKey: String] {
        var ledger: [AttachmentKey: String] = [:]
        var serial = 0
        func step(adding: Bool) -> Bool {
            if adding {
                serial += 1
                let key = AttachmentKey(container: "rs\(index)-\(serial)", ifname: "eth0", network: "nodeboot")
                guard let address = add(key) else { return false }
                ledger[key] = address
            } else if let (key, address) = ledger.randomElement() {
                guard delete(key, address) else { return false }
                ledger[key] = nil
            }
            return true
        }
        while shared.reserve(daemon: daemon) {
            guard step(adding: ledger.isEmpty || (ledger.count < 2 && Bool.random())) else { return ledger }
            usleep(UInt32.random(in: 0...1000))
        }
        // The end: clients with an even index keep one pod, the others none.
        let keep = index % 2 == 0 ? 1 : 0
        while ledger.count != keep {
            guard step(adding: ledger.count < keep) else { return ledger }
        }
        return ledger
    }

    /// The address the add answered (recorded as in use, wired in the namespace); nil: given up.
    func add(_ key: AttachmentKey) -> String? {
        let pod = PodReference(namespace: "restart", name: key.container, uid: key.container)
        guard let (reply, _) = send(.add(key, netns: "/var/run/netns/\(key.container)", pod: pod)) else { return nil }
        guard case .added(let assignment) = reply, let first = assignment.ips.first, first.hasSuffix("/32") else {
            shared.problem("add \(key) answered \(reply)")
            return nil
        }
        let address = String(first.dropLast(3))
        shared.counts.update { $0.adds += 1 }
        let other = shared.inUse.update { inUse -> AttachmentKey? in
            defer { inUse[address] = key }
            return inUse[address]
        }
        if let other { shared.problem("\(address) handed to \(key) while \(other) still uses it") }
        if let namespace = shared.namespace {
            let status = Spawn.run([
                "ip", "-n", namespace, "route", "add", "\(address)/32", "dev", Self.link(index), "scope", "link",
            ])
            if status != 0 { shared.problem("ip route add \(address)/32 dev \(Self.link(index)) for \(key): exit \(status)") }
        }
        return address
    }

    /// Unwires and deletes; false: given up.
    func delete(_ key: AttachmentKey, _ address: String) -> Bool {
        unwire(address)
        shared.inUse.update { inUse in
            if inUse[address] == key { inUse[address] = nil }
        }
        guard let (reply, delivered) = send(.del(key, pod: nil, reason: "restart test")) else { return false }
        guard case .deleted(let known, let assignment) = reply else {
            shared.problem("del \(key) answered \(reply)")
            return false
        }
        // Unknown although no earlier attempt can have reached the daemon: it forgot an add it had answered.
        if !known && !delivered { shared.problem("del \(key) (\(address)): ipamd does not know the key") }
        if known, let ips = assignment?.ips, ips != ["\(address)/32"] {
            shared.problem("del \(key) released \(ips), the add had answered \(address)")
        }
        shared.counts.update { $0.dels += 1 }
        return true
    }

    /// Removes the pod's route in the namespace (before its DEL, as the CNI plugin does).
    func unwire(_ address: String) {
        guard let namespace = shared.namespace else { return }
        let status = Spawn.run(["ip", "-n", namespace, "route", "del", "\(address)/32", "dev", Self.link(index)])
        if status != 0 { shared.problem("ip route del \(address)/32 dev \(Self.link(index)): exit \(status)") }
    }

    /// Sends until answered (or the run's deadline): the reply, and whether an earlier attempt
    /// may have reached the daemon (sent, then no answer) rather than failed to connect.
    func send(_ request: Request) -> (Reply, Bool)? {
        let client = IPAMClient(socketPath: socket, connectTimeout: .seconds(1), answerTimeout: .seconds(5))
        var delivered = false
        while ContinuousClock.now < shared.deadline {
            do {
                let reply = try client.send(request)
                if case .failed(let error) = reply {
                    shared.counts.update {
                        $0.refusals += 1
                        $0.refusalCodes[error.code.rawValue, default: 0] += 1
                    }
                    if !error.retry { shared.problem("\(request.op) refused, not to be retried: \(error)") }
                    usleep(UInt32.random(in: 2000...10_000))
                    continue
                }
                return (reply, delivered)
            } catch {
                // "cannot reach ipamd": the connect failed (refused, no socket), nothing was sent.
                if !error.message.hasPrefix("cannot reach ipamd") { delivered = true }
                shared.counts.update { $0.unreachable += 1 }
                usleep(UInt32.random(in: 2000...10_000))
            }
        }
        shared.problem("\(request.op) got no answer within the run's deadline")
        return nil
    }
}

// MARK: - The daemon

/// The `nodeboot ipamd` child: started, SIGKILLed and started again with the same root. Spawned
/// and reaped here (posix_spawn, waitpid), not by Foundation's Process, so that a kill's wait and
/// an exit of the daemon's own are seen exactly.
final class Daemon: Sendable {
    let command: [String]
    let environment: Locked<[String: String]>
    let logPath: String
    /// The running daemon's pid; 0 when none.
    let pid = Locked<pid_t>(0)
    let killCount = Locked(0)

    init(command: [String], environment: [String: String], log: String) {
        self.command = command
        self.environment = Locked(environment)
        self.logPath = log
    }

    var kills: Int { killCount.current }

    func setEnvironment(_ name: String, _ value: String) { environment.update { $0[name] = value } }

    func start() throws {
        let child = try Spawn.start(command, environment: environment.current, output: logPath)
        pid.update { $0 = child }
    }

    /// SIGKILL, wait for the exit, start again. Returns how the daemon had ended when it was not
    /// running any more (it must never exit by itself).
    func killAndRestart() async -> String? {
        let ended = await kill()
        do {
            try start()
        } catch {
            return "cannot start again: \(error)"
        }
        return ended
    }

    /// Kills the running daemon (counted) and reaps it; returns how it had ended when it had
    /// exited already.
    @discardableResult
    func kill() async -> String? {
        let child = pid.update { pid in
            defer { pid = 0 }
            return pid
        }
        guard child > 0 else { return nil }
        var status: Int32 = 0
        if waitpid(child, &status, WNOHANG) == child { return Spawn.describe(status) }
        Glibc.kill(child, SIGKILL)
        killCount.update { $0 += 1 }
        while waitpid(child, &status, WNOHANG) == 0 { try? await Task.sleep(for: .milliseconds(1)) }
        return nil
    }
}

// MARK: - Helpers

/// Programs started without Foundation's Process: cheap enough for one per pod, and reaped only
/// by whoever started them.
enum Spawn {
    /// Runs a program (found on PATH) to completion, its output discarded; its exit status.
    static func run(_ arguments: [String]) -> Int32 {
        guard let pid = try? start(arguments, environment: nil, output: "/dev/null") else { return 127 }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        return (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    }

    /// Starts a program with its output appended to `output`; the caller reaps it.
    static func start(_ arguments: [String], environment: [String: String]?, output: String) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_APPEND | O_CREAT, 0o600)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        var argv = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let spawned: Int32
        if let environment {
            var envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
            defer { envp.forEach { free($0) } }
            spawned = posix_spawnp(&pid, arguments[0], &actions, nil, &argv, &envp)
        } else {
            spawned = posix_spawnp(&pid, arguments[0], &actions, nil, &argv, environ)
        }
        guard spawned == 0 else {
            throw TestSupportError("cannot start \(arguments[0]): \(String(cString: strerror(spawned)))")
        }
        return pid
    }

    /// A wait status in words: `exit 1`, `signal 11`.
    static func describe(_ status: Int32) -> String {
        (status & 0x7f) == 0 ? "exit \((status >> 8) & 0xff)" : "signal \(status & 0x7f)"
    }
}

extension Duration {
    /// Seconds with one decimal, for the printed totals.
    var printed: String {
        let (whole, fraction) = components
        return String(format: "%.1f", Double(whole) + Double(fraction) / 1e18)
    }
}
