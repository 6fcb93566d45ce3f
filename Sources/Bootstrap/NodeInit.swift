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
    /// `--register-node`: create (or reconcile) the Node object as the kubelet would, for
    /// machines where no kubelet registers (the demo, the testbed).
    public var registerNode = false
    /// `--wait-ready`: after the Node exists, wait for its Ready condition.
    public var waitReady = false
    /// `--unit-timeout`: the bound on each unit's start/restart (job done and active).
    public var unitTimeout: Duration = .seconds(120)
    /// `--register-timeout`: the bound on waiting for the Node (and Ready).
    public var registerTimeout: Duration = .seconds(300)
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

    /// Runs every phase. A run that got as far as touching the node (apply or run) leaves
    /// `/run/nodeboot/status.json`, failed or not.
    public func run() async throws(NodeBootError) -> InitReport {
        var report = InitReport()
        var recorder = PhaseRecorder(logger: logger, notify: notify)
        let sessions = Sessions()
        let started = Date()
        let reporter = ReportPhase(paths: paths, logger: logger, notify: notify)
        do {
            try await phases(&report, &recorder, sessions)
        } catch {
            await sessions.shutdown()
            report.phases = recorder.phases
            if recorder.current == .register {
                report.node = StatusReport.Node(
                    name: report.nodeName, registration: .failed, detail: report.phases.last?.detail ?? "")
            }
            reporter.run(
                report, startedAt: started, touchedNode: recorder.touchedNode, failedIn: recorder.current, error: error)
            throw error
        }
        await sessions.shutdown()
        report.phases = recorder.phases
        reporter.run(report, startedAt: started, touchedNode: recorder.touchedNode, failedIn: nil, error: nil)
        return report
    }

    /// The sequence; `report` collects what each phase hands on for the report.
    func phases(_ report: inout InitReport, _ recorder: inout PhaseRecorder, _ sessions: Sessions)
        async throws(NodeBootError)
    {
        let options = self.options
        let environment = self.environment
        let sourced = try await recorder.run(.source) { () async throws(NodeBootError) in
            try await SourcePhase(
                sources: options.sources, strict: options.strict, configCache: options.configCache,
                imds: try sessions.open(environment, imdsDeadline: options.imdsDeadline).imds
            ).run()
        }
        report.warnings += sourced.warnings
        report.notes += sourced.notes
        report.configFromCache = sourced.cachedDiscovery != nil

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
                .run(config, cached: sourced.cachedDiscovery, session: session, environment: apiEnvironment)
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
        let apply = ApplyPhase(
            paths: paths, mode: options.dryRun ? .dryRun : writes ? .write : .skip,
            links: NodeLinks.links(
                paths: paths, daemons: daemons,
                tokenHelper: daemons.contains(.kubelet) && options.tokenHelper == .nodeboot ? options.nodebootPath : nil,
                nodebootPath: options.nodebootPath),
            configCache: options.configCache, logger: logger)
        if apply.mode == .write { recorder.touchedNode = true }
        let applied = try await recorder.run(.apply) { () throws(NodeBootError) in
            try apply.run(rendered.files, config: config, discovery: discovered.discovery)
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
        recorder.touchedNode = true
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
