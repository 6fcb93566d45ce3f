import Bootstrap
import FoundationEssentials
import Logging
import NodeRender
import Support
import Systemd

#if canImport(Glibc)
    import Glibc
#endif

/// `nodeboot init`.
struct Init {
    static let command = Command(
        "init", abstract: "Bootstrap this instance into a node: config, discover, validate, render, apply, run.",
        options: SourceOptions.options + [
            .value("skip", short: "s", "skip", "Skip a phase (config or run); repeatable."),
            .value(
                "daemon", short: "d", "daemon",
                "Only configure these daemons (containerd, kubelet, nodeboot-ipamd); '--daemon=' for none."),
            // `--daemon=` (nodeadm's "no daemons"); `main` rewrites it to this.
            .flag("no-daemons", "", hidden: true),
            .value("config-cache", "config-cache", "Config cache file (nodeadm's --config-cache)."),
            .flag("dry-run", "Print the files that would change, with a diff; write nothing."),
            .value(
                "token-helper", "token-helper",
                "The kubeconfig's exec plugin: nodeboot (nodeboot token, the default) or aws (aws eks get-token)."),
            OutputFormat.option,
            .flag(
                "register-node",
                "Create or reconcile the Node object as the kubelet would (when no kubelet registers: demo, testbed)."),
            .flag("wait-ready", "After the Node exists, wait until it is Ready."),
            .flag(
                "defer-to-script",
                "No NodeConfig anywhere and user data that cloud-init runs (a script calling /etc/eks/bootstrap.sh):"
                    + " do nothing, exit 0 (the config boot unit's)."),
            .value(
                "unit-timeout", "unit-timeout", "Seconds each unit start/restart may take (job done and active; default 120)."),
            .value(
                "register-timeout", "register-timeout",
                "Seconds to wait for the Node to register (and be Ready with --wait-ready; default 300)."),
            .value(
                "lock-timeout", "lock-timeout",
                "Seconds to wait while another init holds the node's lock (/run/nodeboot/init.lock; default 60)."),
        ] + IMDSOptions.options)

    let arguments: Arguments
    let output: OutputFormat

    init(_ arguments: Arguments) throws(UsageError) {
        self.arguments = arguments
        output = try arguments.choice("output", default: OutputFormat.text)
    }

    func options() throws -> InitOptions {
        var options = InitOptions()
        let sources = try SourceOptions.sources(arguments)
        if !sources.isEmpty { options.sources = sources }
        options.strict = arguments.flag("strict")
        for phase in arguments.strings("skip") {
            guard let value = InitOptions.Phase(rawValue: phase) else {
                throw Failure(NodeBootError(.input, "--skip \(phase): not a phase", hint: "use --skip config or --skip run"))
            }
            options.skip.insert(value)
        }
        let noDaemons = arguments.flag("no-daemons")
        if noDaemons { options.daemons = [] }
        let named = arguments.strings("daemon")
        if !named.isEmpty {
            var daemons = Set<Daemon>()
            for name in named where !name.isEmpty {
                guard let value = Daemon(rawValue: name) else {
                    throw Failure(
                        NodeBootError(
                            .input, "--daemon \(name): not a daemon", hint: "use containerd or kubelet (or nodeboot-ipamd)"))
                }
                daemons.insert(value)
            }
            options.daemons = noDaemons ? [] : daemons
        }
        let tokenHelper = arguments.string("token-helper") ?? "nodeboot"
        guard let helper = TokenHelper(rawValue: tokenHelper) else {
            throw Failure(NodeBootError(.input, "--token-helper \(tokenHelper): use nodeboot or aws"))
        }
        options.tokenHelper = helper
        options.configCache = arguments.string("config-cache")
        if let root = arguments.string("root") {
            guard !root.isEmpty else { throw Failure(NodeBootError(.input, "--root is empty")) }
            options.root = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        }
        options.dryRun = arguments.flag("dry-run")
        options.imdsDeadline = try IMDSOptions.deadline(arguments)
        options.registerNode = arguments.flag("register-node")
        options.waitReady = arguments.flag("wait-ready")
        options.deferToScript = arguments.flag("defer-to-script")
        options.unitTimeout = .milliseconds(Int64(try arguments.seconds("unit-timeout", default: 120) * 1000))
        options.registerTimeout = .milliseconds(Int64(try arguments.seconds("register-timeout", default: 300) * 1000))
        options.lockTimeout = .milliseconds(Int64(try arguments.seconds("lock-timeout", default: 60) * 1000))
        return options
    }

    /// Everything from `info` to the journal (with fields), when there is one; `notice` and
    /// above (what is done to units, registration progress) also to stderr, unless stderr is the
    /// journal. The phase timeline is printed at the end anyway.
    static func logger() -> Logger {
        Logger(label: "nodeboot") { _ in JournalLogHandler.handler(terminalLevel: .notice) }
    }

    func run() async throws {
        let options = try options()
        if options.root == nil && !options.dryRun && getuid() != 0 {
            throw Failure(NodeBootError(.io, "must run as root", hint: "use sudo, or --root DIR to write under a directory"))
        }
        let start = ContinuousClock.now
        let runner = NodeInit(
            options: options, environment: ProcessInfo.processInfo.environment,
            logger: Self.logger(),
            notify: { _ = SystemdNotifier.notify($0) })
        let report: InitReport
        do {
            report = try await runner.run()
        } catch {
            throw Failure(error)
        }
        let total = ContinuousClock.now - start
        StandardStreams.output(
            output == .json ? report.json(total: total) : report.text(total: total, dryRun: options.dryRun))
    }
}
