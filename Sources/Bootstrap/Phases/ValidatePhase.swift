import NodeConfig
import NodeRender

/// The validate phase (the config alone, before discovery): every problem at once, bad input
/// when there is an error (or any warning with `--strict`); the maxPods expression compiled.
/// `config check` and `config dump` run exactly this too.
struct ValidatePhase: Sendable {
    var strict: Bool

    init(strict: Bool) { self.strict = strict }

    struct Output: PhaseOutput {
        var located: LocatedConfig
        /// `spec.kubelet.maxPodsExpression`, compiled (nil when not given).
        var maxPodsExpression: MaxPodsExpression?
        var warnings: [String]
        /// The cluster fields the config leaves to DescribeCluster.
        var missingClusterFields: [String]

        var detail: String { warnings.isEmpty ? "ok" : "\(warnings.count) warning(s)" }
    }

    func run(_ located: LocatedConfig) throws(NodeBootError) -> Output {
        let validation = NodeConfigValidation.validate(located)
        let warnings = try SourcePhase.warnings(validation.diagnostics, strict: strict)
        var expression: MaxPodsExpression?
        let source = located.config.spec.kubelet.maxPodsExpression
        if !source.isEmpty {
            do {
                expression = try MaxPodsExpression(source)
            } catch {
                throw located.inputError(
                    "spec.kubelet.maxPodsExpression", "\(error)",
                    hint: "integers, default_enis, ips_per_eni, max_pods, + - * / %, comparisons and ? : are supported")
            }
        }
        return Output(
            located: located, maxPodsExpression: expression, warnings: warnings,
            missingClusterFields: validation.missingClusterFields)
    }
}

extension LocatedConfig {
    /// Bad input at the place `field` came from (source, MIME part, line), with the fix.
    func inputError(_ field: String, _ message: String, hint: String?) -> NodeBootError {
        let place = location(of: field)
        return NodeBootError(
            .input,
            "\(ConfigDiagnostic(severity: .error, origin: place.origin, line: place.line, field: field, message: message, hint: hint))"
        )
    }
}
