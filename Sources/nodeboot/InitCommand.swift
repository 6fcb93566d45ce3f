import ArgumentParser
import Bootstrap
import FoundationEssentials
import Logging
import NodeRender
import Support
import Systemd

#if canImport(Glibc)
    import Glibc
#endif

/// The `-c/--config-source` option shared by init and config.
struct SourceOptions: ParsableArguments {
    @Option(
        name: [.customShort("c"), .customLong("config-source")],
        help: "Config source URI, repeatable, in order: imds://user-data (default) or file://PATH.")
    var configSources: [String] = []

    @Flag(help: "Treat warnings (unknown fields, a CA that is not PEM) as errors.")
    var strict = false

    @Option(help: "Node root: every node path under this directory (paths given with -c are used as given).")
    var root: String?

    func sources() throws -> [ConfigSource] {
        do {
            return try configSources.map { uri throws(NodeBootError) in try ConfigSource(uri: uri) }
        } catch {
            throw Failure(error)
        }
    }
}

struct Init: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Bootstrap this instance into a node: config, discover, validate, render, apply, run.")

    @OptionGroup var source: SourceOptions

    @Option(name: .shortAndLong, help: "Skip a phase (config or run); repeatable.")
    var skip: [String] = []

    @Option(name: .shortAndLong, help: "Only configure these daemons (containerd, kubelet); '--daemon=' for none.")
    var daemon: [String] = []

    /// `--daemon=` (nodeadm's "no daemons"); `main` rewrites it to this, since an empty value
    /// is not an option value for ArgumentParser.
    @Flag(help: .hidden)
    var noDaemons = false

    @Option(help: "Config cache file (nodeadm's --config-cache).")
    var configCache: String?

    @Flag(help: "Print the files that would change, with a diff; write nothing.")
    var dryRun = false

    @Option(help: "The kubeconfig's exec plugin: nodeboot (nodeboot token) or aws (aws eks get-token).")
    var tokenHelper: String = "nodeboot"

    @Option(name: .shortAndLong, help: "Output format: text or json.")
    var output: OutputFormat = .text

    @Flag(help: "Create or reconcile the Node object as the kubelet would (when no kubelet registers: demo, testbed).")
    var registerNode = false

    @Flag(help: "After the Node exists, wait until it is Ready.")
    var waitReady = false

    @Option(help: "Seconds each unit start/restart may take (job done and active).")
    var unitTimeout: Double = 120

    @Option(help: "Seconds to wait for the Node to register (and be Ready with --wait-ready).")
    var registerTimeout: Double = 300

    @OptionGroup var imds: IMDSOptions

    func validate() throws {
        for (name, value) in [("--unit-timeout", unitTimeout), ("--register-timeout", registerTimeout)]
        where !(value > 0 && value <= 3600) {
            throw ValidationError("\(name) must be between 0 and 3600 seconds, not \(value)")
        }
    }

    func options() throws -> InitOptions {
        var options = InitOptions()
        let sources = try source.sources()
        if !sources.isEmpty { options.sources = sources }
        options.strict = source.strict
        for phase in skip {
            guard let value = InitOptions.Phase(rawValue: phase) else {
                throw Failure(NodeBootError(.input, "--skip \(phase): not a phase", hint: "use --skip config or --skip run"))
            }
            options.skip.insert(value)
        }
        if noDaemons { options.daemons = [] }
        if !daemon.isEmpty {
            var daemons = Set<Daemon>()
            for name in daemon where !name.isEmpty {
                guard let value = Daemon(rawValue: name) else {
                    throw Failure(
                        NodeBootError(.input, "--daemon \(name): not a daemon", hint: "use containerd or kubelet"))
                }
                daemons.insert(value)
            }
            options.daemons = noDaemons ? [] : daemons
        }
        guard let helper = TokenHelper(rawValue: tokenHelper) else {
            throw Failure(NodeBootError(.input, "--token-helper \(tokenHelper): use nodeboot or aws"))
        }
        options.tokenHelper = helper
        options.configCache = configCache
        if let root = source.root {
            guard root.hasPrefix("/") || !root.isEmpty else { throw Failure(NodeBootError(.input, "--root is empty")) }
            options.root = root.hasPrefix("/") ? root : FileManager.default.currentDirectoryPath + "/" + root
        }
        options.dryRun = dryRun
        options.imdsDeadline = imds.deadline
        options.registerNode = registerNode
        options.waitReady = waitReady
        options.unitTimeout = .milliseconds(Int64(unitTimeout * 1000))
        options.registerTimeout = .milliseconds(Int64(registerTimeout * 1000))
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
        print(output == .json ? report.json(total: total) : report.text(total: total, dryRun: dryRun), terminator: "")
    }
}
