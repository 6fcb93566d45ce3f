import Logging
import NodeConfig
import NodeRender
import Support

/// The apply phase: the changed files and links (aws-iam-authenticator to nodeboot; the CNI
/// plugins in /opt/cni/bin) written all or nothing in one batch (unchanged ones untouched), then
/// the config cache; or,
/// with `--dry-run`, the plan with diffs and nothing written; or nothing with `--skip config`
/// (unless the cached config changed).
struct ApplyPhase {
    enum Mode { case write, dryRun, skip }

    var paths: NodePaths
    var mode: Mode
    /// Symbolic links to keep: the token helper (`/usr/local/bin/aws-iam-authenticator` → this
    /// nodeboot) when the kubeconfig calls nodeboot; the CNI plugins with ipamd (`NodeLinks`).
    var links: [NodeLinks.Link] = []
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
            for link in links { changes.append(try applier.ensureLink(link.path, target: link.target, dryRun: true)) }
            return Output(changes: changes, detail: "dry run: nothing written")
        case .write:
            let changes = try applier.apply(files, links: links.map { (path: $0.path, target: $0.target) })
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

/// The links `init` keeps on the node.
enum NodeLinks {
    struct Link: Equatable {
        var path: String
        var target: String
    }

    /// Where containerd runs CNI plugins from (its CRI plugin's default `bin_dir`).
    static let cniBin = "/opt/cni/bin"
    /// Debian's reference plugins (containernetworking-plugins).
    static let debianCNI = "/usr/lib/cni"

    /// With ipamd: `/opt/cni/bin/nodeboot-cni` → the `nodeboot-cni` beside this nodeboot, and
    /// Debian's `loopback` and `portmap` (the conflist chains portmap; containerd runs loopback
    /// for every sandbox) where the bin dir has none of its own: an image's own plugins win.
    static func links(
        paths: NodePaths, daemons: Set<Daemon>, tokenHelper: String?, nodebootPath: String
    ) -> [Link] {
        var links: [Link] = []
        if let tokenHelper { links.append(Link(path: NodePaths.authenticatorLink, target: tokenHelper)) }
        guard daemons.contains(.ipamd) else { return links }
        let directory = nodebootPath.lastIndex(of: "/").map { String(nodebootPath[..<$0]) } ?? "/usr/bin"
        links.append(Link(path: cniBin + "/nodeboot-cni", target: directory + "/nodeboot-cni"))
        for plugin in ["loopback", "portmap"] {
            let path = cniBin + "/" + plugin
            let target = debianCNI + "/" + plugin
            let ours = NodeFileSystem.linkTarget(paths.node(path)) == target
            let other = !ours && (NodeFileSystem.exists(paths.node(path)) || NodeFileSystem.linkTarget(paths.node(path)) != nil)
            if !other && NodeFileSystem.exists(paths.node(target)) { links.append(Link(path: path, target: target)) }
        }
        return links
    }
}
