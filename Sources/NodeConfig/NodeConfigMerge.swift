import TOML

extension NodeConfig {
    /// nodeadm's merge of a later document over this one (`internal/api/merge.go`):
    /// strings and lists replace only when the later value is non-empty, `enableOutpost: false`
    /// does not clear an earlier `true`, kubelet flags are appended, inline documents are
    /// deep-merged (lists replaced), feature gates and environment merge per key, and containerd
    /// TOML is deep-merged and re-written in canonical form (or taken verbatim when only one
    /// side has any).
    public func merged(with later: NodeConfig) throws(ConfigDiagnostic) -> NodeConfig {
        var result = self
        func take(_ keyPath: WritableKeyPath<NodeConfig, String>) {
            if !later[keyPath: keyPath].isEmpty { result[keyPath: keyPath] = later[keyPath: keyPath] }
        }
        func take(_ keyPath: WritableKeyPath<NodeConfig, [String]>) {
            if !later[keyPath: keyPath].isEmpty { result[keyPath: keyPath] = later[keyPath: keyPath] }
        }
        func take(_ keyPath: WritableKeyPath<NodeConfig, [NodeConfig.Volume]>) {
            if !later[keyPath: keyPath].isEmpty { result[keyPath: keyPath] = later[keyPath: keyPath] }
        }
        func take(_ keyPath: WritableKeyPath<NodeConfig, ConfigValue?>) {
            guard let patch = later[keyPath: keyPath] else { return }
            result[keyPath: keyPath] = result[keyPath: keyPath].map { $0.merged(with: patch) } ?? patch
        }
        take(\.spec.cluster.name)
        take(\.spec.cluster.apiServerEndpoint)
        take(\.spec.cluster.certificateAuthority)
        take(\.spec.cluster.cidr)
        take(\.spec.cluster.id)
        if let outpost = later.spec.cluster.enableOutpost, outpost || result.spec.cluster.enableOutpost == nil {
            result.spec.cluster.enableOutpost = outpost
        }
        take(\.spec.containerd.baseRuntimeSpec)
        take(\.spec.instance.localStorage.strategy)
        take(\.spec.instance.localStorage.mountPath)
        take(\.spec.instance.localStorage.disabledMounts)
        take(\.spec.instance.storage.volumes)
        take(\.spec.instance.network.nameservers)
        take(\.spec.instance.network.domains)
        for (unit, variables) in later.spec.instance.environment {
            result.spec.instance.environment[unit, default: [:]].merge(variables) { _, new in new }
        }
        take(\.spec.kubelet.config)
        result.spec.kubelet.flags += later.spec.kubelet.flags
        take(\.spec.kubelet.maxPodsExpression)
        result.spec.featureGates.merge(later.spec.featureGates) { _, new in new }
        result.spec.containerd.config = try Self.mergeTOML(spec.containerd.config, later.spec.containerd.config)
        return result
    }

    static func mergeTOML(_ base: String, _ patch: String) throws(ConfigDiagnostic) -> String {
        if patch.isEmpty { return base }
        if base.isEmpty { return patch }
        func parse(_ text: String) throws(ConfigDiagnostic) -> TOMLTable {
            do {
                return try TOML.parse(text)
            } catch {
                throw ConfigDiagnostic(
                    severity: .error, origin: DocumentOrigin(source: "config"), line: error.line,
                    field: "spec.containerd.config", message: "not valid TOML: \(error.message)",
                    hint: "the value is a containerd config.toml fragment")
            }
        }
        return TOML.canonical(try parse(base).merged(with: try parse(patch)))
    }
}
