/// The calls the unit-job state machine (`SystemdServiceManager`) makes on systemd's D-Bus API:
/// the real connection (`Bus`, sd-bus), or a recorded fake in tests, so that every decision
/// (job results, conditions, oneshots, timeouts, a closed connection) is tested without systemd.
protocol SystemdBus: AnyObject {
    /// False once the peer closed the connection (dbus-daemon restarted): open a new one.
    var isOpen: Bool { get }

    /// Returns once the bus daemon has accepted the connection (authentication and Hello).
    func waitUntilReady(deadline: ContinuousClock.Instant) throws(SystemdError)

    /// Calls a method of systemd's manager with string arguments, ignoring the reply's body
    /// (`Reload`, `RefUnit`, `UnrefUnit`, `Subscribe`).
    func callManager(_ method: String, _ arguments: [String], timeout: Duration, unit: String?) throws(SystemdError)

    /// Calls a method of systemd's manager that answers an object path (`LoadUnit`: the unit's,
    /// `StartUnit`/`RestartUnit`/`StopUnit`: the job's).
    func callManagerForPath(_ method: String, _ arguments: [String], timeout: Duration, unit: String?)
        throws(SystemdError) -> String

    /// A string property of an object (a unit's `ActiveState`, a service's `Result`).
    func property(_ name: String, interface: String, path: String, timeout: Duration, unit: String?)
        throws(SystemdError) -> String

    /// A boolean property (`ConditionResult`, `RemainAfterExit`).
    func boolProperty(_ name: String, interface: String, path: String, timeout: Duration, unit: String?)
        throws(SystemdError) -> Bool

    /// A byte-array property (`InvocationID`).
    func bytesProperty(_ name: String, interface: String, path: String, timeout: Duration, unit: String?)
        throws(SystemdError) -> [UInt8]

    /// A unit's `Conditions` or `Asserts`.
    func checksProperty(_ name: String, path: String, timeout: Duration, unit: String?) throws(SystemdError)
        -> [UnitCheck]

    /// Installs the `JobRemoved` match (confirmed before it returns) and subscribes. Idempotent.
    func subscribe(deadline: ContinuousClock.Instant) throws(SystemdError)

    /// Dispatches what has arrived and returns the `JobRemoved` signal of the job at `path`, if
    /// it came; never waits.
    func removedJob(_ path: String) throws(SystemdError) -> RemovedJob?

    /// Forgets the `JobRemoved` signals seen so far (before a job is queued).
    func forgetRemovedJobs()
}

/// A `JobRemoved` signal: the job finished with `result` (`done`, `canceled`, `timeout`,
/// `failed`, `dependency`, `skipped`, `assert`).
struct RemovedJob: Equatable, Sendable {
    var id: UInt32
    var path: String
    var unit: String
    var result: String
}
