import AWS
import NodeConfig
import NodeRender

/// The discover phase: the instance (IMDS, DescribeInstances), its limits, the versions and
/// CPUs on the node, and the cluster details the config leaves out (DescribeCluster, persisted);
/// or the discovery of the config cache, with no call at all.
struct DiscoverPhase {
    var paths: NodePaths
    var daemons: Set<Daemon>
    /// `--dry-run`: what DescribeCluster said is not persisted either.
    var dryRun: Bool

    struct Output: PhaseOutput {
        var discovery: Discovery
        var detail: String
    }

    /// `session` and `environment` already carry `spec.instance.environment.default` (a proxy).
    func run(_ config: NodeConfig, cached: Discovery?, session: AWSSession, environment: [String: String])
        async throws(NodeBootError) -> Output
    {
        if let cached {
            return Output(discovery: cached, detail: "from the config cache (no IMDS or EC2 call)")
        }
        var discoverer = Discoverer(paths: paths, session: session, environment: environment)
        discoverer.persist = !dryRun
        let discovery = try await discoverer.discover(config, daemons: daemons)
        return Output(discovery: discovery, detail: "instance \(discovery.instance.id) (\(discovery.instance.type))")
    }
}
