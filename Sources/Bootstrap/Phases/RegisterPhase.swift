import Logging
import NodeRender
import Systemd

/// The register phase: the Node object as the API server has it, through the node's own
/// kubeconfig and token helper (`NodeRegistration`); with `--register-node` created or
/// reconciled, else waited for; with `--wait-ready` also Ready. While it waits it watches the
/// kubelet unit, so a kubelet that crashes ends the wait with its journal lines.
struct RegisterPhase {
    var root: String?
    /// The agent's environment with `spec.instance.environment.default` (the exec plugin's).
    var environment: [String: String]
    var registerNode: Bool
    var waitReady: Bool
    var timeout: Duration
    var unitTimeout: Duration
    var logger: Logger

    struct Output: PhaseOutput {
        var node: StatusReport.Node
        var detail: String { "node \(node.name) \(node.registration.rawValue)" }
    }

    /// Why the phase does not run, when it does not: the kubelet is not among `--daemon`, or an
    /// image tree under `--root` that no kubelet registers.
    static func skipReason(daemons: Set<Daemon>, root: String?, registerNode: Bool, waitReady: Bool) -> String? {
        if !daemons.contains(.kubelet) { return "the kubelet is not among --daemon" }
        if root != nil && !registerNode && !waitReady {
            return "--root without --register-node: no kubelet of this tree registers"
        }
        return nil
    }

    func run(_ context: RenderContext, manager: (any ServiceManager)?) async throws(NodeBootError) -> Output {
        var registration = RegistrationOptions(
            root: root, environment: environment, nodeName: context.nodeName, node: DesiredNode(context: context))
        registration.register = registerNode
        registration.waitReady = waitReady
        registration.timeout = timeout
        if let manager {
            let unitTimeout = self.unitTimeout
            let kubelet = ServiceUnit.kubelet.rawValue
            registration.kubeletHealth = {
                await manager.failure(of: kubelet).map { ServiceRun.failure(kubelet, $0, timeout: unitTimeout) }
            }
        }
        let logger = self.logger
        let result = try await NodeRegistration().confirm(
            options: registration, log: { logger.notice("\($0)", metadata: ["phase": "register"]) })
        return Output(
            node: StatusReport.Node(
                name: result.nodeName, registration: result.action, ready: waitReady ? result.ready : nil,
                detail: (result.changes.isEmpty ? "" : result.changes.joined(separator: ", ") + "; ") + result.details))
    }
}
