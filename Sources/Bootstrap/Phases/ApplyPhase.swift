import Logging
import NodeConfig
import NodeRender
import Support

/// The apply phase: the changed files written atomically (unchanged ones untouched), the
/// aws-iam-authenticator link to nodeboot, the config cache; or, with `--dry-run`, the plan with
/// diffs and nothing written; or nothing with `--skip config` (unless the cached config changed).
struct ApplyPhase {
    enum Mode { case write, dryRun, skip }

    var paths: NodePaths
    var mode: Mode
    /// The token helper link (`/usr/local/bin/aws-iam-authenticator` → this nodeboot), when the
    /// kubeconfig calls nodeboot.
    var helperLink: String?
    /// `--config-cache`: written with the config and discovery of this run.
    var configCache: String?
    var logger: Logger

    struct Output: PhaseOutput {
        var changes: [FileChange]
        var warnings: [String] = []
        var detail: String
    }

    func run(_ files: [NodeFile], config: NodeConfig, discovery: Discovery) throws(NodeBootError) -> Output {
        let applier = Applier(paths: paths)
        switch mode {
        case .skip:
            return Output(changes: [], detail: "skipped (--skip config)")
        case .dryRun:
            var changes = try applier.plan(files, withDiffs: true)
            if let helperLink {
                changes.append(try applier.ensureLink(NodePaths.authenticatorLink, target: helperLink, dryRun: true))
            }
            return Output(changes: changes, detail: "dry run: nothing written")
        case .write:
            var changes = try applier.apply(files)
            if let helperLink {
                changes.append(try applier.ensureLink(NodePaths.authenticatorLink, target: helperLink, dryRun: false))
            }
            var warnings: [String] = []
            if let path = configCache {
                do {
                    let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
                    try NodeFileSystem.makeDirectories(directory)
                    try NodeFileSystem.writeAtomically(
                        path, ConfigCache(config: config, status: discovery).encoded(), mode: 0o600)
                } catch {
                    warnings.append("could not write the config cache \(path): \(error)")
                }
            }
            for change in changes where change.action != .unchanged {
                logger.info(
                    "\(change.action.rawValue) \(change.path) (\(String(change.mode, radix: 8)), \(change.size) bytes)",
                    metadata: ["phase": "apply", "file": "\(change.path)"])
            }
            let written = changes.filter { $0.action != .unchanged }.count
            return Output(
                changes: changes, warnings: warnings, detail: "\(written) written, \(changes.count - written) unchanged")
        }
    }
}
