import Bootstrap
import FoundationEssentials
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// `nodeboot bootstrap-sh`: what `/etc/eks/bootstrap.sh` (compat/bootstrap.sh) runs. It takes
/// bootstrap.sh's own command line, which the table parser cannot (values that start with `-`,
/// a positional cluster name), so `main` hands it the raw arguments.
enum BootstrapSh {
    static let command = Command(
        "bootstrap-sh",
        abstract: "AL2's /etc/eks/bootstrap.sh: its flags as a NodeConfig in /etc/eks/nodeadm.d, then nodeboot init.")

    static func run(_ arguments: [String]) async throws {
        let flags = BootstrapScript.parse(arguments)
        if flags.help {
            StandardStreams.output(BootstrapScript.usage)
            return
        }
        if let root = flags.root, root.isEmpty || !root.hasPrefix("/") {
            throw Failure(
                NodeBootError(.input, "bootstrap.sh --root '\(root)': not an absolute directory", hint: "give /path/to/root"))
        }
        if flags.root == nil && !flags.dryRun && getuid() != 0 {
            throw Failure(
                NodeBootError(.io, "bootstrap.sh must run as root", hint: "use sudo, or --dry-run to see the NodeConfig"))
        }
        let paths = NodePaths(root: flags.root)
        let environment = ProcessInfo.processInfo.environment
        let translation: BootstrapScript.Translation
        do {
            translation = try await BootstrapScript.prepare(flags, environment: environment, imdsDeadline: .seconds(60))
        } catch {
            throw Failure(error)
        }
        let initArguments = BootstrapScript.initArguments(flags, paths: paths)
        if flags.dryRun {
            var text = "# \(paths.node(BootstrapScript.dropInPath)) (dry run: not written)\n" + translation.document
            for note in translation.notes { text += "# note: \(note)\n" }
            text += "# then: nodeboot \(initArguments.joined(separator: " "))\n"
            StandardStreams.output(text)
            return
        }
        let written: String
        do {
            written = try BootstrapScript.write(translation, paths: paths)
        } catch {
            throw Failure(error)
        }
        for note in translation.notes { StandardStreams.error("note: \(note)\n") }
        StandardStreams.error("bootstrap.sh: wrote \(written); running nodeboot \(initArguments.joined(separator: " "))\n")
        guard case .run(let command, let parsed) = try NodeBoot.commands.parse(initArguments) else { return }
        try await NodeBoot.run(command, parsed)
        if flags.root == nil, let warning = await BootstrapScript.enableKubelet(environment: environment) {
            StandardStreams.error("warning: \(warning)\n")
        }
    }
}
