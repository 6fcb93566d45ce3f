import Glibc
import Synchronization

/// The `ServiceManager` of a node: systemd's manager over the system bus (sd-bus), the unit's
/// journal for failures. One connection, used by one call at a time.
public final class SystemdServiceManager: ServiceManager {
    /// The limit of calls that have no timeout of their own: daemon-reload on a busy node, state reads.
    static let callTimeout: Duration = .seconds(90)
    /// How often the unit's state is read while waiting for `active`/`inactive`.
    static let pollInterval: Duration = .milliseconds(50)
    /// Journal lines carried by a `.unitFailed` or `.timeout` error.
    static let journalLines = 20

    /// The connection; nil after the peer closed it (it is opened again on the next call).
    private let connection: Mutex<Bus?>

    /// Connects to systemd over the system bus. Throws `.unavailable` where systemd is not PID 1
    /// (no system bus).
    public init() throws(SystemdError) {
        connection = Mutex(try Bus())
    }

    public func daemonReload() throws(SystemdError) {
        try withBus { bus throws(SystemdError) in
            _ = try bus.callManager("Reload", [], timeout: Self.callTimeout)
        }
    }

    public func state(of unit: String) throws(SystemdError) -> UnitState {
        try withBus { bus throws(SystemdError) in
            try Self.state(of: unit, bus: bus, deadline: .now + Self.callTimeout)
        }
    }

    public func perform(_ operation: UnitOperation, unit: String, timeout: Duration) throws(SystemdError) -> UnitState {
        let deadline = ContinuousClock.now + timeout
        do {
            return try withBus { bus throws(SystemdError) in
                try Self.perform(operation, unit: unit, timeout: timeout, deadline: deadline, bus: bus)
            }
        } catch {
            guard error.code == .unitFailed || error.code == .timeout else { throw error }
            // journald takes the unit's last output from its stdout stream asynchronously: give it a moment.
            Self.sleep(.milliseconds(200))
            var failure = error
            failure.journal = journal(unit: unit, lines: Self.journalLines)
            throw failure
        }
    }

    public func journal(unit: String, lines: Int) -> [String] {
        // The journal is context for an error already being reported: when it cannot be read
        // (no journald, no permission) the error goes out without it.
        (try? JournalReader().lines(unit: unit, count: lines)) ?? []
    }

    // MARK: The steps

    /// Runs `body` with the connection, opening a new one if the old one was closed. When the
    /// peer closes it during `body` (dbus-daemon restarted), `body` runs once more on a new one:
    /// the steps are idempotent enough for that (a queued start is merged, a stop is a stop; a
    /// restart may restart twice), and they keep their deadline.
    private func withBus<Result: Sendable>(
        _ body: (Bus) throws(SystemdError) -> Result
    ) throws(SystemdError) -> Result {
        try connection.withLock { (bus: inout Bus?) throws(SystemdError) -> Result in
            let current: Bus
            if let open = bus, open.isOpen {
                current = open
            } else {
                bus = nil
                current = try Bus()
                bus = current
            }
            do throws(SystemdError) {
                return try body(current)
            } catch  where error.code == .bus && !current.isOpen {
                bus = nil
                let fresh = try Bus()
                bus = fresh
                return try body(fresh)
            }
        }
    }

    static func state(of unit: String, bus: Bus, deadline: ContinuousClock.Instant) throws(SystemdError) -> UnitState {
        let path = try bus.callManager("LoadUnit", [unit], timeout: remaining(deadline), unit: unit).readString("o")
        func read(_ name: String, _ interface: String = Bus.unitInterface) throws(SystemdError) -> String {
            try bus.property(name, interface: interface, path: path, timeout: remaining(deadline), unit: unit)
        }
        var state = UnitState(
            loadState: try read("LoadState"), activeState: try read("ActiveState"), subState: try read("SubState"))
        if unit.hasSuffix(".service") && state.loadState == "loaded" {
            state.result = try read("Result", Bus.serviceInterface)
        }
        return state
    }

    static func perform(
        _ operation: UnitOperation, unit: String, timeout: Duration, deadline: ContinuousClock.Instant, bus: Bus
    ) throws(SystemdError) -> UnitState {
        let before = try state(of: unit, bus: bus, deadline: deadline)
        if before.loadState == "not-found" {
            throw SystemdError(
                .notFound, unit: unit,
                "unit \(unit) is not installed: systemd found no unit file for it (LoadState=not-found); install it under /etc/systemd/system and run `systemctl daemon-reload`"
            )
        }
        if operation != .stop && before.loadState != "loaded" {
            throw SystemdError(
                .unitFailed, unit: unit,
                "cannot \(operation.rawValue) \(unit): systemd could not load it (LoadState=\(before.loadState)); check it with `systemctl status \(unit)` and `systemd-analyze verify`"
            )
        }

        // The JobRemoved match is in place before the job is queued, so its signal cannot be missed.
        try bus.subscribe(timeout: remaining(deadline))
        bus.removedJobs = [:]
        let method =
            switch operation {
            case .start: "StartUnit"
            case .restart: "RestartUnit"
            case .stop: "StopUnit"
            }
        let job = try bus.callManager(method, [unit, "replace"], timeout: remaining(deadline), unit: unit).readString("o")

        var removed: Bus.RemovedJob?
        while true {
            try bus.processPending()
            removed = bus.removedJobs[job]
            let left = deadline - .now
            if removed != nil || left <= .zero { break }
            try bus.wait(min(left, .seconds(1)))
        }
        bus.removedJobs = [:]
        guard let removed else {
            let now = currentState(unit, bus: bus)
            throw SystemdError(
                .timeout, unit: unit,
                "the \(operation.rawValue) job of \(unit) did not finish within \(text(timeout))\(now.map { "; the unit is \(describe($0))" } ?? "")"
            )
        }
        guard removed.result == "done" else {
            let now = currentState(unit, bus: bus)
            throw SystemdError(
                .unitFailed, unit: unit,
                "\(operation.rawValue) of \(unit) failed: job result '\(removed.result)'\(now.map { "; the unit is \(describe($0))" } ?? "")"
            )
        }

        while true {
            let state = try state(of: unit, bus: bus, deadline: deadline)
            switch (operation, state.activeState) {
            case (.stop, "inactive"), (.stop, "failed"):
                return state
            case (.start, "active"), (.start, "reloading"), (.restart, "active"), (.restart, "reloading"):
                return state
            case (.start, "inactive") where state.result == "success", (.restart, "inactive") where state.result == "success":
                // A oneshot unit that ran and finished (its job ends when it exits).
                return state
            case (.start, "failed"), (.restart, "failed"), (.start, "inactive"), (.restart, "inactive"):
                throw SystemdError(
                    .unitFailed, unit: unit,
                    "\(operation.rawValue) of \(unit) failed: its job finished but the unit is \(describe(state))")
            case (.start, "activating") where state.subState == "auto-restart",
                (.restart, "activating") where state.subState == "auto-restart":
                throw SystemdError(
                    .unitFailed, unit: unit,
                    "\(operation.rawValue) of \(unit) failed: its main process exited and systemd is restarting it (\(describe(state)))"
                )
            default:
                break
            }
            guard ContinuousClock.now < deadline else {
                throw SystemdError(
                    .timeout, unit: unit,
                    "\(unit) did not become \(operation == .stop ? "inactive" : "active") within \(text(timeout)): it is \(describe(state))"
                )
            }
            sleep(min(pollInterval, deadline - .now))
            try bus.processPending()  // drops the signals of other jobs
        }
    }

    // MARK: Helpers

    /// The state for an error message; nil when even that cannot be read.
    private static func currentState(_ unit: String, bus: Bus) -> UnitState? {
        // Context for an error being thrown: without it the message just says less.
        try? state(of: unit, bus: bus, deadline: .now + .seconds(5))
    }

    /// `activating/auto-restart (Result=exit-code)`.
    static func describe(_ state: UnitState) -> String {
        "\(state.activeState)/\(state.subState)" + (state.result.isEmpty ? "" : " (Result=\(state.result))")
    }

    /// Time left before `deadline`, at least 1 ms (a call made after it then times out at once).
    static func remaining(_ deadline: ContinuousClock.Instant) -> Duration {
        max(deadline - .now, .milliseconds(1))
    }

    /// `90 s`, `2.5 s`.
    static func text(_ duration: Duration) -> String {
        let tenths = Int64((Double(duration.components.attoseconds) / 1e17).rounded()) + duration.components.seconds * 10
        return tenths % 10 == 0 ? "\(tenths / 10) s" : "\(tenths / 10).\(tenths % 10) s"
    }

    static func sleep(_ duration: Duration) {
        guard duration > .zero else { return }
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var left = timespec()
        while nanosleep(&request, &left) != 0 && errno == EINTR { request = left }
    }
}
