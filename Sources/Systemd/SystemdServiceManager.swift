import CSystemd
import Glibc
import Support
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
        let deadline = ContinuousClock.now + Self.callTimeout
        try withBus(deadline: deadline) { bus throws(SystemdError) in
            _ = try bus.callManager("Reload", [], timeout: Self.remaining(deadline))
        }
    }

    public func state(of unit: String) throws(SystemdError) -> UnitState {
        let deadline = ContinuousClock.now + Self.callTimeout
        return try withBus(deadline: deadline) { bus throws(SystemdError) in
            try Self.state(of: unit, bus: bus, deadline: deadline)
        }
    }

    public func perform(_ operation: UnitOperation, unit: String, timeout: Duration) throws(SystemdError) -> UnitState {
        let deadline = ContinuousClock.now + timeout
        return try withBus(deadline: deadline) { bus throws(SystemdError) in
            var job = Job()
            do throws(SystemdError) {
                return try Self.perform(operation, unit: unit, timeout: timeout, deadline: deadline, bus: bus, job: &job)
            } catch  where error.code == .unitFailed || error.code == .timeout {
                let filter = Self.journalFilter(job, unit: unit, bus: bus)
                var failure = error
                failure.journal = Self.journalAfterExit(unit: unit, filter: filter)
                throw failure
            }
        }
    }

    public func failure(of unit: String) -> SystemdError? {
        let deadline = ContinuousClock.now + .seconds(5)
        // A state that cannot be read right now is no evidence of a failure: the caller goes on waiting.
        let read = try? withBus(deadline: deadline) { bus throws(SystemdError) -> (UnitState, String) in
            let path = try Self.load(unit, bus: bus, deadline: deadline)
            let state = try Self.state(of: unit, path: path, bus: bus, deadline: deadline)
            return (state, try Self.invocationID(of: unit, path: path, bus: bus, deadline: deadline))
        }
        guard let (state, invocation) = read else { return nil }
        let restarting = state.activeState == "activating" && state.subState == "auto-restart"
        guard state.activeState == "failed" || state.activeState == "inactive" || restarting else { return nil }
        let filter =
            invocation.isEmpty ? JournalReader.Filter(boot: Self.bootID()) : JournalReader.Filter(invocation: invocation)
        let what = restarting ? "keeps failing (systemd restarts it)" : "is no longer running"
        return SystemdError(
            .unitFailed, unit: unit, "\(unit) \(what) since it was started: \(Self.describe(state))",
            journal: Self.journalAfterExit(unit: unit, filter: filter))
    }

    /// The unit's last journal lines after it failed. journald gets the unit's own output
    /// through its stdout stream, which can trail systemd's messages about the exit: read again
    /// (for at most a second) until a line of the unit itself is there, or give what there is.
    static func journalAfterExit(unit: String, filter: JournalReader.Filter) -> [String] {
        var lines: [String] = []
        for pause in [200, 200, 300, 300] {
            sleep(.milliseconds(pause))
            lines = journal(unit: unit, filter: filter, lines: journalLines)
            if lines.contains(where: { !$0.contains(" systemd[1]: ") }) { break }
        }
        return lines
    }

    /// The unit's last `lines` journal messages that `filter` lets through, oldest first (empty
    /// when there is no journal).
    static func journal(unit: String, filter: JournalReader.Filter, lines: Int) -> [String] {
        // The journal is context for an error already being reported: when it cannot be read
        // (no journald, no permission) the error goes out without it.
        (try? JournalReader().lines(unit: unit, count: lines, filter: filter)) ?? []
    }

    // MARK: The steps

    /// Runs `body` with the connection, opening a new one if the old one was closed, once the
    /// bus daemon accepted it (waited for until `deadline`). When the peer closes it during
    /// `body` (dbus-daemon restarted), `body` runs once more on a new one: the steps are
    /// idempotent enough for that (a queued start is merged, a stop is a stop; a restart may
    /// restart twice), and they keep their deadline.
    private func withBus<Result: Sendable>(
        deadline: ContinuousClock.Instant, _ body: (Bus) throws(SystemdError) -> Result
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
                try current.waitUntilReady(deadline: deadline)
                return try body(current)
            } catch  where error.code == .bus && !current.isOpen {
                bus = nil
                let fresh = try Bus()
                bus = fresh
                try fresh.waitUntilReady(deadline: deadline)
                return try body(fresh)
            }
        }
    }

    /// The unit's object path (`LoadUnit` loads it if needed).
    static func load(_ unit: String, bus: Bus, deadline: ContinuousClock.Instant) throws(SystemdError) -> String {
        try bus.callManager("LoadUnit", [unit], timeout: remaining(deadline), unit: unit).readString("o")
    }

    static func state(of unit: String, bus: Bus, deadline: ContinuousClock.Instant) throws(SystemdError) -> UnitState {
        try state(of: unit, path: load(unit, bus: bus, deadline: deadline), bus: bus, deadline: deadline)
    }

    static func state(
        of unit: String, path: String, bus: Bus, deadline: ContinuousClock.Instant
    ) throws(SystemdError) -> UnitState {
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

    /// The unit's current `InvocationID` as 32 lowercase hex digits, as the journal has it
    /// (empty when the unit never ran).
    static func invocationID(
        of unit: String, path: String, bus: Bus, deadline: ContinuousClock.Instant
    ) throws(SystemdError) -> String {
        let bytes = try bus.bytesProperty(
            "InvocationID", interface: Bus.unitInterface, path: path, timeout: remaining(deadline), unit: unit)
        return bytes.allSatisfy { $0 == 0 } ? "" : Hex.encode(bytes)
    }

    /// What a job's failure report needs: the unit's object path and invocation before the job,
    /// and when the job was queued.
    struct Job {
        var path: String?
        /// `InvocationID` before the job was queued ("" when the unit never ran).
        var invocationBefore = ""
        /// CLOCK_REALTIME in microseconds just before the job was queued.
        var queuedAt: UInt64?
    }

    static func perform(
        _ operation: UnitOperation, unit: String, timeout: Duration, deadline: ContinuousClock.Instant, bus: Bus,
        job: inout Job
    ) throws(SystemdError) -> UnitState {
        let path = try load(unit, bus: bus, deadline: deadline)
        job.path = path
        let before = try state(of: unit, path: path, bus: bus, deadline: deadline)
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
        // Pinned until the result is read: a unit that ended inactive and that nothing else
        // refers to is unloaded at once, and read again it would be a fresh one (ConditionResult=no,
        // no InvocationID). The reference is dropped with the connection too.
        _ = try bus.callManager("RefUnit", [unit], timeout: remaining(deadline), unit: unit)
        defer { unref(unit, bus: bus) }
        job.invocationBefore = try invocationID(of: unit, path: path, bus: bus, deadline: deadline)

        // The JobRemoved match is confirmed before the job is queued, so its signal cannot be missed.
        try bus.subscribe(deadline: deadline)
        bus.removedJobs = [:]
        let method =
            switch operation {
            case .start: "StartUnit"
            case .restart: "RestartUnit"
            case .stop: "StopUnit"
            }
        job.queuedAt = realtimeMicroseconds()
        let jobPath = try bus.callManager(method, [unit, "replace"], timeout: remaining(deadline), unit: unit).readString(
            "o")

        var removed: Bus.RemovedJob?
        while true {
            try bus.processPending()
            removed = bus.removedJobs[jobPath]
            let left = deadline - .now
            if removed != nil || left <= .zero { break }
            try bus.wait(min(left, .seconds(1)))
        }
        bus.removedJobs = [:]
        guard let removed else {
            let now = currentState(unit, bus: bus)
            throw SystemdError(
                .timeout, unit: unit,
                "the \(operation.rawValue) job of \(unit) did not finish within \(timeout.secondsText)\(now.map { "; the unit is \(describe($0))" } ?? "")"
            )
        }
        if removed.result == "assert" {
            try checkConditions(unit: unit, path: path, bus: bus, deadline: deadline)
        }
        guard removed.result == "done" else {
            let now = currentState(unit, bus: bus)
            throw SystemdError(
                .unitFailed, unit: unit,
                "\(operation.rawValue) of \(unit) failed: job result '\(removed.result)'\(now.map { "; the unit is \(describe($0))" } ?? "")"
            )
        }

        while true {
            let state = try state(of: unit, path: path, bus: bus, deadline: deadline)
            switch (operation, state.activeState) {
            case (.stop, "inactive"), (.stop, "failed"):
                return state
            case (.start, "active"), (.start, "reloading"), (.restart, "active"), (.restart, "reloading"):
                return state
            case (.start, "inactive"), (.restart, "inactive"):
                return try inactiveAfterStart(operation, unit: unit, state: state, path: path, bus: bus, deadline: deadline)
            case (.start, "failed"), (.restart, "failed"):
                // A failed unit whose condition fails now stays failed: say that it was skipped.
                try checkConditions(unit: unit, path: path, bus: bus, deadline: deadline)
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
                    "\(unit) did not become \(operation == .stop ? "inactive" : "active") within \(timeout.secondsText): it is \(describe(state))"
                )
            }
            sleep(min(pollInterval, deadline - .now))
            try bus.processPending()  // drops the signals of other jobs
        }
    }

    /// A start or restart whose job is done left the unit `inactive`. That is success only for a
    /// `Type=oneshot` service (without `RemainAfterExit=yes`) that ran and exited with success.
    /// A unit whose condition failed was skipped, not started: systemd reports that job as done
    /// too (`ConditionResult=no`, `Result=success`).
    static func inactiveAfterStart(
        _ operation: UnitOperation, unit: String, state: UnitState, path: String, bus: Bus,
        deadline: ContinuousClock.Instant
    ) throws(SystemdError) -> UnitState {
        try checkConditions(unit: unit, path: path, bus: bus, deadline: deadline)
        guard unit.hasSuffix(".service") else {
            throw SystemdError(
                .unitFailed, unit: unit,
                "\(operation.rawValue) of \(unit) failed: its job finished but the unit is \(describe(state)); see `systemctl status \(unit)`"
            )
        }
        let type = try bus.property(
            "Type", interface: Bus.serviceInterface, path: path, timeout: remaining(deadline), unit: unit)
        let remainAfterExit = try bus.boolProperty(
            "RemainAfterExit", interface: Bus.serviceInterface, path: path, timeout: remaining(deadline), unit: unit)
        if type == "oneshot" && !remainAfterExit && state.result == "success" {
            return state  // it ran and finished: a oneshot's start job ends when it exits
        }
        let why: String
        if type == "oneshot" && remainAfterExit {
            why = "it has Type=oneshot and RemainAfterExit=yes, so it should have stayed active/exited: something stopped it"
        } else if state.result == "success" {
            why =
                "its main process exited right after it started (Type=\(type)); only a Type=oneshot service may end once started"
        } else {
            why = "Type=\(type)"
        }
        throw SystemdError(
            .unitFailed, unit: unit,
            "\(operation.rawValue) of \(unit) failed: its job finished but the unit is \(describe(state)): \(why); see `systemctl status \(unit)` and `journalctl -u \(unit)`"
        )
    }

    /// Throws `.unitFailed` when the unit's last start was skipped because a condition failed
    /// (`ConditionResult=no`) or did not happen because an assertion failed (`AssertResult=no`).
    static func checkConditions(
        unit: String, path: String, bus: Bus, deadline: ContinuousClock.Instant
    ) throws(SystemdError) {
        func bool(_ name: String) throws(SystemdError) -> Bool {
            try bus.boolProperty(name, interface: Bus.unitInterface, path: path, timeout: remaining(deadline), unit: unit)
        }
        if !(try bool("ConditionResult")) {
            throw SystemdError(
                .unitFailed, unit: unit,
                "\(unit) was not started: its condition failed (\(failedChecks("Conditions", of: unit, path: path, bus: bus, deadline: deadline))), so systemd skipped it; make the condition hold, then start the unit again (`systemctl status \(unit)` shows the check)"
            )
        }
        if !(try bool("AssertResult")) {
            throw SystemdError(
                .unitFailed, unit: unit,
                "\(unit) was not started: its assertion failed (\(failedChecks("Asserts", of: unit, path: path, bus: bus, deadline: deadline))); make it hold, then start the unit again (`systemctl status \(unit)` shows the check)"
            )
        }
    }

    /// The failed checks of `property` (`Conditions` or `Asserts`) as in the unit file
    /// (`ConditionPathExists=/etc/eks/kubelet/environment`), or `ConditionResult=no` when they
    /// cannot be read.
    static func failedChecks(
        _ property: String, of unit: String, path: String, bus: Bus, deadline: ContinuousClock.Instant
    ) -> String {
        let fallback = property == "Asserts" ? "AssertResult=no" : "ConditionResult=no"
        // Only the detail of an error being thrown: without it the message names the result.
        guard
            let checks = try? bus.checksProperty(
                property, path: path, timeout: min(remaining(deadline), .seconds(5)), unit: unit)
        else { return fallback }
        let failed = checks.filter { $0.state < 0 }.map(\.text)
        return failed.isEmpty ? fallback : failed.joined(separator: ", ")
    }

    /// Which journal lines belong to a failed job: those of the invocation it started (the
    /// unit's processes' `_SYSTEMD_INVOCATION_ID`, systemd's `INVOCATION_ID` about it); when the
    /// job started none (a condition failed, the unit never ran), the unit's lines of this boot
    /// since the job was queued; when no job was queued (the unit could not be loaded), the unit's
    /// lines of this boot.
    static func journalFilter(_ job: Job, unit: String, bus: Bus) -> JournalReader.Filter {
        if job.queuedAt != nil, let path = job.path {
            // Reading the invocation may fail like the job did (the bus is gone): then the time filter applies.
            let now = try? invocationID(of: unit, path: path, bus: bus, deadline: .now + .seconds(5))
            if let now, !now.isEmpty, now != job.invocationBefore {
                return JournalReader.Filter(invocation: now)
            }
        }
        return JournalReader.Filter(boot: bootID(), since: job.queuedAt)
    }

    // MARK: Helpers

    /// Drops the reference `perform` took on the unit.
    private static func unref(_ unit: String, bus: Bus) {
        // When this fails the bus is gone, and with the connection systemd dropped the reference.
        _ = try? bus.callManager("UnrefUnit", [unit], timeout: .seconds(5), unit: unit)
    }

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

    /// This boot's id as the journal's `_BOOT_ID` has it; nil when the kernel does not say.
    static func bootID() -> String? {
        var id = sd_id128_t()
        guard sd_id128_get_boot(&id) >= 0 else { return nil }
        return Hex.encode(withUnsafeBytes(of: id) { Array($0) })
    }

    /// CLOCK_REALTIME in microseconds (the journal's `__REALTIME_TIMESTAMP`).
    static func realtimeMicroseconds() -> UInt64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return UInt64(now.tv_sec) * 1_000_000 + UInt64(now.tv_nsec) / 1000
    }

    static func sleep(_ duration: Duration) {
        guard duration > .zero else { return }
        let (seconds, attoseconds) = duration.components
        var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
        var left = timespec()
        while nanosleep(&request, &left) != 0 && errno == EINTR { request = left }
    }
}
