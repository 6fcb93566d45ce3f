import AWS
import NodeConfig

/// The source phase (decoding included): the config sources read, decoded (base64, gzip, MIME,
/// YAML/JSON) and merged into one located NodeConfig; with `--config-cache`, the cached config
/// and discovery when the sources give the same spec (or none).
struct SourcePhase {
    var sources: [ConfigSource]
    var strict: Bool
    /// `--config-cache`: nodeadm's semantics (reuse when equal, fall back when the sources are empty).
    var configCache: String?
    /// Reads `imds://user-data`.
    var imds: IMDSClient
    /// `--defer-to-script`: no NodeConfig anywhere and user data that cloud-init runs (a shell script,
    /// cloud-config) is not an error but nothing to do: that script configures the node.
    var deferToScript = false

    struct Output: PhaseOutput {
        var located: LocatedConfig
        /// The cached discovery to reuse (no IMDS or EC2 call), when the cache applies: the
        /// config came from the cache or is equal to it.
        var cachedDiscovery: Discovery?
        /// The sources' spec differs from the cached one: the config phase runs even with `--skip config`.
        var changedSinceCache: Bool
        /// The cache the config differs from (when `changedSinceCache`): what the config phase rendered from.
        var previousCache: ConfigCache? = nil
        /// The cache's discovery when the config differs from it only in fields discovery does not read
        /// (`sameDiscoveryInputs`): the run unit after a NodeConfig dropped into nodeadm.d for the kubelet or
        /// containerd discovers nothing again; NodeInit uses it with `--skip config` only.
        var unchangedDiscovery: Discovery? = nil
        var warnings: [String]
        var notes: [String]
        var detail: String
        /// Why init does nothing (`--defer-to-script` and script user data); nil otherwise.
        var deferred: String? = nil
    }

    func run() async throws(NodeBootError) -> Output {
        var warnings: [String] = []
        let cache =
            configCache.map { path -> ConfigCache? in
                let (cache, problem) = ConfigCache.load(path)
                if let problem { warnings.append("config cache \(path) ignored: \(problem)") }
                return cache
            } ?? nil
        let loaded = try await ConfigChain(sources: sources, imds: imds).load()
        var notes = loaded.notes
        warnings += try Self.warnings(loaded.diagnostics, strict: strict)
        let detail =
            "\(loaded.config?.documents.count ?? 0) document(s) from \(sources.map(\.description).joined(separator: ", "))"
        if let provided = loaded.config {
            let equal = cache.map { $0.config == provided.config } ?? false
            return Output(
                located: provided, cachedDiscovery: equal ? cache?.status : nil, changedSinceCache: cache != nil && !equal,
                previousCache: equal ? nil : cache,
                unchangedDiscovery: cache.flatMap {
                    !equal && Self.sameDiscoveryInputs($0.config, provided.config) ? $0.status : nil
                }, warnings: warnings, notes: notes, detail: detail)
        }
        if cache == nil, deferToScript, let kind = loaded.cloudInitUserData {
            let why =
                "no NodeConfig: the user data is \(kind), which cloud-init runs later (AL2-style user data: its"
                + " /etc/eks/bootstrap.sh configures the node); nothing to do"
            return Output(
                located: LocatedConfig(config: NodeConfig()), cachedDiscovery: nil, changedSinceCache: false,
                warnings: warnings, notes: notes, detail: why, deferred: why)
        }
        guard let cache else {
            let why = loaded.notes.isEmpty ? "" : " (\(loaded.notes.joined(separator: "; ")))"
            throw NodeBootError(
                .input, "no NodeConfig in any config source\(why)",
                hint: "give a NodeConfig (apiVersion: node.eks.aws/v1alpha1) in the user data, or with -c file://PATH")
        }
        notes.append("no NodeConfig in the config sources: using the config cache \(configCache ?? "")")
        return Output(
            located: LocatedConfig(config: cache.config, documents: [DocumentOrigin(source: "config cache")]),
            cachedDiscovery: cache.status, changedSinceCache: false, warnings: warnings, notes: notes,
            detail: detail)
    }

    /// Whether discovery reads the same from both configs: the cluster (DescribeCluster, the IP family), the
    /// feature gates (InstanceIdNodeName, FastImagePull) and the default environment (a proxy for the AWS calls).
    /// `Discoverer.discover` reads nothing else of the config.
    static func sameDiscoveryInputs(_ a: NodeConfig, _ b: NodeConfig) -> Bool {
        a.spec.cluster == b.spec.cluster && a.spec.featureGates == b.spec.featureGates
            && a.spec.instance.environment["default"] == b.spec.instance.environment["default"]
    }

    /// The warnings among `diagnostics`; bad input naming every error (every warning too when
    /// `strict`) when there is one.
    static func warnings(_ diagnostics: [ConfigDiagnostic], strict: Bool) throws(NodeBootError) -> [String] {
        if let failure = ConfigChain.failure(diagnostics, strict: strict) { throw failure }
        return diagnostics.filter { $0.severity == .warning }.map { "\($0)" }
    }
}
