import Synchronization

@testable import Systemd

/// A `SystemdBus` that plays systemd from a script and records every message sent to it, as
/// systemd would see them: manager calls (`StartUnit kubelet.service replace`), property reads
/// (`Get ActiveState kubelet.service`) and the `JobRemoved` subscription. The state machine of
/// `SystemdServiceManager` runs on it unchanged.
final class RecordedBus: SystemdBus, Sendable {
    /// How one unit behaves.
    struct Script: Sendable {
        var loadState = "loaded"
        /// Before the job.
        var before = UnitState(loadState: "loaded", activeState: "inactive", subState: "dead", result: "success")
        /// The `JobRemoved` result of the job; nil: the signal never comes.
        var jobResult: String? = "done"
        /// The states read after the job finished, in order (the last one stays).
        var after = [UnitState(loadState: "loaded", activeState: "active", subState: "running", result: "success")]
        var type = "simple"
        var remainAfterExit = false
        var conditionResult = true
        var assertResult = true
        var conditions: [UnitCheck] = []
        /// The job's manager call fails with a closed connection (dbus-daemon restarted).
        var closesOnJob = false
        /// Reads of the connection before the job's `JobRemoved` arrives.
        var signalAfterPolls = 0
    }

    struct State {
        var scripts: [String: Script]
        var calls: [String] = []
        /// Per unit: how many states were read since the job was queued (nil: not queued yet).
        var readsAfterJob: [String: Int] = [:]
        var jobs: [String: String] = [:]
        var open = true
        var subscribed = false
        /// `JobRemoved` signals dispatched and not yet forgotten, by job path.
        var removed: [String: RemovedJob] = [:]
        /// Per job: reads of the connection so far.
        var polls: [String: Int] = [:]
    }

    private let state: Mutex<State>

    init(_ scripts: [String: Script]) {
        state = Mutex(State(scripts: scripts))
    }

    /// Every message, in order.
    var calls: [String] { state.withLock { $0.calls } }

    /// A `JobRemoved` for a job nobody queued here (another client's), as systemd broadcasts them.
    func broadcastForeignJob() {
        state.withLock {
            $0.removed["/org/freedesktop/systemd1/job/999"] = RemovedJob(
                id: 999, path: "/org/freedesktop/systemd1/job/999", unit: "other.service", result: "done")
        }
    }

    /// The manager calls and the subscription only (no property reads).
    var actions: [String] { calls.filter { !$0.hasPrefix("Get ") } }

    var isOpen: Bool { state.withLock { $0.open } }

    func waitUntilReady(deadline: ContinuousClock.Instant) throws(SystemdError) {}

    static func unitPath(_ unit: String) -> String { "/org/freedesktop/systemd1/unit/" + unit }

    static func unit(ofPath path: String) -> String { String(path.dropFirst(unitPath("").count)) }

    func callManager(_ method: String, _ arguments: [String], timeout: Duration, unit: String?) throws(SystemdError) {
        _ = try callManagerForPath(method, arguments, timeout: timeout, unit: unit)
    }

    func callManagerForPath(_ method: String, _ arguments: [String], timeout: Duration, unit: String?)
        throws(SystemdError) -> String
    {
        let result: Result<String, SystemdError> = state.withLock { state in
            state.calls.append(([method] + arguments).joined(separator: " "))
            guard state.open else { return .failure(SystemdError(.bus, "connection closed")) }
            let name = arguments.first ?? ""
            switch method {
            case "LoadUnit":
                return .success(Self.unitPath(name))
            case "StartUnit", "RestartUnit", "StopUnit":
                if state.scripts[name]?.closesOnJob == true {
                    state.scripts[name]?.closesOnJob = false
                    state.open = false
                    return .failure(SystemdError(.bus, "systemd's \(method) \(name) replace failed: connection reset"))
                }
                let job = "/org/freedesktop/systemd1/job/\(state.calls.count)"
                state.jobs[job] = name
                state.readsAfterJob[name] = 0
                return .success(job)
            default:
                return .success("")
            }
        }
        return try result.get()
    }

    func property(_ name: String, interface: String, path: String, timeout: Duration, unit: String?)
        throws(SystemdError) -> String
    {
        let unit = Self.unit(ofPath: path)
        return state.withLock { state in
            state.calls.append("Get \(name) \(unit)")
            let script = state.scripts[unit] ?? Script(loadState: "not-found")
            var current = script.before
            if let reads = state.readsAfterJob[unit] {
                current = script.after[min(reads, script.after.count - 1)]
                // A state read ends with SubState (a service's Result after it): the next read sees the next state.
                if name == (unit.hasSuffix(".service") && script.loadState == "loaded" ? "Result" : "SubState") {
                    state.readsAfterJob[unit] = reads + 1
                }
            }
            switch name {
            case "LoadState": return script.loadState
            case "ActiveState": return script.loadState == "not-found" ? "inactive" : current.activeState
            case "SubState": return script.loadState == "not-found" ? "dead" : current.subState
            case "Result": return current.result
            case "Type": return script.type
            default: return ""
            }
        }
    }

    func boolProperty(_ name: String, interface: String, path: String, timeout: Duration, unit: String?)
        throws(SystemdError) -> Bool
    {
        let unit = Self.unit(ofPath: path)
        return state.withLock { state in
            state.calls.append("Get \(name) \(unit)")
            let script = state.scripts[unit] ?? Script()
            switch name {
            case "ConditionResult": return script.conditionResult
            case "AssertResult": return script.assertResult
            case "RemainAfterExit": return script.remainAfterExit
            default: return false
            }
        }
    }

    /// `InvocationID`: zero before the first job, the job's number after it.
    func bytesProperty(_ name: String, interface: String, path: String, timeout: Duration, unit: String?)
        throws(SystemdError) -> [UInt8]
    {
        let unit = Self.unit(ofPath: path)
        return state.withLock { state in
            state.calls.append("Get \(name) \(unit)")
            return state.readsAfterJob[unit] == nil ? [UInt8](repeating: 0, count: 16) : [UInt8](repeating: 0xab, count: 16)
        }
    }

    func checksProperty(_ name: String, path: String, timeout: Duration, unit: String?) throws(SystemdError)
        -> [UnitCheck]
    {
        let unit = Self.unit(ofPath: path)
        return state.withLock { state in
            state.calls.append("Get \(name) \(unit)")
            return state.scripts[unit]?.conditions ?? []
        }
    }

    func subscribe(deadline: ContinuousClock.Instant) throws(SystemdError) {
        state.withLock { state in
            if !state.subscribed { state.calls.append("Subscribe") }
            state.subscribed = true
        }
    }

    /// Each read dispatches what has "arrived": a job's signal after `signalAfterPolls` reads.
    func removedJob(_ path: String) throws(SystemdError) -> RemovedJob? {
        state.withLock { state in
            for (job, unit) in state.jobs where state.removed[job] == nil {
                guard let script = state.scripts[unit], let result = script.jobResult else { continue }
                let polls = state.polls[job, default: 0]
                state.polls[job] = polls + 1
                if polls >= script.signalAfterPolls {
                    state.removed[job] = RemovedJob(id: 1, path: job, unit: unit, result: result)
                }
            }
            return state.removed[path]
        }
    }

    func forgetRemovedJobs() {
        state.withLock { state in
            for job in state.removed.keys { state.jobs[job] = nil }
            state.removed = [:]
        }
    }
}
