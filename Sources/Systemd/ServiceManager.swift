/// What systemd says about a unit (org.freedesktop.systemd1.Unit properties).
public struct UnitState: Sendable, Equatable, Codable {
    /// `loaded`, `not-found`, `bad-setting`, `error`, `masked`.
    public var loadState: String
    /// `active`, `reloading`, `inactive`, `failed`, `activating`, `deactivating`.
    public var activeState: String
    /// `running`, `exited`, `dead`, `auto-restart`, …
    public var subState: String
    /// The service's `Result` (`success`, `exit-code`, `signal`, `timeout`, …; empty for non-services).
    public var result: String

    public init(loadState: String, activeState: String, subState: String, result: String = "") {
        self.loadState = loadState
        self.activeState = activeState
        self.subState = subState
        self.result = result
    }

    public var isActive: Bool { activeState == "active" || activeState == "reloading" }
}

/// A job the run phase asks systemd for.
public enum UnitOperation: String, Sendable, Codable, Equatable {
    case start, restart, stop
}

/// A failure of a unit or of the bus, naming the unit and carrying what the journal said.
public struct SystemdError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        /// No system bus / systemd is not PID 1.
        case unavailable
        /// A D-Bus call failed (the message names it).
        case bus
        /// The unit is not known to systemd.
        case notFound
        /// The unit's job failed or the unit ended `failed`.
        case unitFailed
        /// The job or the wait for `active` took longer than allowed.
        case timeout
        /// The task waiting for systemd was cancelled (nodeboot is being stopped).
        case cancelled
    }

    public var code: Code
    public var unit: String?
    public var message: String
    /// The journal lines of the failed run (already read when the error is made), oldest first.
    public var journal: [String]

    public init(_ code: Code, unit: String? = nil, _ message: String, journal: [String] = []) {
        self.code = code
        self.unit = unit
        self.message = message
        self.journal = journal
    }

    public var description: String { message }
}

/// The service manager the run phase talks to: systemd over sd-bus on a node
/// (`SystemdServiceManager`), a recording fake in tests. Every wait is bounded by the timeout it
/// is given, sleeps without holding a thread, and ends early when the task is cancelled.
public protocol ServiceManager: Sendable {
    /// `systemctl daemon-reload`: re-reads unit files and drop-ins; returns when systemd is done.
    func daemonReload() async throws(SystemdError)

    /// The unit's current state (loads it if needed; `loadState` `not-found` when there is no such unit).
    func state(of unit: String) async throws(SystemdError) -> UnitState

    /// Queues `operation` for `unit` in mode `replace`, waits until the job finished and the unit
    /// is `active` (`inactive` for stop), all within `timeout`. `inactive` after a start counts
    /// only for a `Type=oneshot` service that ran and exited with success. A failed job or unit,
    /// or a start skipped because a condition failed, throws `.unitFailed` with the run's last
    /// journal lines; running out of time throws `.timeout`.
    func perform(_ operation: UnitOperation, unit: String, timeout: Duration) async throws(SystemdError) -> UnitState

    /// Whether `unit` stopped running since it was started: nil while it is active or
    /// activating normally (and when its state cannot be read: that is no evidence); otherwise a
    /// `.unitFailed` error with its state and the journal lines of its last run. For watching a
    /// `Type=simple` daemon (the kubelet), which systemd calls active as soon as it is forked.
    func failure(of unit: String) async -> SystemdError?
}
