import AWS
public import NodeConfig
import NodeRender
public import Support

/// `nodeboot config check` and `config dump`: init's source (decode included) and validate
/// phases, offline unless a source is `imds://user-data`, and nothing else.
public struct ConfigCheck: Sendable {
    public var sources: [ConfigSource]
    public var strict: Bool
    public var environment: [String: String]
    /// How long `imds://user-data` is retried (`--imds-timeout`).
    public var imdsDeadline: Duration

    public init(
        sources: [ConfigSource], strict: Bool, environment: [String: String],
        imdsDeadline: Duration = RetryPolicy.imds.deadline
    ) {
        self.sources = sources
        self.strict = strict
        self.environment = environment
        self.imdsDeadline = imdsDeadline
    }

    public struct Result: Sendable {
        public var located: LocatedConfig
        /// `warning: …` and `note: …` lines for stderr.
        public var messages: [String]
    }

    public enum Format: String, Sendable { case json, yaml }

    public func run() async throws(NodeBootError) -> Result {
        let sessions = Sessions()
        let imds = try sessions.open(environment, imdsDeadline: imdsDeadline).imds
        let sourced: SourcePhase.Output
        do {
            sourced = try await SourcePhase(sources: sources, strict: strict, configCache: nil, imds: imds).run()
        } catch {
            await sessions.shutdown()
            throw error
        }
        await sessions.shutdown()
        let validated = try ValidatePhase(strict: strict).run(sourced.located)
        var messages = (sourced.warnings + validated.warnings).map { "warning: \($0)" } + sourced.notes.map { "note: \($0)" }
        if !validated.missingClusterFields.isEmpty {
            messages.append(
                "note: spec.cluster.\(validated.missingClusterFields.joined(separator: ", ")) not given: init reads them with one DescribeCluster"
            )
        }
        return Result(located: validated.located, messages: messages)
    }

    /// The merged NodeConfig as nodeadm's config cache writes its spec, in JSON or YAML.
    public static func dump(_ located: LocatedConfig, format: Format) -> String {
        let json = JSONText.object([
            ("apiVersion", .string(NodeConfig.apiVersion)), ("kind", .string(NodeConfig.kind)),
            ("spec", ConfigCache.specJSON(located.config.spec)),
        ])
        return format == .json ? json.rendered(indent: 2) : json.yaml()
    }
}
