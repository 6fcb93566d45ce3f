import Foundation
import IPAM
import IPAMProtocol
import NIOPosix
import Synchronization
import TestSupport
import Testing
import WireJSON

@Suite("ipamd core: add, del, check, status")
struct IPAMCoreTests {
    /// A settable wall clock (Unix ms).
    final class Clock: Sendable {
        let value = Mutex<Int64>(1_000_000)
        func advance(_ milliseconds: Int64) { value.withLock { $0 += milliseconds } }
        var read: @Sendable () -> Int64 { { [self] in value.withLock { $0 } } }
    }

    static let facts = NetworkFacts(vpcCIDRs: ["10.0.0.0/16"], mtu: 9001, externalSNAT: false)
    static let enis = [
        ENIState(id: "eni-p", device: 0, isPrimary: true, addresses: ["10.0.0.11", "10.0.0.12"]),
        ENIState(id: "eni-1", device: 1, isPrimary: false, addresses: ["10.0.1.21", "10.0.1.22"]),
    ]

    static func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("core-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func core(_ path: String, clock: Clock, enis: [ENIState] = enis) -> IPAMCore {
        IPAMCore(
            checkpoint: Checkpoint(instance: "i-1", mode: .secondaryIPv4), enis: enis, facts: facts, cooldown: .seconds(30),
            checkpointPath: path + "/checkpoint.json", wallClock: clock.read)
    }

    static func key(_ container: String) -> AttachmentKey {
        AttachmentKey(container: container, ifname: "eth0", network: "nodeboot")
    }
    static let pod = PodReference(namespace: "default", name: "nginx", uid: "u")

    @Test("an add answers the address, its ENI's table and the node's facts; the checkpoint holds it before the answer")
    func add() async throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let core = Self.core(directory, clock: Clock())
        let first = try await core.add(Self.key("a"), pod: Self.pod)
        #expect(
            first
                == Assignment(
                    ips: ["10.0.0.11/32"], device: 0, table: 254, mtu: 9001, vpcCIDRs: ["10.0.0.0/16"], externalSNAT: false,
                    eni: "eni-p"))
        let onDisk = try #require(try Checkpoint.load(directory + "/checkpoint.json"))
        #expect(onDisk.allocations.map(\.address) == ["10.0.0.11"])
        #expect(onDisk.allocations.first?.pod == Self.pod)
        // The same key again: the same answer, nothing new recorded.
        #expect(try await core.add(Self.key("a"), pod: Self.pod) == first)
        #expect(await core.adds == 1)
        // Packing: the ENI already serving pods first.
        #expect(try await core.add(Self.key("b"), pod: Self.pod).eni == "eni-p")
        let third = try await core.add(Self.key("c"), pod: Self.pod)
        #expect(third.eni == "eni-1" && third.table == 2 && third.device == 1)
    }

    @Test("a deleted address cools down before it is handed out again; a repeated DEL is a success")
    func cooldown() async throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = Clock()
        let core = Self.core(
            directory, clock: clock,
            enis: [ENIState(id: "eni-p", device: 0, isPrimary: true, addresses: ["10.0.0.11", "10.0.0.12"])])
        _ = try await core.add(Self.key("a"), pod: Self.pod)
        _ = try await core.add(Self.key("b"), pod: Self.pod)
        #expect(
            await core.handle(.del(Self.key("a"), pod: nil, reason: ""))
                == .deleted(known: true, try await core.check(Self.key("b")).with(ips: ["10.0.0.11/32"])))
        #expect(await core.handle(.del(Self.key("a"), pod: nil, reason: "")) == .deleted(known: false, nil))
        guard case .failed(let error) = await core.handle(.add(Self.key("c"), netns: "/n", pod: Self.pod)) else {
            Issue.record("an add succeeded while the only free address was cooling down")
            return
        }
        #expect(error.code == .noAddress && error.retry)
        #expect(
            error.message.contains("no free address: ipamd has 0 of 2 free, 1 cooling down (the first is free again in 31 s)"))
        clock.advance(30_001)
        #expect(try await core.add(Self.key("c"), pod: Self.pod).ips == ["10.0.0.11/32"])
        let status = await core.status()
        #expect(status["assigned"]?.int == 2 && status["free"]?.int == 0 && status["deletes"]?.int == 1)
    }

    @Test("an unknown check, an unknown operation, a checkpoint that cannot be written: clear errors, nothing assigned")
    func failures() async throws {
        let core = IPAMCore(
            checkpoint: Checkpoint(instance: "i-1", mode: .secondaryIPv4), enis: Self.enis, facts: Self.facts,
            cooldown: .seconds(30), checkpointPath: "/proc/nodeboot-test/checkpoint.json", wallClock: Clock().read)
        guard case .failed(let unknown) = await core.handle(.check(Self.key("x"))) else {
            Issue.record("check of nothing"); return
        }
        #expect(unknown.code == .unknown)
        guard case .failed(let other) = await core.handle(.other("gc")) else { Issue.record("gc"); return }
        #expect(other.code == .unsupported)
        guard case .failed(let unwritable) = await core.handle(.add(Self.key("a"), netns: "/n", pod: Self.pod)) else {
            Issue.record("an add that could not be recorded succeeded")
            return
        }
        #expect(unwritable.code == .internal && unwritable.message.contains("nothing was assigned"))
        #expect(await core.checkpoint.allocations.isEmpty)
    }

    @Test("property: 64 concurrent clients adding and deleting never hold the same address at once")
    func concurrent() async throws {
        let directory = try Self.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let addresses = (1...40).map { "10.0.2.\($0)" }
        let core = IPAMCore(
            checkpoint: Checkpoint(instance: "i-1", mode: .secondaryIPv4),
            enis: [ENIState(id: "eni-p", device: 0, isPrimary: true, addresses: addresses)], facts: Self.facts,
            cooldown: .zero, checkpointPath: directory + "/checkpoint.json", wallClock: Clock().read)
        try await withThrowingTaskGroup(of: Void.self) { group in
            for client in 0..<64 {
                group.addTask {
                    for round in 0..<10 {
                        let key = Self.key("c\(client)-\(round)")
                        if case .added = await core.handle(.add(key, netns: "/n", pod: Self.pod)) {
                            let held = await core.checkpoint.allocations.map(\.address)
                            #expect(Set(held).count == held.count, "an address held twice: \(held)")
                            _ = await core.handle(.del(key, pod: nil, reason: ""))
                        }
                    }
                }
            }
            try await group.waitForAll()
        }
        #expect(await core.checkpoint.allocations.isEmpty)
        let onDisk = try #require(try Checkpoint.load(directory + "/checkpoint.json"))
        #expect(onDisk.allocations.isEmpty)
    }
}

extension Assignment {
    func with(ips: [String]) -> Assignment {
        var copy = self
        copy.ips = ips
        return copy
    }
}

@Suite("ipamd socket server")
struct SocketServerTests {
    @Test("a client that sends nothing is closed after the idle timeout")
    func idle() async throws {
        let directory = try IPAMCoreTests.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let core = IPAMCoreTests.core(directory, clock: IPAMCoreTests.Clock())
        let server = try await SocketServer.start(
            core: core, path: directory + "/ipamd.sock", group: MultiThreadedEventLoopGroup.singleton,
            idleTimeout: .milliseconds(200))
        let (process, lines, _) = try await PythonServer.start(
            """
            import socket, time
            s = socket.socket(socket.AF_UNIX); s.connect('\(server.path)'); s.settimeout(5)
            print(0, flush=True)
            began = time.time()
            data = s.recv(100)
            print('closed' if data == b'' else 'data', round(time.time() - began, 1), flush=True)
            """)
        defer { kill(process.processIdentifier, SIGKILL) }
        let line = try await lines.next(timeout: 10)
        #expect(line.hasPrefix("closed"), "\(line)")
        await server.close()
    }

    @Test("the plugin's client gets its answers over the socket (mode 0660); bad lines get badRequest, in order")
    func serve() async throws {
        let directory = try IPAMCoreTests.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let core = IPAMCoreTests.core(directory, clock: IPAMCoreTests.Clock())
        let server = try await SocketServer.start(
            core: core, path: directory + "/ipamd.sock", group: MultiThreadedEventLoopGroup.singleton)
        let mode = try FileManager.default.attributesOfItem(atPath: server.path)[.posixPermissions] as? Int
        #expect(mode == 0o660)
        #expect(!FileManager.default.fileExists(atPath: server.path + ".new"))
        let client = IPAMClient(socketPath: server.path)
        let added = try client.send(.add(IPAMCoreTests.key("a"), netns: "/n", pod: IPAMCoreTests.pod))
        #expect(added == .added(try await core.check(IPAMCoreTests.key("a"))))
        #expect(try client.send(.add(IPAMCoreTests.key("a"), netns: "/n", pod: IPAMCoreTests.pod)) == added)
        guard case .status(let status) = try client.send(.status) else { Issue.record("no status"); return }
        #expect(status["assigned"]?.int == 1)
        guard case .deleted(known: true, _) = try client.send(.del(IPAMCoreTests.key("a"), pod: nil, reason: "")) else {
            Issue.record("the del of a known attachment was not answered known")
            return
        }

        // Raw lines: two requests in one write, the first not JSON; answers come in order.
        let (process, lines, _) = try await PythonServer.start(
            """
            import socket
            s = socket.socket(socket.AF_UNIX); s.connect('\(server.path)')
            s.sendall(b'{nope\\n{"v":"1.0","op":"status"}\\n{"v":"9.0","op":"status"}\\n')
            print(0, flush=True)
            data = b''
            while data.count(b'\\n') < 3: data += s.recv(65536)
            for line in data.decode().splitlines(): print(line, flush=True)
            """)
        defer { kill(process.processIdentifier, SIGKILL) }
        let first = try JSON(parsing: try await lines.next(timeout: 10))
        let second = try JSON(parsing: try await lines.next(timeout: 10))
        let third = try JSON(parsing: try await lines.next(timeout: 10))
        #expect(first["error"]?["code"]?.string == "badRequest")
        #expect(second["ok"]?.bool == true)
        #expect(third["error"]?["code"]?.string == "version")
        await server.close()
        #expect(!FileManager.default.fileExists(atPath: server.path))
    }
}

@Suite("ipamd core: prefixes, IPv6 and the periodic reconcile")
struct IPAMCorePrefixTests {
    typealias Base = IPAMCoreTests

    @Test("a /28's 16 addresses serve pods; a prefix goes back only when none of its addresses is assigned or cooling")
    func prefixes() async throws {
        let directory = try Base.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = Base.Clock()
        let eni = ENIState(id: "eni-p", device: 0, isPrimary: true, prefixes: ["10.0.0.16/28"])
        #expect(eni.addresses.count == 16 && eni.addresses.first == "10.0.0.16" && eni.addresses.last == "10.0.0.31")
        let core = IPAMCore(
            checkpoint: Checkpoint(instance: "i-1", mode: .prefixIPv4), enis: [eni], facts: Base.facts,
            cooldown: .seconds(30), checkpointPath: directory + "/checkpoint.json", wallClock: clock.read)
        await core.addPrefixes(["10.0.0.32/28", "10.0.0.16/28"], to: "eni-p")
        #expect(await core.enis.first?.prefixes == ["10.0.0.16/28", "10.0.0.32/28"], "a known prefix is not added twice")
        let first = try await core.add(Base.key("a"), pod: Base.pod)
        #expect(first.ips == ["10.0.0.16/32"])
        #expect(await core.freePrefixCount(try #require(await core.enis.first), now: clock.read()) == 1)
        #expect(await core.takeFreePrefixes(2, from: "eni-p") == ["10.0.0.32/28"], "the /28 with a pod stays")
        #expect(await core.counts().total == 16)
        _ = try await core.delete(Base.key("a"))
        #expect(await core.takeFreePrefixes(1, from: "eni-p").isEmpty, "its address is cooling")
        clock.advance(30_001)
        #expect(await core.takeFreePrefixes(1, from: "eni-p") == ["10.0.0.16/28"])
        #expect(await core.counts().total == 0)
    }

    @Test("IPv6: pods get /128s from the /80, lowest unused first, never one cooling; capacity is maxPods")
    func ipv6() async throws {
        let directory = try Base.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = Base.Clock()
        let core = IPAMCore(
            checkpoint: Checkpoint(instance: "i-1", mode: .ipv6),
            enis: [ENIState(id: "eni-p", device: 0, isPrimary: true, addresses: [])], facts: Base.facts,
            cooldown: .seconds(30), checkpointPath: directory + "/checkpoint.json", wallClock: clock.read)
        #expect(await core.counts().total == 0)
        guard case .failed(let none) = await core.handle(.add(Base.key("x"), netns: "/n", pod: Base.pod)) else {
            Issue.record("an add without a prefix succeeded"); return
        }
        #expect(none.code == .noAddress)
        await core.addPrefixes(["2001:db8:0:0:1::/80"], to: "eni-p")
        await core.setIPv6Capacity(29)
        #expect(try await core.add(Base.key("a"), pod: Base.pod).ips == ["2001:db8::1:0:0:1/128"])
        #expect(try await core.add(Base.key("b"), pod: Base.pod).ips == ["2001:db8::1:0:0:2/128"])
        _ = try await core.delete(Base.key("a"))
        #expect(try await core.add(Base.key("c"), pod: Base.pod).ips == ["2001:db8::1:0:0:3/128"], "the first one cools down")
        let counts = await core.counts()
        #expect(counts.total == 29 && counts.assigned == 2 && counts.cooling == 1)
        #expect(try await core.check(Base.key("b")).table == 254)
    }

    @Test("gc releases the network's attachments the runtime no longer has into the cooldown, and nothing else")
    func gc() async throws {
        let directory = try Base.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let core = Base.core(directory, clock: Base.Clock())
        _ = try await core.add(Base.key("kept"), pod: Base.pod)
        _ = try await core.add(Base.key("stale"), pod: PodReference(namespace: "d", name: "stale"))
        _ = try await core.add(
            AttachmentKey(container: "other", ifname: "eth0", network: "another"), pod: Base.pod)
        let reply = await core.handle(.gc(network: "nodeboot", valid: [Base.key("kept")]))
        guard case .collected(let released) = reply else { Issue.record("\(reply)"); return }
        #expect(released.map(\.key.container) == ["stale"] && released.first?.pod?.name == "stale")
        let stored = try #require(try Checkpoint.load(directory + "/checkpoint.json"))
        #expect(Set(stored.allocations.map(\.key.container)) == ["kept", "other"])
        #expect(stored.cooling.map(\.address) == released.map(\.address))
        guard case .collected(let again) = await core.handle(.gc(network: "nodeboot", valid: [Base.key("kept")])) else {
            Issue.record("gc again"); return
        }
        #expect(again.isEmpty)
    }

    @Test("the periodic reconcile releases a missed DEL after the grace, adopts a pod route it does not know, and writes it down")
    func reconcile() async throws {
        let directory = try Base.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let clock = Base.Clock()
        let core = Base.core(directory, clock: clock)
        _ = try await core.add(Base.key("gone"), pod: PodReference(namespace: "d", name: "gone"))
        _ = try await core.add(Base.key("alive"), pod: PodReference(namespace: "d", name: "alive"))
        let byENI = Dictionary(uniqueKeysWithValues: Base.enis.map { ($0.id, Set($0.addresses)) })
        // 10.0.0.11 (gone) has no trace, 10.0.0.12 (alive) has its route, 10.0.1.21 is routed to an unknown pod.
        let host = HostObservation(
            addressesByENI: byENI, kernelTraces: ["10.0.0.12": "route to eni1", "10.0.1.21": "route to eni2"], links: [])
        #expect(await core.reconcile(with: host).count == 1, "young: only the unknown route is adopted")
        clock.advance(Checkpoint.wiringGrace + 1)
        let notes = await core.reconcile(with: host)
        #expect(notes == ["ipamd: released 10.0.0.11 of pod d/gone: no pod interface uses it (a missed CNI DEL)"])
        let stored = try #require(try Checkpoint.load(directory + "/checkpoint.json"))
        #expect(Set(stored.allocations.map(\.address)) == ["10.0.0.12", "10.0.1.21"])
        #expect(stored.cooling.map(\.address) == ["10.0.0.11"])
        #expect(await core.reconcile(with: host).isEmpty, "nothing changes: nothing is written or said")
    }
}
