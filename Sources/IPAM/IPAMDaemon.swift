public import AWS
import IPAMProtocol
import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import Support
import UnixSignals

#if canImport(Glibc)
    import Glibc
#endif

/// Where the daemon keeps its files (a root directory in tests).
public struct IPAMPaths: Sendable {
    public var socket: String
    public var checkpoint: String
    public var conflist: String

    public init(root: String? = nil) {
        let base = root ?? ""
        socket = base + IPAMWire.socketPath
        checkpoint = base + Checkpoint.path
        conflist = base + Conflist.path
    }
}

/// `nodeboot ipamd` (docs/ipamd.md §8): settings, the instance's ENIs from IMDS, the checkpoint
/// reconciled, the socket served, the conflist written once addresses are there, READY=1, then
/// serving until SIGTERM. Not yet built: growing and shrinking the pool through EC2 (the
/// reconciler), the node's routes/rules/SNAT, metrics; the pool is the secondary addresses
/// the ENIs already have.
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
            return refusedStatus
        }
        do {
            let facts = try await session.imds.instanceFacts()
            let enis = facts.interfaces.filter { ($0.networkCard ?? 0) == 0 }.map { interface in
                ENIState(
                    id: interface.interfaceId ?? interface.mac, device: interface.deviceNumber ?? 0,
                    isPrimary: interface.mac == facts.mac, addresses: Array(interface.localIPv4s.dropFirst()))
            }.sorted { $0.device < $1.device }
            let vpcCIDRs = facts.primaryInterface?.vpcIPv4CIDRBlocks ?? []
            let wall: @Sendable () -> Int64 = {
                var now = timespec()
                clock_gettime(CLOCK_REALTIME, &now)
                return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
            }
            var checkpoint =
                try Checkpoint.load(paths.checkpoint) ?? Checkpoint(instance: facts.identity.instanceId, mode: .secondaryIPv4)
            if checkpoint.instance != facts.identity.instanceId {
                log(
                    "ipamd: the checkpoint is of instance \(checkpoint.instance), not \(facts.identity.instanceId); starting afresh"
                )
                checkpoint = Checkpoint(instance: facts.identity.instanceId, mode: .secondaryIPv4)
            }
            let observation = HostObservation(
                addressesByENI: Dictionary(uniqueKeysWithValues: enis.map { ($0.id, Set($0.addresses)) }), kernelTraces: [:],
                links: [], kernelKnown: false)
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
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let server = try await SocketServer.start(core: core, path: paths.socket, group: group)
            // READY once the socket serves (init's bounded wait for the unit ends here); the
            // conflist, which makes containerd report the network ready, only once there is an
            // address to give.
            let counts = await core.counts()
            let line = "serving \(counts.free) free of \(counts.total) addresses on \(enis.count) ENIs"
            if counts.free > 0 {
                try Conflist(mtu: settings.mtu).write(paths.conflist)
                log("ipamd: \(line); wrote \(paths.conflist)")
            } else {
                log("ipamd: \(line); no free address yet, so \(paths.conflist) is not written")
            }
            notify("READY=1\nSTATUS=\(line)")
            let services = ServiceGroup(
                configuration: .init(
                    services: [.init(service: Serving(server: server), successTerminationBehavior: .gracefullyShutdownGroup)],
                    gracefulShutdownSignals: [.sigterm, .sigint], logger: Logger(label: "nodeboot-ipamd")))
            try await services.run()
            notify("STOPPING=1")
            try? await group.shutdownGracefully()
            return 0
        } catch {
            log("ipamd: \(error)")
            notify("STATUS=failed: \(error)")
            return 1
        }
    }

    /// The socket server as a service: serves until graceful shutdown, then stops accepting.
    struct Serving: Service {
        let server: SocketServer

        func run() async throws {
            try? await gracefulShutdown()
            await server.close()
        }
    }
}
