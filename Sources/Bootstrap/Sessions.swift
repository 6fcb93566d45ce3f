public import AWS
import Support
import Synchronization

/// The AWS sessions a command opened, one per environment (init has the agent's own and, with
/// `spec.instance.environment.default`, one with the NodeConfig's proxy settings), shut down
/// together when the command ends.
public final class Sessions: Sendable {
    private let open = Mutex<[(environment: [String: String], session: AWSSession)]>([])

    public init() {}

    /// The session for `environment`: the one opened before for the same environment, else a
    /// new one whose IMDS calls retry for `imdsDeadline`. A malformed endpoint variable is bad input.
    public func open(_ environment: [String: String], imdsDeadline: Duration) throws(NodeBootError) -> AWSSession {
        if let existing = open.withLock({ $0.first { $0.environment == environment }?.session }) { return existing }
        var policy = RetryPolicy.imds
        policy.deadline = imdsDeadline
        let session: AWSSession
        do {
            session = try AWSSession(environment: environment, imdsPolicy: policy)
        } catch {
            throw NodeBootError(.input, "\(error)", hint: error.hint)
        }
        open.withLock { $0.append((environment, session)) }
        return session
    }

    public func shutdown() async {
        for session in open.withLock({ $0.map(\.session) }) { await session.shutdown() }
    }
}
