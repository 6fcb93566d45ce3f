import NodeConfig
import NodeRender
import Support

/// The render phase: the render context decided from the config and the discovery (cluster
/// details filled in and checked like user input, max pods, versions, the outpost's API server
/// addresses), then every node file rendered, each naming the units that read it. Writes nothing.
struct RenderPhase {
    var paths: NodePaths
    var daemons: Set<Daemon>
    var tokenHelper: TokenHelper
    /// The nodeboot binary the kubeconfig's exec block runs.
    var nodebootPath: String
    /// The agent's environment (`ECR_CREDENTIAL_PROVIDER_BIN_PATH`).
    var environment: [String: String]

    struct Output: PhaseOutput {
        var context: RenderContext
        var files: [NodeFile]
        var warnings: [String]
        var detail: String { "\(files.count) files" }
    }

    func run(_ validated: ValidatePhase.Output, _ discovery: Discovery) async throws(NodeBootError) -> Output {
        let located = validated.located
        var warnings: [String] = []
        var context = try await renderContext(
            located, discovery, expression: validated.maxPodsExpression, warnings: &warnings)
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
        if let reason = SOCISnapshotter.decision(context).reason { warnings.append(reason) }
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
            throw located.inputError(error.field, error.message, hint: error.hint)
        }
        return Output(context: context, files: files, warnings: warnings)
    }

    func renderContext(
        _ located: LocatedConfig, _ discovery: Discovery, expression: MaxPodsExpression?, warnings: inout [String]
    ) async throws(NodeBootError) -> RenderContext {
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
                    throw located.inputError(
                        "spec.kubelet.maxPodsExpression", "\(error)",
                        hint:
                            "this node has default_enis=\(limits.defaultMaxENIs), ips_per_eni=\(limits.ipv4AddressesPerInterface), max_pods=\(maxPods); make the expression give 1 to 2147483646 for them (guard divisors: d == 0 ? max_pods : max_pods / d)"
                    )
                }
            } else {
                warnings.append(
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
        context.onlineMemoryBytes = discovery.onlineMemoryBytes ?? 0
        context.networkLimits = discovery.networkLimits.map {
            ENILimits(maxENIs: $0.defaultMaxENIs, ipv4PerENI: $0.ipv4AddressesPerInterface, source: $0.source)
        }
        context.tokenHelper = tokenHelper
        context.nodebootPath = nodebootPath
        if context.isOutpost, let host = NodeRenderer.apiServerHost(config.spec.cluster.apiServerEndpoint) {
            context.apiServerAddresses = await HostResolver.addresses(host)
            if context.apiServerAddresses.isEmpty {
                throw NodeBootError(
                    .io, "cannot resolve the outpost API server host \(host)",
                    hint: "the node must resolve the local cluster endpoint (DNS in the VPC)")
            }
            // An unreadable /etc/hosts is rendered as absent: the lines are appended to nothing.
            context.currentHosts = try? NodeFileSystem.read(paths.node(HostsFile.path))
        }
        return context
    }
}
