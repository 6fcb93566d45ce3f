public import AWS
import FoundationEssentials
import IPAMProtocol
import Logging
import NIOCore
import NIOPosix
import Netlink
import ServiceLifecycle
import Support
import Synchronization
import UnixSignals
import WireJSON

#if canImport(Glibc)
    import Glibc
#endif

/// Where the daemon keeps its files (a root directory in tests).
public struct IPAMPaths: Sendable {
    public var socket: String
    public var checkpoint: String
    public var conflist: String
    /// What `init` tells the daemon (`/etc/nodeboot/ipamd.json`).
    public var nodeSpec: String
    /// The last status reply, or why the daemon stopped (`nodeboot status` reads it when the
    /// socket does not answer).
    public var status: String

    public init(root: String? = nil) {
        let base = root ?? ""
        socket = base + IPAMWire.socketPath
        checkpoint = base + Checkpoint.path
        conflist = base + Conflist.path
        nodeSpec = base + NodeSpec.path
        status = base + Self.statusPath
    }

    public static let statusPath = "/run/nodeboot/ipamd/status.json"
}

/// `nodeboot ipamd` (docs/ipamd.md §8): settings and `init`'s node spec, the instance's ENIs
/// from IMDS, the checkpoint reconciled with the kernel, the node's network (ENI routes and
/// rules, the SNAT table, sysctls), the socket served, the conflist written once addresses are
/// there, READY=1, then the pool kept at its target through EC2 until SIGTERM.
public enum IPAMDaemon {
    /// Exit status 2: a refused setting (the unit does not restart for it).
    public static let refusedStatus: Int32 = 2

    public static func run(
        environment: [String: String], paths: IPAMPaths, session: AWSSession,
        notify: @escaping @Sendable (String) -> Void, log: @escaping @Sendable (String) -> Void
    ) async -> Int32 {
        let settings: Settings
        do {
            let (parsed, warnings) = try Settings.parse(environment)
            settings = parsed
            warnings.forEach(log)
        } catch {
            for problem in error.problems { log(problem.description) }
            notify("STATUS=refused: \(error.problems.map(\.variable).joined(separator: ", "))")
            Self.record(refused: error.problems.map(\.description), at: paths.status)
            return refusedStatus
        }
        let spec: NodeSpec?
        do {
            spec = try NodeSpec.load(paths.nodeSpec)
        } catch {
            log("ipamd: \(error)")
            notify("STATUS=refused: \(paths.nodeSpec)")
            Self.record(refused: ["ipamd: \(error)"], at: paths.status)
            return refusedStatus
        }
        if spec == nil {
            log(
                "ipamd: \(paths.nodeSpec) is absent (nodeboot init --daemon nodeboot-ipamd writes it); IPv4, maxPods from "
                    + "the instance's limits, no cluster tag")
        }
        let metricsAddress: MetricsAddress
        do {
            metricsAddress = try environment["NODEBOOT_IPAMD_METRICS_ADDRESS"].map(MetricsAddress.init(parsing:)) ?? .standard
        } catch {
            log(
                "ipamd: refused setting: NODEBOOT_IPAMD_METRICS_ADDRESS=\(environment["NODEBOOT_IPAMD_METRICS_ADDRESS"] ?? ""): "
                    + "\(error); set it in spec.instance.environment.nodeboot-ipamd of the NodeConfig")
            return refusedStatus
        }
        let started = ContinuousClock.now
        do {
            let facts = try await session.imds.instanceFacts()
            let vpcCIDRs = facts.primaryInterface?.vpcIPv4CIDRBlocks ?? []
            let wall: @Sendable () -> Int64 = {
                var now = timespec()
                clock_gettime(CLOCK_REALTIME, &now)
                return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
            }
            let mode = Self.mode(settings: settings, ipv6: spec?.ipFamily == .ipv6)
            let vethPrefix = spec?.vethPrefix ?? "eni"
            var checkpoint = try Checkpoint.load(paths.checkpoint) ?? Checkpoint(instance: facts.identity.instanceId, mode: mode)
            if checkpoint.instance != facts.identity.instanceId {
                log(
                    "ipamd: the checkpoint is of instance \(checkpoint.instance), not \(facts.identity.instanceId); starting afresh"
                )
                checkpoint = Checkpoint(instance: facts.identity.instanceId, mode: mode)
            }
            if checkpoint.mode != mode {
                // Pods keep their addresses until their DEL; new ones come from the new kind.
                log("ipamd: the pool changes from \(checkpoint.mode.rawValue) to \(mode.rawValue); assigned addresses are kept")
                checkpoint.mode = mode
            }
            // Until EC2 says which ENIs are nodeboot's (the growth service's setup), the primary and
            // those the checkpoint assigned from.
            // Addresses an unassign was under way for are withheld until EC2 says (the setup below).
            let withheld = Set(checkpoint.intents.filter { $0.operation == .unassign }.flatMap(\.addresses))
            let withheldInPrefixes = Set(withheld.flatMap(ENIState.addresses(in:)))
            let enis = Self.enis(facts, ours: Set(checkpoint.allocations.map(\.eni)), mode: mode).map { eni in
                var eni = eni
                eni.addresses.removeAll { withheld.contains($0) || withheldInPrefixes.contains($0) }
                eni.prefixes.removeAll(where: withheld.contains)
                return eni
            }
            // The kernel's pod routes and rules: what a restart must not hand out again. Unreadable,
            // nothing is released (no trace proves nothing then).
            let observation =
                Self.observe(enis, vethPrefix: vethPrefix) { error in
                    log("ipamd: cannot read the kernel's routes and rules (\(error)); no address is released at this start")
                }
            let reconciled = checkpoint.reconcile(with: observation, now: wall(), cooldown: settings.cooldown)
            reconciled.notes.forEach(log)
            try reconciled.checkpoint.write(paths.checkpoint)
            let core = IPAMCore(
                checkpoint: reconciled.checkpoint, enis: enis,
                facts: NetworkFacts(vpcCIDRs: vpcCIDRs, mtu: settings.mtu, externalSNAT: settings.externalSNAT),
                cooldown: settings.cooldown, checkpointPath: paths.checkpoint, wallClock: wall)
            if let slash = paths.socket.lastIndex(of: "/"), slash != paths.socket.startIndex {
                try NodeFileSystem.makeDirectories(String(paths.socket[..<slash]), mode: 0o755)
            }
            // Everything from here runs inside the service group, whose SIGTERM handler is in
            // place before the socket exists: a stop right after the socket appears is graceful.
            // The socket the daemon serves (under --root too: the plugin must find this daemon).
            let conflist = Conflist(mtu: settings.mtu, vethPrefix: vethPrefix, ipv6: mode == .ipv6, socket: paths.socket)
            let publish: @Sendable () async -> Void = {
                let counts = await core.counts()
                Self.record(status: await core.status(), at: paths.status)
                guard counts.total > 0 else { return }
                if (try? conflist.write(paths.conflist)) == true {
                    log("ipamd: \(counts.total) addresses on the ENIs; wrote \(paths.conflist)")
                }
                notify("STATUS=serving \(counts.free) free of \(counts.total) addresses, \(counts.assigned) assigned")
            }
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let readiness = Readiness()
            let startup = Mutex<Duration?>(nil)
            let serving = Serving(
                core: core, path: paths.socket, group: group, publish: publish, notify: notify, readiness: readiness,
                ready: { startup.withLock { $0 = ContinuousClock.now - started } })
            let box = ReconcilerBox()
            // The node side of every ENI the instance has now (a restart re-asserts it).
            // NODEBOOT_IPAMD_HOST_NETWORK=skip: the node's links, routes and rules are not touched
            // (a test against the testbed, a container sharing its host's network).
            let hostNetwork = environment["NODEBOOT_IPAMD_HOST_NETWORK"] != "skip"
            let wiring: @Sendable (ENIWiring) throws -> [String] = { wiring in
                try NodeNetwork.ensure(wiring, netlink: try RouteNetlink(), requireLink: true)
            }
            let wire = hostNetwork ? wiring : nil
            if hostNetwork {
                await Self.ensureHost(facts: facts, enis: enis, mode: mode, settings: settings, vethPrefix: vethPrefix, log: log)
                for eni in enis {
                    guard let interface = facts.interfaces.first(where: { ($0.interfaceId ?? $0.mac) == eni.id }),
                        let wiring = ENIWiring(interface, device: eni.device, mtu: settings.mtu)
                    else { continue }
                    do {
                        for note in try NodeNetwork.ensure(wiring, netlink: try RouteNetlink()) { log("ipamd: \(note)") }
                    } catch {
                        log("ipamd: cannot wire device \(wiring.device) (\(wiring.mac)): \(error)")
                    }
                }
            }
            let growing = Growing(core: core, log: log, publish: publish) {
                let reconciler = try await Self.reconciler(
                    core: core, session: session, facts: facts, settings: settings, spec: spec, wire: wire, log: log)
                if let wire {
                    await reconciler.setWiring(wire) { device in
                        try NodeNetwork.unwire(device: device, netlink: try RouteNetlink())
                    }
                }
                await reconciler.setObserver { enis in Self.observe(enis, vethPrefix: vethPrefix) { _ in } }
                box.reconciler.withLock { $0 = reconciler }
                return reconciler
            }
            let metrics = MetricsService(
                address: metricsAddress, group: group, readiness: readiness,
                snapshot: {
                    let counts = await core.counts()
                    let reconciler = box.reconciler.withLock { $0 }
                    var snapshot = MetricsSnapshot(
                        enisAllocated: await core.enis.count, totalAddresses: counts.total,
                        assignedAddresses: counts.assigned, coolingAddresses: counts.cooling, addRequests: await core.adds,
                        deleteRequests: ["": await core.deletes], startupDuration: startup.withLock { $0 })
                    if let reconciler {
                        let limits = reconciler.context.limits
                        snapshot.enisMax = limits.effectiveMaxENIs - (await core.foreignENIs)
                        snapshot.addressesMax = limits.effectiveMaxENIs * limits.slotsPerENI
                        snapshot.ec2Requests = await reconciler.calls
                        snapshot.ec2Errors = (await reconciler.errors).filter { $0.key != "ipamd" }
                    }
                    return snapshot
                },
                onStart: { server in log("ipamd: metrics and /healthz on http://\(server.address)") })
            let services = ServiceGroup(
                configuration: .init(
                    services: [
                        .init(service: serving, successTerminationBehavior: .gracefullyShutdownGroup),
                        .init(service: growing, successTerminationBehavior: .ignore, failureTerminationBehavior: .ignore),
                        .init(service: Logged(service: metrics, what: "metrics", log: log), successTerminationBehavior: .ignore),
                    ],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "nodeboot-ipamd")))
            try await services.run()
            notify("STOPPING=1")
            try? await group.shutdownGracefully()
            return 0
        } catch {
            log("ipamd: \(error)")
            notify("STATUS=failed: \(error)")
            Self.record(refused: ["ipamd: \(error)"], at: paths.status, state: "failed")
            return 1
        }
    }

    /// The status reply as of now, for `nodeboot status` when the socket does not answer.
    static func record(status: JSON, at path: String) {
        try? NodeFileSystem.makeDirectories(Self.directory(of: path), mode: 0o755)
        try? NodeFileSystem.writeAtomically(path, status.line, mode: 0o644)
    }

    /// Why the daemon stopped: `{"state":"refused"|"failed","errors":[…]}`.
    static func record(refused lines: [String], at path: String, state: String = "refused") {
        record(status: ["state": .string(state), "errors": .array(lines.map(JSON.string))], at: path)
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// The node's own network (docs/ipamd.md §5): the fwmark rule, ip_forward and loose rp_filter
    /// on every ENI, and (IPv4, external SNAT off) the SNAT table. A failure is one line each and
    /// does not stop the daemon: pods inside the VPC still work, and the journal says what is missing.
    static func ensureHost(
        facts: InstanceFacts, enis: [ENIState], mode: PoolMode, settings: Settings, vethPrefix: String,
        log: @escaping @Sendable (String) -> Void
    ) async {
        let macs = facts.interfaces.filter { interface in enis.contains { $0.id == (interface.interfaceId ?? interface.mac) } }
            .map(\.mac)
        do {
            let netlink = try RouteNetlink()
            for note in try NodeNetwork.ensureHost(eniMACs: macs, settings: settings, netlink: netlink, ipv6: mode == .ipv6) {
                log("ipamd: \(note)")
            }
            guard mode != .ipv6 else { return }  // IPv6 pods have VPC addresses: no NAT table
            guard let primaryName = try NodeNetwork.linkName(mac: facts.mac, netlink: netlink),
                let primaryAddress = (facts.primaryInterface?.localIPv4s.first ?? facts.localIPv4).flatMap(IPAddress.init)
            else {
                log(
                    "ipamd: the primary interface \(facts.mac) has no link or no IPv4 address here; pod traffic is not translated"
                )
                return
            }
            let filter = PacketFilter(
                primaryInterface: primaryName, primaryAddress: primaryAddress,
                vpcCIDRs: (facts.primaryInterface?.vpcIPv4CIDRBlocks ?? []).compactMap(IPPrefix.init), settings: settings,
                vethPrefix: vethPrefix)
            try await filter.apply()
            log(
                settings.externalSNAT
                    ? "ipamd: external SNAT: the table ip nodeboot is removed"
                    : "ipamd: pod traffic leaving the VPC is translated to \(primaryAddress) on \(primaryName) (table ip nodeboot)"
            )
        } catch {
            log("ipamd: the node's network is not fully set up: \(error)")
        }
    }

    /// The pool's kind: an IPv6 cluster (its service CIDR) always takes one /80 per node; else
    /// /28 prefixes with ENABLE_PREFIX_DELEGATION, else secondary addresses.
    public static func mode(settings: Settings, ipv6: Bool) -> PoolMode {
        ipv6 ? .ipv6 : settings.prefixDelegation ? .prefixIPv4 : .secondaryIPv4
    }

    /// The ENIs on the default network card ipamd manages, with the pod addresses IMDS lists: the
    /// secondary addresses (the first local-ipv4 is the ENI's own), the /28 prefixes' addresses,
    /// or the /80 of an IPv6 node.
    /// Only the primary ENI and `ours` (nodeboot's, by EC2's description, or those the checkpoint
    /// assigned from): an ENI from a launch template, EFA or aws-node is never touched.
    public static func enis(_ facts: InstanceFacts, ours: Set<String>, mode: PoolMode = .secondaryIPv4) -> [ENIState] {
        facts.interfaces.filter { interface in
            (interface.networkCard ?? 0) == 0
                && (interface.mac == facts.mac || ours.contains(interface.interfaceId ?? interface.mac))
        }.map { interface in
            let id = interface.interfaceId ?? interface.mac
            let device = interface.deviceNumber ?? 0
            let primary = interface.mac == facts.mac
            switch mode {
            case .secondaryIPv4:
                return ENIState(id: id, device: device, isPrimary: primary, addresses: Array(interface.localIPv4s.dropFirst()))
            case .prefixIPv4:
                return ENIState(id: id, device: device, isPrimary: primary, prefixes: interface.ipv4Prefixes)
            case .ipv6:
                return ENIState(id: id, device: device, isPrimary: primary, addresses: [], prefixes: interface.ipv6Prefixes)
            }
        }.sorted { $0.device < $1.device }
    }

    /// The kernel's pod traces (docs/ipamd.md §6) against the pool's ENIs; unreadable: an
    /// observation that releases nothing (`kernelKnown` false), after `failed`.
    static func observe(_ enis: [ENIState], vethPrefix: String, failed: (NetlinkError) -> Void) -> HostObservation {
        let addressesByENI = Dictionary(uniqueKeysWithValues: enis.map { ($0.id, Set($0.addresses)) })
        var observation: HostObservation
        do {
            observation = try KernelView.read(try RouteNetlink(), addressesByENI: addressesByENI, vethPrefix: vethPrefix)
        } catch {
            failed(error)
            observation = HostObservation(
                addressesByENI: addressesByENI, kernelTraces: [:], links: [], vethPrefix: vethPrefix, kernelKnown: false)
        }
        observation.ipv6PrefixesByENI = Dictionary(
            uniqueKeysWithValues: enis.filter { !$0.ipv6Prefixes.isEmpty }.map { ($0.id, $0.prefixes) })
        return observation
    }

    /// The reconciler's EC2 side: the region's client, the instance type's limits
    /// (DescribeInstanceTypes), the primary ENI's subnet and security groups, the attached ENIs
    /// that are not ours.
    public static func reconciler(
        core: IPAMCore, session: AWSSession, facts: InstanceFacts, settings: Settings, spec: NodeSpec? = nil,
        wire: (@Sendable (ENIWiring) throws -> [String])? = nil, log: @escaping @Sendable (String) -> Void
    ) async throws -> Reconciler {
        let ec2 = try await session.client(region: session.region(identity: facts.identity).region)
        // init's limits (the embedded table, or its DescribeInstanceTypes) when it had them.
        let limits: InstanceLimits
        if let spec, let known = spec.limits {
            limits = InstanceLimits(
                instanceType: spec.instanceType, maxENIs: known.maxENIs, ipv4PerENI: known.ipv4PerENI,
                maxENISetting: settings.maxENI)
        } else {
            let type = try await ec2.describeInstanceType(facts.identity.instanceType)
            limits = InstanceLimits(
                instanceType: type.instanceType, maxENIs: type.maxENIs, ipv4PerENI: type.ipv4AddressesPerInterface,
                maxENISetting: settings.maxENI)
        }
        guard let primaryID = facts.primaryInterface?.interfaceId,
            let primary = try await ec2.describeNetworkInterfaces(ids: [primaryID]).first
        else {
            throw IPAMError("the primary ENI of \(facts.identity.instanceId) is not known to EC2")
        }
        // Which attached ENIs are nodeboot's: the description it gives the ENIs it creates.
        let instance = try await ec2.describeInstance(id: facts.identity.instanceId)
        let attached = instance.networkInterfaces.filter { $0.networkCardIndex == 0 }.map(\.id)
        let described = try await ec2.describeNetworkInterfaces(ids: attached)
        let nodeboots = Set(described.filter { $0.description.hasPrefix("nodeboot-") }.map(\.id))
        let held = Set(await core.enis.map(\.id))
        let mode = await core.checkpoint.mode
        for eni in Self.enis(facts, ours: nodeboots, mode: mode) where !held.contains(eni.id) {
            // One of ours from an earlier run: wired, then its addresses served again.
            if let wire, let interface = facts.interfaces.first(where: { $0.interfaceId == eni.id }),
                let wiring = ENIWiring(interface, device: eni.device, mtu: settings.mtu)
            {
                do {
                    for note in try wire(wiring) { log("ipamd: \(note)") }
                } catch {
                    log("ipamd: \(eni.id) not adopted: cannot wire it: \(error)")
                    continue
                }
            }
            await core.attach(eni)
            log("ipamd: adopted \(eni.id) (device \(eni.device), created by nodeboot) with \(eni.addresses.count) addresses")
        }
        let managed = Set(await core.enis.map(\.id))
        await core.setForeignENIs(attached.filter { !managed.contains($0) }.count)
        // Unassigns a restart interrupted: what EC2 still lists on the ENI is served again.
        for intent in await core.checkpoint.intents where intent.operation == .unassign {
            if let eni = intent.eni, let still = described.first(where: { $0.id == eni }) {
                await core.addAddresses(intent.addresses.filter(still.secondaryIPv4s.contains), to: eni)
                await core.addPrefixes(intent.addresses.filter(still.ipv4Prefixes.contains), to: eni)
            }
            try await core.resolve(intent.token)
        }
        // The kubelet's maxPods as init rendered it; without init, the standard formula.
        let maxPods = spec?.maxPods ?? limits.maxENIs * limits.slotsPerENI + 2
        await core.setIPv6Capacity(maxPods)
        // The wait for a new ENI polls IMDS and bounds the whole wait; one look must not take the
        // IMDS policy's own 60 s when the service answers 5xx.
        var look = RetryPolicy.imds
        look.deadline = .seconds(2)
        let reconciler = Reconciler(
            core: core, ec2: ec2, imds: session.imds.with(policy: look),
            context: .init(
                mode: mode, instanceID: facts.identity.instanceId, cluster: spec?.cluster, limits: limits, maxPods: maxPods,
                settings: settings,
                subnet: primary.subnetId, securityGroups: primary.securityGroupIds, vpcID: primary.vpcId),
            log: log)
        // Our ENIs' ages from their createdAt tags: a restart must not free an ENI made seconds ago.
        for eni in described where nodeboots.contains(eni.id) {
            guard let tag = eni.tags["node.k8s.amazonaws.com/createdAt"], let date = try? Date(tag, strategy: .iso8601)
            else { continue }
            let age = max(Date.now.timeIntervalSince(date), 0)
            await reconciler.setCreated(eni.id, at: .now - .milliseconds(Int64(age * 1000)))
        }
        return reconciler
    }

    /// The pool's growth: the reconciler's EC2 setup, then its loop until SIGTERM (which cancels
    /// it: no EC2 change starts after it, vpc-cni.md §1 row 8). Without EC2 (no credentials, no
    /// permission) the daemon keeps serving the addresses the ENIs have.
    struct Growing: Service {
        let core: IPAMCore
        let log: @Sendable (String) -> Void
        let publish: @Sendable () async -> Void
        let make: @Sendable () async throws -> Reconciler

        func run() async throws {
            // SIGTERM during the EC2 setup ends it too (a black-holed endpoint must not hold the stop).
            try await cancelWhenGracefulShutdown { try await grow() }
        }

        func grow() async throws {
            let reconciler: Reconciler
            do {
                reconciler = try await make()
            } catch is CancellationError {
                return
            } catch {
                log("ipamd: the pool cannot grow through EC2: \(error); serving the addresses the ENIs have")
                return
            }
            await reconciler.setAfterPass(publish)
            let (wake, waker) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            await core.onChange { waker.yield() }
            // Leaked ENIs (nodeboot's, detached, in this VPC, older than 5 min): first sweep after a
            // random 0-300 s (nodes booted together do not sweep together), then hourly.
            let context = reconciler.context
            let sweeper =
                context.settings.leakedENICleanup
                ? LeakSweeper(
                    ec2: reconciler.ec2, instanceID: context.instanceID, vpcID: context.vpcID, cluster: context.cluster, log: log)
                : nil
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await reconciler.run(wake: wake) }
                if let sweeper {
                    group.addTask {
                        await sweeper.run(initialDelay: .seconds(Int.random(in: 0...300)), interval: .seconds(3600))
                    }
                }
            }
        }
    }

    /// The socket: bound, READY=1, served until SIGTERM, then closed (in-flight requests finish).
    struct Serving: Service {
        let core: IPAMCore
        let path: String
        let group: any EventLoopGroup
        let publish: @Sendable () async -> Void
        let notify: @Sendable (String) -> Void
        let readiness: Readiness
        let ready: @Sendable () -> Void

        func run() async throws {
            let server = try await SocketServer.start(core: core, path: path, group: group)
            await publish()
            let counts = await core.counts()
            notify("READY=1\nSTATUS=serving \(counts.free) free of \(counts.total) addresses")
            readiness.markReady()
            ready()
            try? await gracefulShutdown()
            await server.close()
        }
    }

    /// The reconciler, once the growth service made it (the metrics read its EC2 counts).
    final class ReconcilerBox: Sendable {
        let reconciler = Mutex<Reconciler?>(nil)
    }

    /// A service whose failure is logged and does not stop the daemon (metrics: a port in use).
    struct Logged<Wrapped: Service>: Service {
        let service: Wrapped
        let what: String
        let log: @Sendable (String) -> Void

        func run() async throws {
            do {
                try await service.run()
            } catch {
                log("ipamd: \(what) not served: \(error)")
            }
        }
    }
}

extension IPAMDaemon {
    /// The daemon as its command runs it (`nodeboot-ipamd`, and `nodeboot ipamd`): the AWS session
    /// from the environment (EC2 calls give up after 30 s, not the default 120 s, so a unit stop is
    /// never held up: the loop tries again), then `run`. Returns the exit status.
    public static func main(
        root: String?, imdsDeadline: Duration, environment: [String: String], notify: @escaping @Sendable (String) -> Void,
        log: @escaping @Sendable (String) -> Void
    ) async -> Int32 {
        var imdsPolicy = RetryPolicy.imds
        imdsPolicy.deadline = imdsDeadline
        var apiPolicy = RetryPolicy.aws(environment: environment)
        apiPolicy.deadline = .seconds(30)
        let session: AWSSession
        do {
            session = try AWSSession(environment: environment, imdsPolicy: imdsPolicy, apiPolicy: apiPolicy)
        } catch {
            log("ipamd: \(error)")
            return 1
        }
        let status = await run(
            environment: environment, paths: IPAMPaths(root: root), session: session, notify: notify, log: log)
        await session.shutdown()
        return status
    }
}
