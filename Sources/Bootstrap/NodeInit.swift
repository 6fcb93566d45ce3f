import AWS
import FoundationEssentials
public import Logging
import NodeConfig
public import NodeRender
public import Support
public import Systemd

#if canImport(Glibc)
    import Glibc
#endif

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

/// One phase's timing and outcome, for the timeline and status.json.
public struct PhaseRecord: Sendable, Codable, Equatable {
    public var name: String
    /// When the phase started, in milliseconds after the run started.
    public var start: Double
    public var milliseconds: Double
    /// `ok` or `failed`.
    public var result: String
    public var detail: String
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
    public var node = StatusReport.Node(name: "", registration: "not checked")
}

/// The `init` pipeline: source → decode → (cache) → validate → discover → render → apply →
/// run → register → report. Nothing is written before every check has passed.
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

    /// Runs every phase. A run that got as far as touching the node (apply or run) leaves
    /// `/run/nodeboot/status.json`, failed or not.
    public func run() async throws(NodeBootError) -> InitReport {
        var report = InitReport()
        var clock = PhaseClock()
        let logger = self.logger
        clock.onRecord = { phase in
            guard phase.result == "ok" else { return }
            logger.info(
                "\(phase.name) \(phase.milliseconds.oneDecimal) ms: \(phase.detail)",
                metadata: ["phase": "\(phase.name)", "duration": "\(phase.milliseconds.oneDecimal)"])
        }
        let started = Date()
        do {
            try await pipeline(&report, &clock)
        } catch {
            clock.fail(&report, error)
            if clock.current == "register" {
                report.node = StatusReport.Node(
                    name: report.nodeName, registration: "failed", detail: report.phases.last?.detail ?? "")
            }
            notify("STATUS=failed in the \(clock.current) phase")
            if clock.touchedNode {
                writeStatus(StatusReport(startedAt: started, finishedAt: Date(), report: report, error: error))
            }
            throw error
        }
        if clock.touchedNode { writeStatus(StatusReport(startedAt: started, finishedAt: Date(), report: report, error: nil)) }
        notify("READY=1\nSTATUS=done: node \(report.nodeName) \(report.node.registration)")
        return report
    }

    func writeStatus(_ status: StatusReport) {
        do {
            try NodeFileSystem.makeDirectories(paths.node(NodePaths.runDirectory))
            try NodeFileSystem.writeAtomically(paths.node(NodePaths.statusFile), status.encoded(), mode: 0o644)
        } catch {
            // The run's outcome is already decided; a report that cannot be written is worth a line.
            logger.warning("cannot write \(paths.node(NodePaths.statusFile)): \(error)")
        }
    }

    func begin(_ name: String, _ clock: inout PhaseClock) {
        clock.current = name
        notify("STATUS=\(name)")
    }

    func pipeline(_ report: inout InitReport, _ clock: inout PhaseClock) async throws(NodeBootError) {
        begin("source", &clock)
        let baseSession = try session(environment)
        var sessions = [baseSession]
        defer {
            let all = sessions
            Task { for session in all { await session.shutdown() } }
        }

        // source + decode
        let cache =
            options.configCache.map { path -> ConfigCache? in
                let (cache, problem) = ConfigCache.load(path)
                if let problem { report.warnings.append("config cache \(path) ignored: \(problem)") }
                return cache
            } ?? nil
        let chain = ConfigChain(sources: options.sources, imds: baseSession.imds)
        let loaded = try await chain.load()
        report.notes += loaded.notes
        try Self.failOnErrors(loaded.diagnostics, strict: options.strict, report: &report)
        clock.record(
            &report, "source",
            "\(loaded.config?.documents.count ?? 0) document(s) from \(options.sources.map(\.description).joined(separator: ", "))"
        )

        var located: LocatedConfig
        var discovery: Discovery?
        var changed = false
        if let provided = loaded.config {
            located = provided
            if let cache, cache.config == provided.config {
                discovery = cache.status
                report.configFromCache = true
            } else {
                changed = cache != nil
            }
        } else if let cache {
            located = LocatedConfig(config: cache.config, documents: [DocumentOrigin(source: "config cache")])
            discovery = cache.status
            report.configFromCache = true
            report.notes.append("no NodeConfig in the config sources: using the config cache \(options.configCache ?? "")")
        } else {
            let why = loaded.notes.isEmpty ? "" : " (\(loaded.notes.joined(separator: "; ")))"
            throw NodeBootError(
                .input, "no NodeConfig in any config source\(why)",
                hint: "give a NodeConfig (apiVersion: node.eks.aws/v1alpha1) in the user data, or with -c file://PATH")
        }

        // validate (the config alone)
        begin("validate", &clock)
        let validation = NodeConfigValidation.validate(located)
        try Self.failOnErrors(validation.diagnostics, strict: options.strict, report: &report)
        let expression = try Self.maxPodsExpression(located)
        clock.record(&report, "validate", validation.warnings.isEmpty ? "ok" : "\(validation.warnings.count) warning(s)")

        // discover
        begin("discover", &clock)
        var apiEnvironment = environment
        for (key, value) in located.config.spec.instance.environment["default"] ?? [:] { apiEnvironment[key] = value }
        let session = apiEnvironment == environment ? baseSession : try self.session(apiEnvironment)
        if session !== baseSession { sessions.append(session) }
        let daemons = options.daemons ?? Set(Daemon.allCases)
        if discovery == nil {
            discovery = try await Discoverer(paths: paths, session: session, environment: apiEnvironment)
                .discover(located.config, daemons: daemons)
            clock.record(&report, "discover", "instance \(discovery!.instance.id) (\(discovery!.instance.type))")
        } else {
            clock.record(&report, "discover", "from the config cache (no IMDS or EC2 call)")
        }
        guard let discovery else { throw NodeBootError(.internal, "discovery produced nothing") }
        report.warnings += discovery.warnings

        // render
        begin("render", &clock)
        var context = try renderContext(located, discovery, expression: expression, daemons: daemons, report: &report)
        if let cluster = discovery.cluster {
            // What DescribeCluster (or the persisted copy) said is checked like user input.
            let filled = LocatedConfig(config: context.config, documents: [DocumentOrigin(source: cluster.source)])
            let problems = NodeConfigValidation.validate(filled).errors.filter { $0.field.hasPrefix("spec.cluster.") }
            if !problems.isEmpty {
                throw NodeBootError(
                    .aws,
                    "the cluster details from \(cluster.source) are unusable:\n"
                        + problems.map { "  \($0)" }.joined(separator: "\n"),
                    hint: "check the cluster in the EKS console; remove a stale \(NodePaths.stateDirectory)/cluster-*.json")
            }
        }
        context.daemons = daemons
        report.nodeName = context.nodeName
        if daemons.contains(.kubelet) {
            let binary = environment["ECR_CREDENTIAL_PROVIDER_BIN_PATH"] ?? context.credentialProviderBinary
            context.credentialProviderBinary = binary
            if !NodeFileSystem.exists(paths.node(binary)) {
                throw NodeBootError(
                    .io, "image credential provider binary was not found on path \(paths.node(binary))",
                    hint: "install ecr-credential-provider in the image, or set ECR_CREDENTIAL_PROVIDER_BIN_PATH")
            }
        }
        let files: [NodeFile]
        do {
            files = try NodeRenderer.render(context)
        } catch {
            let place = located.location(of: error.field)
            throw NodeBootError(
                .input,
                "\(ConfigDiagnostic(severity: .error, origin: place.origin, line: place.line, field: error.field, message: error.message, hint: error.hint))"
            )
        }
        clock.record(&report, "render", "\(files.count) files")

        // apply
        begin("apply", &clock)
        let runConfig = !options.skip.contains(.config) || (options.configCache != nil && changed)
        let applier = Applier(paths: paths)
        let installsHelper = daemons.contains(.kubelet) && options.tokenHelper == .nodeboot
        if options.dryRun {
            report.files = try applier.plan(files, withDiffs: true)
            if installsHelper {
                report.files.append(
                    try applier.ensureLink(NodePaths.authenticatorLink, target: options.nodebootPath, dryRun: true))
            }
            if !options.skip.contains(.run) { report.notes += Self.serviceDryRun(report.files, daemons: daemons) }
            clock.record(&report, "apply", "dry run: nothing written")
            return
        }
        if runConfig {
            clock.touchedNode = true
            report.files = try applier.apply(files)
            if installsHelper {
                report.files.append(
                    try applier.ensureLink(NodePaths.authenticatorLink, target: options.nodebootPath, dryRun: false))
            }
            if let path = options.configCache {
                let cacheFile = ConfigCache(config: located.config, status: discovery)
                do {
                    let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
                    try NodeFileSystem.makeDirectories(directory)
                    try NodeFileSystem.writeAtomically(path, cacheFile.encoded(), mode: 0o600)
                } catch {
                    report.warnings.append("could not write the config cache \(path): \(error)")
                }
            }
            for file in report.files where file.action != .unchanged {
                logger.info(
                    "\(file.action.rawValue) \(file.path) (\(String(file.mode, radix: 8)), \(file.size) bytes)",
                    metadata: ["phase": "apply", "file": "\(file.path)"])
            }
            let written = report.files.filter { $0.action != .unchanged }.count
            clock.record(&report, "apply", "\(written) written, \(report.files.count - written) unchanged")
        } else {
            clock.record(&report, "apply", "skipped (--skip config)")
        }

        // run: marker, local disks, then the services
        guard !options.skip.contains(.run) else { return }
        begin("run", &clock)
        clock.touchedNode = true
        try await runPhase(located.config, report: &report)
        let manager = try services(files: files.map(\.path), daemons: daemons, into: &report.services)
        clock.record(&report, "run", Self.describe(report.services))

        // register: the Node object, as the API server sees it
        guard daemons.contains(.kubelet) else {
            report.node = StatusReport.Node(
                name: context.nodeName, registration: "not checked", detail: "the kubelet is not among --daemon")
            return
        }
        if options.root != nil && !options.registerNode && !options.waitReady {
            report.node = StatusReport.Node(
                name: context.nodeName, registration: "not checked",
                detail: "--root without --register-node: no kubelet of this tree registers")
            return
        }
        begin("register", &clock)
        report.node = try await register(context, environment: apiEnvironment, manager: manager)
        clock.record(&report, "register", "node \(report.node.name) \(report.node.registration)")
    }

    /// Confirms the Node through the node's own kubeconfig and token helper (see
    /// `NodeRegistration`); with `--register-node` creates or reconciles it.
    func register(_ context: RenderContext, environment: [String: String], manager: (any ServiceManager)?)
        async throws(NodeBootError) -> StatusReport.Node
    {
        var registration = RegistrationOptions(
            root: options.root, environment: environment, nodeName: context.nodeName, node: DesiredNode(context: context))
        registration.register = options.registerNode
        registration.waitReady = options.waitReady
        registration.timeout = options.registerTimeout
        if let manager {
            let timeout = options.unitTimeout
            registration.kubeletHealth = {
                manager.failure(of: ServiceUnits.kubelet).map {
                    ServiceRun.failure(ServiceUnits.kubelet, $0, timeout: timeout)
                }
            }
        }
        let logger = self.logger
        let result = try await NodeRegistration().confirm(
            options: registration, log: { logger.notice("\($0)", metadata: ["phase": "register"]) })
        return StatusReport.Node(
            name: result.nodeName, registration: result.action.rawValue, ready: options.waitReady ? result.ready : nil,
            detail: (result.changes.isEmpty ? "" : result.changes.joined(separator: ", ") + "; ") + result.details)
    }

    /// Starts or restarts what changed (see `ServiceRun`); under `--root` nothing on this
    /// machine is touched.
    /// Returns the service manager when services are managed (the register phase watches the
    /// kubelet through it).
    func services(files: [String], daemons: Set<Daemon>, into outcome: inout ServiceOutcome) throws(NodeBootError)
        -> (any ServiceManager)?
    {
        if !(options.manageServices ?? (options.root == nil)) {
            outcome = ServiceOutcome(managed: false, note: "--root: this machine's services are not touched")
            return nil
        }
        let ordered = Daemon.allCases.filter(daemons.contains)
        let manager: any ServiceManager
        do {
            manager = try serviceManager()
        } catch {
            throw NodeBootError(
                .io, "cannot manage containerd and the kubelet: \(error.message)",
                hint:
                    "nodeboot init starts services through systemd (PID 1); on a machine without it use --skip run, or --root DIR for an image tree",
                cause: error)
        }
        let run = ServiceRun(paths: paths, manager: manager, timeout: options.unitTimeout, logger: logger)
        try run.run(files: files, daemons: ordered, into: &outcome)
        return manager
    }

    /// What the run phase would do about the files a dry run would change (without asking
    /// systemd: a unit that is down would also be started).
    static func serviceDryRun(_ files: [FileChange], daemons: Set<Daemon>) -> [String] {
        let changed = files.filter { $0.action != .unchanged }.map(\.path)
        var notes: [String] = []
        if changed.contains(where: ServiceUnits.isSystemdConfiguration) { notes.append("the run phase would daemon-reload") }
        let units = [ServiceUnits.resolved] + Daemon.allCases.filter(daemons.contains).map(ServiceUnits.unit)
        for unit in units {
            let causes = changed.filter { ServiceUnits.units(for: $0).contains(unit) }
            if !causes.isEmpty {
                notes.append("the run phase would restart \(unit) (\(causes.joined(separator: ", ")) would change)")
            }
        }
        if notes.isEmpty { notes.append("the run phase would restart nothing (no unit's files would change)") }
        return notes
    }

    static func describe(_ outcome: ServiceOutcome) -> String {
        guard outcome.managed else { return "services not managed: \(outcome.note ?? "")" }
        let acted = outcome.actions.filter { $0.action != .none }
        var parts: [String] = []
        if outcome.reloaded { parts.append("daemon-reload") }
        parts += acted.map { "\($0.action.rawValue) \($0.unit)" }
        let steady = outcome.actions.filter { $0.action == .none }.map(\.unit)
        if !steady.isEmpty { parts.append("\(steady.joined(separator: ", ")) unchanged") }
        return parts.isEmpty ? "no services" : parts.joined(separator: "; ")
    }

    func session(_ environment: [String: String]) throws(NodeBootError) -> AWSSession {
        var policy = RetryPolicy.imds
        policy.deadline = options.imdsDeadline
        do {
            return try AWSSession(environment: environment, imdsPolicy: policy)
        } catch {
            throw NodeBootError(.input, "\(error)", hint: error.hint)
        }
    }

    static func failOnErrors(_ diagnostics: [ConfigDiagnostic], strict: Bool, report: inout InitReport)
        throws(NodeBootError)
    {
        report.warnings += diagnostics.filter { $0.severity == .warning && !strict }.map { "\($0)" }
        if let failure = ConfigChain.failure(diagnostics, strict: strict) { throw failure }
    }

    static func maxPodsExpression(_ located: LocatedConfig) throws(NodeBootError) -> MaxPodsExpression? {
        let source = located.config.spec.kubelet.maxPodsExpression
        guard !source.isEmpty else { return nil }
        do {
            return try MaxPodsExpression(source)
        } catch {
            let place = located.location(of: "spec.kubelet.maxPodsExpression")
            throw NodeBootError(
                .input,
                "\(ConfigDiagnostic(severity: .error, origin: place.origin, line: place.line, field: "spec.kubelet.maxPodsExpression", message: "\(error)", hint: "integers, default_enis, ips_per_eni, max_pods, + - * / %, comparisons and ? : are supported"))"
            )
        }
    }

    func renderContext(
        _ located: LocatedConfig, _ discovery: Discovery, expression: MaxPodsExpression?, daemons: Set<Daemon>,
        report: inout InitReport
    ) throws(NodeBootError) -> RenderContext {
        var config = located.config
        if let cluster = discovery.cluster {
            if config.spec.cluster.apiServerEndpoint.isEmpty { config.spec.cluster.apiServerEndpoint = cluster.apiServerEndpoint }
            if config.spec.cluster.certificateAuthority.isEmpty {
                config.spec.cluster.certificateAuthority = cluster.certificateAuthority
            }
            if config.spec.cluster.cidr.isEmpty { config.spec.cluster.cidr = cluster.cidr }
        }
        var maxPods = discovery.standardMaxPods
        if let expression {
            if let limits = discovery.networkLimits {
                do {
                    maxPods = try expression.evaluate(
                        defaultENIs: limits.defaultMaxENIs, ipsPerENI: limits.ipv4AddressesPerInterface, maxPods: maxPods)
                } catch {
                    let place = located.location(of: "spec.kubelet.maxPodsExpression")
                    throw NodeBootError(
                        .input,
                        "\(ConfigDiagnostic(severity: .error, origin: place.origin, line: place.line, field: "spec.kubelet.maxPodsExpression", message: "\(error)", hint: "this node has default_enis=\(limits.defaultMaxENIs), ips_per_eni=\(limits.ipv4AddressesPerInterface), max_pods=\(maxPods); make the expression give 1 to 2147483646 for them (guard divisors: d == 0 ? max_pods : max_pods / d)"))"
                    )
                }
            } else {
                report.warnings.append(
                    "spec.kubelet.maxPodsExpression not evaluated: the instance type's ENI limits are unknown; maxPods is 110")
            }
        }
        guard let kubelet = ComponentVersion(parsing: discovery.kubeletVersion),
            let containerd = ComponentVersion(parsing: discovery.containerdVersion)
        else { throw NodeBootError(.internal, "unparsable versions in the discovery") }
        var context = RenderContext(
            config: config, instance: discovery.instance, kubeletVersion: kubelet, containerdVersion: containerd,
            maxPods: maxPods, onlineCPUs: discovery.onlineCPUs, nvidiaRuntime: discovery.nvidiaRuntime,
            nvidiaDevice: discovery.nvidiaDevice)
        context.tokenHelper = options.tokenHelper
        context.nodebootPath = options.nodebootPath
        if context.isOutpost, let host = NodeRenderer.apiServerHost(config.spec.cluster.apiServerEndpoint) {
            context.apiServerAddresses = HostResolver.addresses(host)
            if context.apiServerAddresses.isEmpty {
                throw NodeBootError(
                    .io, "cannot resolve the outpost API server host \(host)",
                    hint: "the node must resolve the local cluster endpoint (DNS in the VPC)")
            }
            context.currentHosts = try? NodeFileSystem.read(paths.node(HostsFile.path))
        }
        return context
    }

    /// The marker, then local-disk setup (nodeadm's run-phase aspects).
    func runPhase(_ config: NodeConfig, report: inout InitReport) async throws(NodeBootError) {
        let marker = paths.node(NodePaths.runMarker)
        do {
            if !NodeFileSystem.exists(marker) { try NodeFileSystem.writeAtomically(marker, [], mode: 0o644) }
        } catch {
            throw NodeBootError(.io, "cannot write the run marker: \(error)", cause: error)
        }
        let storage = config.spec.instance.localStorage
        guard !storage.strategy.isEmpty else { return }
        var arguments = [storage.strategy.lowercased()]
        if !storage.mountPath.isEmpty { arguments += ["--dir", storage.mountPath] }
        for mount in storage.disabledMounts {
            switch mount {
            case "PodLogs": arguments.append("--no-bind-pods-logs")
            case "Containerd": arguments.append("--no-bind-containerd")
            default: arguments.append("--no-bind-soci")
            }
        }
        let script = paths.node(NodePaths.setupLocalDisks)
        let result: ExternalCommand.Output
        do {
            result = try await ExternalCommand.run(script, arguments, environment: environment, timeout: .seconds(600))
        } catch {
            throw NodeBootError(.io, "local disks: \(error)", hint: "install setup-local-disks in the image")
        }
        let output = result.combined
        if !output.isEmpty {
            logger.notice("\(output.hasSuffix("\n") ? String(output.dropLast()) : output)", metadata: ["phase": "run"])
        }
        guard result.status == 0 && !result.timedOut else {
            throw NodeBootError(
                .io, "setup-local-disks \(arguments.joined(separator: " ")) failed (exit \(result.status))",
                hint: "its output is above; check the instance store volumes")
        }
        report.notes.append("setup-local-disks \(arguments.joined(separator: " "))")
    }
}

/// Phase timings, the phase under way, and whether the node was touched yet.
struct PhaseClock {
    let origin = ContinuousClock.now
    var last = ContinuousClock.now
    var current = "source"
    var touchedNode = false
    /// Called with each finished phase (the executable logs it with structured fields).
    var onRecord: (PhaseRecord) -> Void = { _ in }

    mutating func record(_ report: inout InitReport, _ name: String, _ detail: String, result: String = "ok") {
        let now = ContinuousClock.now
        report.phases.append(
            PhaseRecord(
                name: name, start: (last - origin).milliseconds, milliseconds: (now - last).milliseconds,
                result: result, detail: detail))
        onRecord(report.phases[report.phases.count - 1])
        last = now
    }

    /// Closes the phase under way as failed.
    mutating func fail(_ report: inout InitReport, _ error: NodeBootError) {
        let firstLine = error.message.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
        record(&report, current, firstLine, result: "failed")
    }
}

/// getaddrinfo, retried briefly (nodeadm: 6 tries, 200 ms apart). `localhost` and
/// `*.localhost` are the loopback addresses of both families without asking anyone (RFC 6761
/// 6.3, as systemd-resolved answers), so the result does not depend on the host's /etc/hosts.
enum HostResolver {
    static func addresses(_ host: String) -> [String] {
        let lower = host.lowercased()
        if lower == "localhost" || lower.hasSuffix(".localhost") { return ["127.0.0.1", "::1"] }
        for attempt in 0..<6 {
            var hints = addrinfo()
            hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
            var result: UnsafeMutablePointer<addrinfo>?
            if getaddrinfo(host, nil, &hints, &result) == 0 {
                defer { freeaddrinfo(result) }
                var addresses: [String] = []
                var cursor = result
                while let info = cursor {
                    var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
                    if getnameinfo(
                        info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0,
                        NI_NUMERICHOST) == 0
                    {
                        let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                        if !addresses.contains(text) { addresses.append(text) }
                    }
                    cursor = info.pointee.ai_next
                }
                return addresses
            }
            if attempt < 5 { usleep(200_000) }
        }
        return []
    }
}
