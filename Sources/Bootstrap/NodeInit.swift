import AWS
import FoundationEssentials
public import Logging
import NodeConfig
public import NodeRender
import Support
public import Systemd

/// `nodeboot init`'s options (nodeadm's flags plus nodeboot's own).
public struct InitOptions: Sendable {
    public enum Phase: String, Sendable, CaseIterable { case config, run }

    public var sources: [ConfigSource] = ConfigSource.default
    public var skip: Set<Phase> = []
    /// nil: every daemon; empty: none (`--daemon=`).
    public var daemons: Set<Daemon>?
    public var configCache: String?
    public var root: String?
    public var dryRun = false
    public var tokenHelper: TokenHelper = .nodeboot
    public var strict = false
    /// The nodeboot binary the kubeconfig's exec block and the aws-iam-authenticator link name
    /// (the running executable by default).
    public var nodebootPath = NodeFileSystem.executablePath ?? "/usr/bin/nodeboot"
    /// How long IMDS calls keep retrying (nodeadm: ~60 attempts within about a minute).
    public var imdsDeadline: Duration = RetryPolicy.imds.deadline
    /// `--defer-to-script`: with no NodeConfig in any source and user data that cloud-init runs
    /// (a shell script, cloud-config: AL2-style user data calling /etc/eks/bootstrap.sh), do
    /// nothing and succeed. The config boot unit's: that script configures the node later.
    public var deferToScript = false
    /// `--register-node`: create (or reconcile) the Node object as the kubelet would, for
    /// machines where no kubelet registers (the demo, the testbed).
    public var registerNode = false
    /// `--wait-ready`: after the Node exists, wait for its Ready condition.
    public var waitReady = false
    /// `--unit-timeout`: the bound on each unit's start/restart (job done and active).
    public var unitTimeout: Duration = .seconds(120)
    /// `--register-timeout`: the bound on waiting for the Node (and Ready).
    public var registerTimeout: Duration = .seconds(300)
    /// `--lock-timeout`: how long a run waits for another `init` that holds the node's lock
    /// (`/run/nodeboot/init.lock`) before it gives up.
    public var lockTimeout: Duration = .seconds(60)
    /// Whether the run phase starts services: by default yes, except under `--root` (a test or
    /// image tree, whose services are not this machine's). Tests with a fake manager set true.
    public var manageServices: Bool?

    public init() {}
}

/// What a run did.
public struct InitReport: Sendable {
    public var phases: [PhaseRecord] = []
    public var files: [FileChange] = []
    public var warnings: [String] = []
    public var notes: [String] = []
    public var nodeName = ""
    public var configFromCache = false
    public var services = ServiceOutcome(managed: false, note: "run phase skipped")
    public var node = StatusReport.Node(name: "", registration: .notChecked)
    /// Why the run did nothing (`--defer-to-script` with script user data).
    public var deferred: String?

    public init() {}
}

/// `nodeboot init`: the phases of DESIGN's table in order (`Phases/`), each a function from
/// explicit inputs to explicit outputs, timed and reported by one `PhaseRecorder`. Nothing is
/// written before every check has passed; only apply and run touch the node.
public struct NodeInit: Sendable {
    public var options: InitOptions
    public var environment: [String: String]
    /// Progress and phase lines (the executable's handler writes stderr and, on a systemd
    /// host, the journal with the metadata as fields).
    public var logger: Logger
    /// Opens the service manager when the run phase needs one (systemd over D-Bus by default).
    public var serviceManager: @Sendable () throws(SystemdError) -> any ServiceManager
    /// sd_notify assignments (`STATUS=…`, `READY=1`); a no-op unless started by systemd.
    public var notify: @Sendable (String) -> Void

    public init(
        options: InitOptions, environment: [String: String], logger: Logger,
        serviceManager: @escaping @Sendable () throws(SystemdError) -> any ServiceManager = {
            () throws(SystemdError) -> any ServiceManager in try SystemdServiceManager()
        },
        notify: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.options = options
        self.environment = environment
        self.logger = logger
        self.serviceManager = serviceManager
        self.notify = notify
    }

    var paths: NodePaths { NodePaths(root: options.root) }
    var daemons: Set<Daemon> { options.daemons ?? Daemon.defaults }

    /// Runs every phase. A run that got as far as touching the node (apply or run) holds the
    /// node's init lock from then on and leaves `/run/nodeboot/status.json` (`running` at once,
    /// then its outcome), failed or not. A run that fails earlier (bad user data, no IMDS) writes
    /// only status.json, saying why, when no other init holds the lock; `--dry-run` never writes it.
    public func run() async throws(NodeBootError) -> InitReport {
        var report = InitReport()
        var recorder = PhaseRecorder(logger: logger, notify: notify)
        let sessions = Sessions()
        let started = Date()
        let reporter = ReportPhase(paths: paths, logger: logger, notify: notify)
        var claim = NodeClaim()
        defer { claim.lock = nil }  // released once the report is written
        do {
            try await phases(&report, &recorder, sessions, &claim, started: started, reporter: reporter)
        } catch {
            await sessions.shutdown()
            report.phases = recorder.phases
            if recorder.current == .register {
                report.node = StatusReport.Node(
                    name: report.nodeName, registration: .failed, detail: report.phases.last?.detail ?? "")
            }
            // A run refused before it touched the node still says why in status.json (`nodeboot status` after a boot
            // whose user data was broken), when it can take the lock at once: never over a running init's report.
            if !claim.isHeld && !options.dryRun {
                claim.lock = try? await InitLock.acquire(paths, timeout: .zero) { _ in }
            }
            reporter.run(report, startedAt: started, touchedNode: claim.isHeld, failedIn: recorder.current, error: error)
            throw error
        }
        await sessions.shutdown()
        report.phases = recorder.phases
        reporter.run(report, startedAt: started, touchedNode: claim.isHeld, failedIn: nil, error: nil)
        return report
    }

    /// The sequence; `report` collects what each phase hands on for the report.
    func phases(
        _ report: inout InitReport, _ recorder: inout PhaseRecorder, _ sessions: Sessions, _ claim: inout NodeClaim,
        started: Date, reporter: ReportPhase
    ) async throws(NodeBootError) {
        let options = self.options
        let environment = self.environment
        let sourced = try await recorder.run(.source) { () async throws(NodeBootError) in
            try await SourcePhase(
                sources: options.sources, strict: options.strict, configCache: options.configCache,
                imds: try sessions.open(environment, imdsDeadline: options.imdsDeadline).imds,
                deferToScript: options.deferToScript
            ).run()
        }
        report.warnings += sourced.warnings
        report.notes += sourced.notes
        if let deferred = sourced.deferred {
            report.deferred = deferred
            report.notes.append(deferred)
            return
        }
        report.configFromCache = sourced.cachedDiscovery != nil
        // The run unit (`--skip config`) after a config change that discovery does not read: the config unit's
        // discovery of this boot (the cache lives in /run) is still the instance's and the cluster's.
        let reusedDiscovery = sourced.cachedDiscovery ?? (options.skip.contains(.config) ? sourced.unchangedDiscovery : nil)

        let validated = try await recorder.run(.validate) { () throws(NodeBootError) in
            try ValidatePhase(strict: options.strict).run(sourced.located)
        }
        report.warnings += validated.warnings
        let config = sourced.located.config

        // The AWS calls see spec.instance.environment.default (a proxy) as the daemons will.
        var apiEnvironment = environment
        for (key, value) in config.spec.instance.environment["default"] ?? [:] { apiEnvironment[key] = value }
        let discovered = try await recorder.run(.discover) { [paths, daemons, apiEnvironment] () async throws(NodeBootError) in
            let session = try sessions.open(apiEnvironment, imdsDeadline: options.imdsDeadline)
            return try await DiscoverPhase(paths: paths, daemons: daemons, dryRun: options.dryRun)
                .run(config, cached: reusedDiscovery, session: session, environment: apiEnvironment)
        }
        report.warnings += discovered.discovery.warnings

        let render = RenderPhase(
            paths: paths, daemons: daemons, tokenHelper: options.tokenHelper, nodebootPath: options.nodebootPath,
            environment: environment)
        let rendered = try await recorder.run(.render) { () async throws(NodeBootError) in
            try await render.run(validated, discovered.discovery)
        }
        report.warnings += rendered.warnings
        report.nodeName = rendered.context.nodeName

        let writes = !options.skip.contains(.config) || (options.configCache != nil && sourced.changedSinceCache)
        // `--skip config` with a config that changed since the config phase (a NodeConfig dropped into nodeadm.d
        // between the boot phases): only the files that change re-renders are written. The others may have been
        // edited by the user data's scripts since the config phase wrote them, and those edits stay.
        var files = rendered.files
        if options.skip.contains(.config), writes, let previous = sourced.previousCache,
            let before = await Self.previousRender(previous, render: render)
        {
            files = Self.changed(rendered.files, since: before)
            report.notes.append(
                "the config changed since the config phase: \(files.count) file(s) it changes written,"
                    + " \(rendered.files.count - files.count) left as they are on the node")
        }
        let apply = ApplyPhase(
            paths: paths, mode: options.dryRun ? .dryRun : writes ? .write : .skip,
            links: NodeLinks.links(
                paths: paths, daemons: daemons,
                tokenHelper: daemons.contains(.kubelet) && options.tokenHelper == .nodeboot ? options.nodebootPath : nil,
                nodebootPath: options.nodebootPath),
            configCache: options.configCache, logger: logger)
        // Before the first write: the lock, an interrupted run's leftovers, status.json `running`.
        let directories = claimedDirectories(rendered.files, links: apply.links)
        func claimNode(_ phase: PhaseName, _ recorder: inout PhaseRecorder) async throws(NodeBootError) {
            let (warnings, notes) = try await recorder.prepare(phase) { () async throws(NodeBootError) in
                try await claim.take(
                    paths, timeout: options.lockTimeout, directories: directories, report: report, startedAt: started,
                    reporter: reporter, logger: logger)
            }
            report.warnings += warnings
            report.notes += notes
        }
        if apply.mode == .write { try await claimNode(.apply, &recorder) }
        if apply.mode == .write {
            // What `nodeboot reset` undoes (Reset/InstallRecord.swift), noted before anything is written.
            try InstallRecord.note(
                files: rendered.files.map(\.path), links: apply.links.map(\.path), configCache: options.configCache,
                nodeName: rendered.context.nodeName, paths: paths)
        }
        let applied = try await recorder.run(.apply) { [files] () throws(NodeBootError) in
            try apply.run(files, config: config, discovery: discovered.discovery)
        }
        report.files = applied.changes
        report.warnings += applied.warnings
        if options.dryRun {
            if !options.skip.contains(.run) {
                report.notes += ServiceRun.dryRun(applied.changes, files: rendered.files, daemons: daemons)
            }
            return
        }

        guard !options.skip.contains(.run) else { return }
        try await claimNode(.run, &recorder)
        let runPhase = RunPhase(
            paths: paths, daemons: daemons, manageServices: options.manageServices ?? (options.root == nil),
            serviceManager: serviceManager, unitTimeout: options.unitTimeout, environment: environment, logger: logger)
        var services = report.services
        let ran: RunPhase.Output
        do {
            ran = try await recorder.run(.run) { () async throws(NodeBootError) in
                try await runPhase.run(config, files: rendered.files, services: &services)
            }
        } catch {
            report.services = services
            throw error
        }
        report.services = services
        report.notes += ran.notes

        if let reason = RegisterPhase.skipReason(
            daemons: daemons, root: options.root, registerNode: options.registerNode, waitReady: options.waitReady)
        {
            report.node = StatusReport.Node(name: rendered.context.nodeName, registration: .notChecked, detail: reason)
            return
        }
        let register = RegisterPhase(
            root: options.root, environment: apiEnvironment, registerNode: options.registerNode,
            waitReady: options.waitReady, timeout: options.registerTimeout, unitTimeout: options.unitTimeout,
            logger: logger)
        let registered = try await recorder.run(.register) { () async throws(NodeBootError) in
            try await register.run(rendered.context, manager: ran.manager)
        }
        report.node = registered.node
    }
}

extension NodeInit {
    /// The directories a run writes to (where an interrupted run's staged files can be): those
    /// of the rendered files and links, the config cache's, and nodeboot's own state.
    func claimedDirectories(_ files: [NodeFile], links: [NodeLinks.Link]) -> [String] {
        var directories: [String] = []
        func add(_ path: String) {
            guard let slash = path.lastIndex(of: "/") else { return }
            let directory = slash == path.startIndex ? "/" : String(path[..<slash])
            if !directories.contains(directory) { directories.append(directory) }
        }
        for file in files { add(paths.node(file.path)) }
        for link in links { add(paths.node(link.path)) }
        if let cache = options.configCache { add(cache) }
        for path in [NodePaths.statusFile, NodePaths.runMarker, NodePaths.stateDirectory + "/cluster.json"] {
            add(paths.node(path))
        }
        return directories
    }

    /// The files the cached config renders with the cached discovery: what the config phase wrote. nil when the
    /// cache no longer validates or renders; the caller then writes every file, as a full config phase would.
    static func previousRender(_ cache: ConfigCache, render: RenderPhase) async -> [NodeFile]? {
        let located = LocatedConfig(config: cache.config, documents: [DocumentOrigin(source: "config cache")])
        // try?: a cache that no longer validates only means no file is kept back (the fallback above).
        guard let validated = try? ValidatePhase(strict: false).run(located) else { return nil }
        // try?: the same fallback when it no longer renders.
        return try? await render.run(validated, cache.status).files
    }

    /// The files of `files` whose path is new, or whose bytes or mode differ from the same path in `before`.
    static func changed(_ files: [NodeFile], since before: [NodeFile]) -> [NodeFile] {
        let previous = Dictionary(before.map { ($0.path, $0) }, uniquingKeysWith: { first, _ in first })
        return files.filter { file in
            guard let old = previous[file.path] else { return true }
            return old.bytes != file.bytes || old.mode != file.mode
        }
    }
}
