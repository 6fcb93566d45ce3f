import AWS
import NodeConfig
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// What `nodeboot bootstrap-sh` does around the pure translation: reads `--containerd-config-file`
/// and, for bootstrap.sh's DNS fallback, the VPC's CIDR blocks from IMDS; checks the document as
/// `nodeboot config check` would; writes it atomically.
extension BootstrapScript {
    /// The translation of `flags`, checked; nothing is written.
    public static func prepare(_ flags: Flags, environment: [String: String], imdsDeadline: Duration)
        async throws(NodeBootError) -> Translation
    {
        var containerdConfig: String?
        if let file = flags.containerdConfigFile {
            let bytes: [UInt8]?
            do {
                bytes = try NodeFileSystem.read(file, limit: 1 << 20)
            } catch {
                throw NodeBootError(
                    .input, "bootstrap.sh --containerd-config-file \(file): cannot read it: \(error)",
                    hint: "give a readable TOML file")
            }
            guard let bytes else {
                throw NodeBootError(
                    .input, "bootstrap.sh --containerd-config-file \(file): no such file",
                    hint: "give the path of a containerd TOML file that exists when the user data runs")
            }
            containerdConfig = String(decoding: bytes, as: UTF8.self)
        }
        var vpcCIDRs: [String]?
        if needsVPCCIDRs(flags) {
            vpcCIDRs = try await Self.vpcCIDRs(environment: environment, imdsDeadline: imdsDeadline)
        }
        let translation = try translate(flags, containerdConfig: containerdConfig, vpcCIDRs: vpcCIDRs)
        try await check(translation, environment: environment)
        return translation
    }

    /// The primary interface's `vpc-ipv4-cidr-blocks` (bootstrap.sh read the same path).
    static func vpcCIDRs(environment: [String: String], imdsDeadline: Duration) async throws(NodeBootError) -> [String] {
        let sessions = Sessions()
        let imds = try sessions.open(environment, imdsDeadline: imdsDeadline).imds
        do {
            let mac = try await imds.require("/latest/meta-data/mac")
            let blocks = try await imds.require("/latest/meta-data/network/interfaces/macs/\(mac)/vpc-ipv4-cidr-blocks")
            await sessions.shutdown()
            return blocks.split(whereSeparator: \.isNewline).map(String.init)
        } catch {
            await sessions.shutdown()
            throw NodeBootError(
                .aws, "bootstrap.sh: cannot read the VPC's CIDR blocks from IMDS for the default service CIDR: \(error)",
                hint: "give --service-ipv4-cidr (or --dns-cluster-ip and --service-ipv4-cidr) so no IMDS call is needed",
                cause: error)
        }
    }

    /// The document alone through init's decode and validate phases (offline): a bad CIDR,
    /// endpoint, CA, TOML or kubelet flag is refused before anything is written.
    static func check(_ translation: Translation, environment: [String: String]) async throws(NodeBootError) {
        let staged = "/tmp/.nodeboot-bootstrap-sh-\(getpid()).yaml"
        do {
            try NodeFileSystem.writeAtomically(staged, Array(translation.document.utf8), mode: 0o600)
        } catch {
            throw NodeBootError(.io, "cannot stage the translated NodeConfig: \(error)", cause: error)
        }
        defer { try? NodeFileSystem.remove(staged) }  // a leftover in /tmp is harmless
        do {
            _ = try await ConfigCheck(sources: [.file(staged)], strict: false, environment: environment).run()
        } catch {
            let message = error.message.replacing(staged, with: "the NodeConfig translated from bootstrap.sh's flags")
            throw NodeBootError(
                .input, message,
                hint: (error.hint.map { $0 + "; " } ?? "")
                    + "nothing was written; fix the bootstrap.sh flag that gave this field",
                cause: error)
        }
    }

    /// Writes the document to `dropInPath` under `paths` (left untouched when it holds these bytes
    /// already: a repeated run changes nothing); returns the host path.
    public static func write(_ translation: Translation, paths: NodePaths) throws(NodeBootError) -> String {
        let path = paths.node(dropInPath)
        let bytes = Array(translation.document.utf8)
        // An unreadable drop-in is simply written again.
        if (try? NodeFileSystem.read(path)) == .some(bytes) && NodeFileSystem.status(path)?.mode == 0o600 { return path }
        do {
            try NodeFileSystem.makeDirectories(paths.node("/etc/eks/nodeadm.d"))
            try NodeFileSystem.writeAtomically(path, bytes, mode: 0o600)
        } catch {
            throw NodeBootError(.io, "cannot write \(path): \(error)", hint: "check free space and permissions", cause: error)
        }
        return path
    }

    /// After its init succeeded on a live node: `systemctl enable kubelet.service`, as AL2's bootstrap.sh did, so a
    /// reboot starts the kubelet with the files written. nodeboot images ship the kubelet disabled (the run phase
    /// starts it, after the user data's scripts), and the boot units skip a node that bootstrap.sh configured. A
    /// failure is returned as a warning: the node has joined, only its reboots are at stake.
    public static func enableKubelet(environment: [String: String]) async -> String? {
        guard let systemctl = ExternalCommand.find("systemctl", environment: environment) else {
            return "systemctl not found: kubelet.service not enabled (a reboot will not start the kubelet)"
        }
        do {
            let result = try await ExternalCommand.run(
                systemctl, ["enable", "--quiet", "kubelet.service"], environment: environment, timeout: .seconds(30))
            if result.status == 0 { return nil }
            let said = result.combined.split(whereSeparator: \.isNewline).joined(separator: " ")
            return "systemctl enable kubelet.service exited \(result.status): \(said) (a reboot will not start the kubelet)"
        } catch {
            return "systemctl enable kubelet.service: \(error) (a reboot will not start the kubelet)"
        }
    }

    /// The `nodeboot` arguments of the init that follows (the shipped unit's config sources).
    public static func initArguments(_ flags: Flags, paths: NodePaths) -> [String] {
        var arguments = [
            "init", "--config-source", "imds://user-data", "--config-source", "file://\(paths.node("/etc/eks/nodeadm.d"))/",
        ]
        if let root = flags.root { arguments += ["--root", root] }
        return arguments
    }
}
