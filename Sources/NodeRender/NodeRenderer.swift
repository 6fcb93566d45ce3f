import NodeConfig

/// Every file the config phase writes, from a fully decided context. Pure: no I/O.
public enum NodeRenderer {
    public static func render(_ context: RenderContext) throws(RenderError) -> [NodeFile] {
        let spec = context.config.spec
        var files = SystemdEnvironment.files(spec.instance.environment)
        if let resolved = ResolvedConfig.render(spec.instance.network) {
            files.append(NodeFile(ResolvedConfig.path, resolved, units: [.resolved]))
        }
        if context.daemons.contains(.containerd) {
            files.append(NodeFile(ContainerdConfig.path, try ContainerdConfig.render(context), units: [.containerd]))
            files.append(NodeFile(BaseRuntimeSpec.path, try BaseRuntimeSpec.render(context), units: [.containerd]))
            files += SOCISnapshotter.files(context)
        }
        if context.daemons.contains(.ipamd) {
            files.append(NodeFile(IPAMDSpec.path, try IPAMDSpec.render(context), units: [.ipamd]))
        }
        if context.daemons.contains(.kubelet) {
            files.append(NodeFile(KubeletConfig.configPath, KubeletConfig.config(context), units: [.kubelet]))
            if let dropIn = KubeletConfig.dropIn(context) {
                files.append(NodeFile(KubeletConfig.dropInPath, dropIn, units: [.kubelet]))
            }
            let kubeconfigPath = context.isOutpost ? KubeletConfig.bootstrapKubeconfigPath : KubeletConfig.kubeconfigPath
            files.append(NodeFile(kubeconfigPath, KubeletConfig.kubeconfig(context), mode: 0o600, units: [.kubelet]))
            files.append(
                NodeFile(
                    KubeletConfig.credentialProviderConfigPath, KubeletConfig.credentialProviderConfig(context),
                    units: [.kubelet]))
            guard let ca = context.config.spec.cluster.certificateAuthorityBytes else {
                throw RenderError(field: "spec.cluster.certificateAuthority", message: "is missing or not base64")
            }
            files.append(NodeFile(KubeletConfig.caPath, bytes: ca, units: [.kubelet]))
            if context.isOutpost, let host = apiServerHost(spec.cluster.apiServerEndpoint),
                let hosts = HostsFile.appending(addresses: context.apiServerAddresses, host: host, to: context.currentHosts)
            {
                // Name resolution reads it: no unit restarts for it.
                files.append(NodeFile(HostsFile.path, bytes: hosts))
            }
            files.append(NodeFile(KubeletConfig.environmentPath, KubeletConfig.environment(context), units: [.kubelet]))
        }
        return files
    }

    /// The host of an http(s) URL (brackets of an IPv6 literal removed).
    public static func apiServerHost(_ endpoint: String) -> String? {
        guard let schemeEnd = endpoint.firstRange(of: "://") else { return nil }
        let authority = endpoint[schemeEnd.upperBound...].prefix { $0 != "/" && $0 != "?" && $0 != "#" }
        if authority.hasPrefix("[") {
            return authority.firstIndex(of: "]").map { String(authority[authority.index(after: authority.startIndex)..<$0]) }
        }
        let host = authority.split(separator: ":", maxSplits: 1).first.map(String.init) ?? ""
        return host.isEmpty ? nil : host
    }
}
