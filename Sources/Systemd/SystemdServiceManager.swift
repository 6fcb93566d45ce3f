import CSystemd
import Glibc
import Support
import Synchronization

/// The `ServiceManager` of a node: systemd's manager over the system bus (sd-bus), the unit's
/// journal for failures. An actor: the connection (`SystemdBus`, not thread-safe) never leaves
/// it, its waits sleep without holding a thread, and its operations run one at a time (a call
/// that arrives while another sleeps waits its turn, so no job's signals are taken by another). The state machine of a job (queue it,
/// wait for its `JobRemoved`, judge the unit's state) runs on any `SystemdBus`, so tests drive
/// it with a recorded fake.
public actor SystemdServiceManager: ServiceManager {
    /// The limit of calls that have no timeout of their own: daemon-reload on a busy node, state reads.
    static let callTimeout: Duration = .seconds(90)
    /// How often the unit's state is read while waiting for `active`/`inactive`.
    static let pollInterval: Duration = .milliseconds(50)
    /// How often the connection is read for the job's `JobRemoved` signal: from 2 ms, doubling
    /// up to `pollInterval` (a restart takes tens of milliseconds; a slow start is not read 200
    /// times a second).
    static let firstJobPoll: Duration = .milliseconds(2)
    /// Journal lines carried by a `.unitFailed` or `.timeout` error.
    static let journalLines = 20

    /// Opens a connection (the system bus; a fake in tests).
    private let connect: @Sendable () throws(SystemdError) -> any SystemdBus
    /// The unit's last journal lines that a filter lets through, oldest first.
    private let journal: @Sendable (_ unit: String, _ filter: JournalReader.Filter, _ count: Int) -> [String]
    /// How long journalAfterExit waits between its reads.
    private let journalPauses: [Duration]
    /// The connection; nil after the peer closed it (it is opened again on the next call).
    private var bus: (any SystemdBus)?
    /// An operation is under way; the next ones wait here in order.
    private var busy = false
    private var waiting: [CheckedContinuation<Void, Never>] = []

    /// Connects to systemd over the system bus. Throws `.unavailable` where systemd is not PID 1
    /// (no system bus).
    public init() throws(SystemdError) {
        try self.init(
            connect: { () throws(SystemdError) -> any SystemdBus in try Bus() },
            journal: { unit, filter, count in
                // The journal is context for an error already being reported: when it cannot be
                // read (no journald, no permission) the error goes out without it.
                (try? JournalReader().lines(unit: unit, count: count, filter: filter)) ?? []
            })
    }

    /// `connect` opens the connection (now, and again after the peer closed it); `journal`
    /// reads a unit's lines; `journalPauses` are the waits for a failed unit's own output.
    init(
        connect: @escaping @Sendable () throws(SystemdError) -> any SystemdBus,
        journal: @escaping @Sendable (String, JournalReader.Filter, Int) -> [String],
        journalPauses: [Duration] = [
            .milliseconds(200), .milliseconds(200), .milliseconds(300), .milliseconds(300), .milliseconds(500),
            .milliseconds(500), .seconds(1),
        ]
    ) throws(SystemdError) {
        self.connect = connect
        self.journal = journal
        self.journalPauses = journalPauses
        self.bus = try connect()
    }

    public func daemonReload() async throws(SystemdError) {
        let deadline = ContinuousClock.now + Self.callTimeout
        try await withBus(deadline: deadline) { bus throws(SystemdError) in
            try bus.callManager("Reload", [], timeout: Self.remaining(deadline), unit: nil)
        }
    }

    public func state(of unit: String) async throws(SystemdError) -> UnitState {
        let deadline = ContinuousClock.now + Self.callTimeout
        return try await withBus(deadline: deadline) { bus throws(SystemdError) in
            try Self.state(of: unit, bus: bus, deadline: deadline)
        }
    }

    public func perform(_ operation: UnitOperation, unit: String, timeout: Duration) async throws(SystemdError)
        -> UnitState
    {
        let deadline = ContinuousClock.now + timeout
        return try await withBus(deadline: deadline) { bus async throws(SystemdError) in
            var job = Job()
            do throws(SystemdError) {
                return try await perform(operation, unit: unit, timeout: timeout, deadline: deadline, bus: bus, job: &job)
            } catch  where error.code == .unitFailed || error.code == .timeout {
                let filter = Self.journalFilter(job, unit: unit, bus: bus)
                var failure = error
                failure.journal = await journalAfterExit(unit: unit, filter: filter)
                throw failure
            }
        }
    }

    public func failure(of unit: String) async -> SystemdError? {
        let deadline = ContinuousClock.now + .seconds(5)
        // A state that cannot be read right now is no evidence of a failure: the caller goes on waiting.
        let read = try? await withBus(deadline: deadline) { bus throws(SystemdError) -> (UnitState, String) in
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
            journal: await journalAfterExit(unit: unit, filter: filter))
    }

    /// The unit's last journal lines after it failed. journald gets the unit's own output
    /// through its stdout stream, which can trail systemd's messages about the exit: read again
    /// (for at most 3 s: under load the stream trailed by more than a second in a clean-clone run)
    /// until a line of the unit itself is there, or give what there is.
    func journalAfterExit(unit: String, filter: JournalReader.Filter) async -> [String] {
        var lines: [String] = []
        for pause in journalPauses {
            // Cancelled: the lines read so far (the error is on its way out anyway).
            guard (try? await Task.sleep(for: pause)) != nil else { break }
            lines = journal(unit, filter, Self.journalLines)
            if lines.contains(where: { !$0.contains(" systemd[1]: ") }) { break }
        }
        return lines
    }

    /// Runs `body` with the connection, opening a new one if the old one was closed, once the
    /// bus daemon accepted it (waited for until `deadline`). When the peer closes it during
    /// `body` (dbus-daemon restarted), `body` runs once more on a new one: the steps are
    /// idempotent enough for that (a queued start is merged, a stop is a stop; a restart may
    /// restart twice), and they keep their deadline.
    private func withBus<Result: Sendable>(
        deadline: ContinuousClock.Instant, _ body: nonisolated(nonsending) (any SystemdBus) async throws(SystemdError) -> Result
    ) async throws(SystemdError) -> Result {
        if busy {
            await withCheckedContinuation { waiting.append($0) }
        }
        busy = true
        defer {
            if waiting.isEmpty { busy = false } else { waiting.removeFirst().resume() }
        }
        let current: any SystemdBus
        if let open = bus, open.isOpen {
            current = open
        } else {
            bus = nil
            current = try connect()
            bus = current
        }
        do throws(SystemdError) {
            try current.waitUntilReady(deadline: deadline)
            return try await body(current)
        } catch  where error.code == .bus && !current.isOpen {
            bus = nil
            let fresh = try connect()
            bus = fresh
            try fresh.waitUntilReady(deadline: deadline)
            return try await body(fresh)
        }
    }

    // MARK: The steps

    /// The unit's object path (`LoadUnit` loads it if needed).
    static func load(_ unit: String, bus: any SystemdBus, deadline: ContinuousClock.Instant) throws(SystemdError) -> String {
        try bus.callManagerForPath("LoadUnit", [unit], timeout: remaining(deadline), unit: unit)
    }

    static func state(of unit: String, bus: any SystemdBus, deadline: ContinuousClock.Instant) throws(SystemdError) -> UnitState {
        try state(of: unit, path: load(unit, bus: bus, deadline: deadline), bus: bus, deadline: deadline)
    }

    static func state(
        of unit: String, path: String, bus: any SystemdBus, deadline: ContinuousClock.Instant
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
        of unit: String, path: String, bus: any SystemdBus, deadline: ContinuousClock.Instant
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

    func perform(
        _ operation: UnitOperation, unit: String, timeout: Duration, deadline: ContinuousClock.Instant, bus: any SystemdBus,
        job: inout Job
    ) async throws(SystemdError) -> UnitState {
        let path = try Self.load(unit, bus: bus, deadline: deadline)
        job.path = path
        let before = try Self.state(of: unit, path: path, bus: bus, deadline: deadline)
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
        try bus.callManager("RefUnit", [unit], timeout: Self.remaining(deadline), unit: unit)
        defer { Self.unref(unit, bus: bus) }
        job.invocationBefore = try Self.invocationID(of: unit, path: path, bus: bus, deadline: deadline)

        // The JobRemoved match is confirmed before the job is queued, so its signal cannot be missed.
        try bus.subscribe(deadline: deadline)
        bus.forgetRemovedJobs()
        let method =
            switch operation {
            case .start: "StartUnit"
            case .restart: "RestartUnit"
            case .stop: "StopUnit"
            }
        job.queuedAt = Self.realtimeMicroseconds()
        let jobPath = try bus.callManagerForPath(
            method, [unit, "replace"], timeout: Self.remaining(deadline), unit: unit)

        var removed: RemovedJob?
        var pause = Self.firstJobPoll
        while true {
            removed = try bus.removedJob(jobPath)
            let left = deadline - .now
            if removed != nil || left <= .zero { break }
            try await Self.pause(min(left, pause), unit: unit)
            pause = min(pause * 2, Self.pollInterval)
        }
        bus.forgetRemovedJobs()
        guard let removed else {
            let now = Self.currentState(unit, bus: bus)
            throw SystemdError(
                .timeout, unit: unit,
                "the \(operation.rawValue) job of \(unit) did not finish within \(timeout.secondsText)\(now.map { "; the unit is \(Self.describe($0))" } ?? "")"
            )
        }
        if removed.result == "assert" {
            try Self.checkConditions(unit: unit, path: path, bus: bus, deadline: deadline)
        }
        guard removed.result == "done" else {
            let now = Self.currentState(unit, bus: bus)
            throw SystemdError(
                .unitFailed, unit: unit,
                "\(operation.rawValue) of \(unit) failed: job result '\(removed.result)'\(now.map { "; the unit is \(Self.describe($0))" } ?? "")"
            )
        }

        while true {
            let state = try Self.state(of: unit, path: path, bus: bus, deadline: deadline)
            switch (operation, state.activeState) {
            case (.stop, "inactive"), (.stop, "failed"):
                return state
            case (.start, "active"), (.start, "reloading"), (.restart, "active"), (.restart, "reloading"):
                return state
            case (.start, "inactive"), (.restart, "inactive"):
                return try Self.inactiveAfterStart(operation, unit: unit, state: state, path: path, bus: bus, deadline: deadline)
            case (.start, "failed"), (.restart, "failed"):
                // A failed unit whose condition fails now stays failed: say that it was skipped.
                try Self.checkConditions(unit: unit, path: path, bus: bus, deadline: deadline)
                throw SystemdError(
                    .unitFailed, unit: unit,
                    "\(operation.rawValue) of \(unit) failed: its job finished but the unit is \(Self.describe(state))")
            case (.start, "activating") where state.subState == "auto-restart",
                (.restart, "activating") where state.subState == "auto-restart":
                throw SystemdError(
                    .unitFailed, unit: unit,
                    "\(operation.rawValue) of \(unit) failed: its main process exited and systemd is restarting it (\(Self.describe(state)))"
                )
            default:
                break
            }
            guard ContinuousClock.now < deadline else {
                throw SystemdError(
                    .timeout, unit: unit,
                    "\(unit) did not become \(operation == .stop ? "inactive" : "active") within \(timeout.secondsText): it is \(Self.describe(state))"
                )
            }
            try await Self.pause(min(Self.pollInterval, deadline - .now), unit: unit)
            bus.forgetRemovedJobs()  // the signals of other jobs
        }
    }

    /// A start or restart whose job is done left the unit `inactive`. That is success only for a
    /// `Type=oneshot` service (without `RemainAfterExit=yes`) that ran and exited with success.
    /// A unit whose condition failed was skipped, not started: systemd reports that job as done
    /// too (`ConditionResult=no`, `Result=success`).
    static func inactiveAfterStart(
        _ operation: UnitOperation, unit: String, state: UnitState, path: String, bus: any SystemdBus,
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
        unit: String, path: String, bus: any SystemdBus, deadline: ContinuousClock.Instant
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
        _ property: String, of unit: String, path: String, bus: any SystemdBus, deadline: ContinuousClock.Instant
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
    static func journalFilter(_ job: Job, unit: String, bus: any SystemdBus) -> JournalReader.Filter {
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
    private static func unref(_ unit: String, bus: any SystemdBus) {
        // When this fails the bus is gone, and with the connection systemd dropped the reference.
        try? bus.callManager("UnrefUnit", [unit], timeout: .seconds(5), unit: unit)
    }

    /// The state for an error message; nil when even that cannot be read.
    private static func currentState(_ unit: String, bus: any SystemdBus) -> UnitState? {
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

    /// Sleeps without holding a thread; a cancelled task ends the wait with `.cancelled`.
    static func pause(_ duration: Duration, unit: String) async throws(SystemdError) {
        guard duration > .zero else { return }
        do {
            try await Task.sleep(for: duration)
        } catch {
            throw SystemdError(.cancelled, unit: unit, "the wait for \(unit) was cancelled")
        }
    }
}
