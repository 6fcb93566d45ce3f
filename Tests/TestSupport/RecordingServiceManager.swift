import Synchronization
public import Systemd

/// A `ServiceManager` for tests: keeps unit states in memory, records every call in order, fails
/// the units it is told to fail (with journal lines, like the real one), and leaves a unit in the
/// state it is told to after its next job.
public final class RecordingServiceManager: ServiceManager {
    public enum Call: Sendable, Equatable, CustomStringConvertible {
        case daemonReload
        case state(String)
        case perform(UnitOperation, String)

        public var description: String {
            switch self {
            case .daemonReload: "daemon-reload"
            case .state(let unit): "state \(unit)"
            case .perform(let operation, let unit): "\(operation.rawValue) \(unit)"
            }
        }
    }

    struct State {
        var units: [String: UnitState]
        var calls: [Call] = []
        var failing: [String: [String]] = [:]
        var afterJob: [String: UnitState] = [:]
        var crashes: [String: (after: Int, journal: [String])] = [:]
    }

    private let state: Mutex<State>

    /// `installed`: the units that exist (inactive); any other unit is `not-found`.
    public init(installed: [String] = ["containerd.service", "nodeboot-ipamd.service", "kubelet.service"]) {
        var units: [String: UnitState] = [:]
        for unit in installed { units[unit] = UnitState(loadState: "loaded", activeState: "inactive", subState: "dead") }
        state = Mutex(State(units: units))
    }

    /// Every call so far, in order.
    public var calls: [Call] { state.withLock { $0.calls } }

    /// Only the calls that change something (reloads and jobs), as text: `["restart containerd.service"]`.
    public var actions: [String] {
        calls.filter { if case .state = $0 { false } else { true } }.map(\.description)
    }

    public func clearCalls() { state.withLock { $0.calls = [] } }

    /// `unit` starts fine but is found failed (`activating/auto-restart`) from the `after`-th
    /// `failure(of:)` check on, with these journal lines: a Type=simple daemon that crashes.
    public func crash(_ unit: String, after checks: Int = 1, journal: [String]) {
        state.withLock { $0.crashes[unit] = (checks, journal) }
    }

    /// The next start/restart of `unit` fails and leaves it `failed`, with these journal lines.
    public func fail(_ unit: String, journal: [String]) { state.withLock { $0.failing[unit] = journal } }

    /// Sets a unit's state now, any state: a crash between runs (`failed`), a unit still starting
    /// (`activating/start`), one being stopped. Setting an unknown unit installs it.
    public func set(_ unit: String, _ unitState: UnitState) { state.withLock { $0.units[unit] = unitState } }

    /// The next job of `unit` (start, restart or stop) leaves it in `unitState` and returns that,
    /// whatever it is, instead of `active/running` (`inactive/dead` for stop): e.g. a start that
    /// did nothing (`inactive/dead`), or a unit still `activating/start`. `fail(_:journal:)` wins.
    public func setAfterJob(_ unit: String, _ unitState: UnitState) {
        state.withLock { $0.afterJob[unit] = unitState }
    }

    public func daemonReload() throws(SystemdError) {
        state.withLock { $0.calls.append(.daemonReload) }
    }

    public func state(of unit: String) throws(SystemdError) -> UnitState {
        state.withLock { state in
            state.calls.append(.state(unit))
            return state.units[unit] ?? UnitState(loadState: "not-found", activeState: "inactive", subState: "dead")
        }
    }

    public func perform(_ operation: UnitOperation, unit: String, timeout: Duration) throws(SystemdError) -> UnitState {
        let result: Result<UnitState, SystemdError> = state.withLock { state in
            state.calls.append(.perform(operation, unit))
            guard state.units[unit] != nil else {
                return .failure(SystemdError(.notFound, unit: unit, "unit \(unit) not found"))
            }
            if operation != .stop, let journal = state.failing.removeValue(forKey: unit) {
                state.units[unit] = UnitState(
                    loadState: "loaded", activeState: "failed", subState: "failed", result: "exit-code")
                return .failure(
                    SystemdError(
                        .unitFailed, unit: unit,
                        "\(unit) failed to \(operation.rawValue): job failed; the unit is failed (Result exit-code)",
                        journal: journal))
            }
            let usual =
                operation == .stop
                ? UnitState(loadState: "loaded", activeState: "inactive", subState: "dead", result: "success")
                : UnitState(loadState: "loaded", activeState: "active", subState: "running", result: "success")
            let after = state.afterJob.removeValue(forKey: unit) ?? usual
            state.units[unit] = after
            return .success(after)
        }
        return try result.get()
    }

    public func failure(of unit: String) -> SystemdError? {
        state.withLock { state in
            if var crash = state.crashes[unit] {
                crash.after -= 1
                state.crashes[unit] = crash
                if crash.after <= 0 {
                    state.units[unit] = UnitState(
                        loadState: "loaded", activeState: "activating", subState: "auto-restart", result: "exit-code")
                    return SystemdError(
                        .unitFailed, unit: unit,
                        "\(unit) keeps failing (systemd restarts it) since it was started: activating/auto-restart (Result=exit-code)",
                        journal: crash.journal)
                }
            }
            guard let current = state.units[unit], current.activeState == "failed" else { return nil }
            return SystemdError(.unitFailed, unit: unit, "\(unit) is no longer running since it was started: failed")
        }
    }
}
