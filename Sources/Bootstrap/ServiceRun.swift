import FoundationEssentials
import Logging
import NodeRender
import Support
import Systemd
import WireJSON

/// What the run phase did to one unit.
public struct UnitAction: Sendable, Equatable {
    public enum Action: String, Sendable {
        /// The unit was running with this configuration: nothing done.
        case none
        case start, restart
    }

    /// How the action ended.
    public enum Result: String, Sendable {
        case ok, failed, timeout
        /// systemd does not know the unit (an optional one: a note; otherwise the run fails).
        case notInstalled = "not installed"
    }

    public var unit: String
    public var action: Action
    /// Why: `configuration changed`, `not running`, `running with this configuration`.
    public var reason: String
    public var result: Result
    /// ActiveState/SubState after the action.
    public var state: String
    public var milliseconds: Double

    var json: JSON {
        [
            "unit": .string(unit), "action": .string(action.rawValue), "reason": .string(reason),
            "result": .string(result.rawValue), "state": .string(state), "milliseconds": .double(milliseconds),
        ]
    }
}

/// The run phase's service work: whether systemd re-read its units, and each unit's action.
public struct ServiceOutcome: Sendable, Equatable {
    public var managed: Bool
    /// Why services were not managed (`--root`, `--daemon=`), when `managed` is false.
    public var note: String?
    public var reloaded = false
    public var actions: [UnitAction] = []

    public init(managed: Bool, note: String? = nil, reloaded: Bool = false, actions: [UnitAction] = []) {
        self.managed = managed
        self.note = note
        self.reloaded = reloaded
        self.actions = actions
    }

    var json: JSON {
        .object(
            [.init("managed", .bool(managed))] + JSON.member("note", note.map(JSON.string))
                + [.init("reloaded", .bool(reloaded)), .init("actions", .array(actions.map(\.json)))])
    }

    init(json: JSONObject) throws(JSONShapeError) {
        managed = try json.bool("managed")
        note = try json.optionalString("note")
        reloaded = try json.bool("reloaded")
        actions = try json.objects("actions") { (action) throws(JSONShapeError) in
            UnitAction(
                unit: try action.string("unit"), action: try action.value("action"), reason: try action.string("reason"),
                result: try action.value("result"), state: try action.string("state"),
                milliseconds: try action.double("milliseconds"))
        }
    }

    public var restarted: [String] { actions.filter { $0.action != .none && $0.result == .ok }.map(\.unit) }
}

/// `/var/lib/nodeboot/units.json`: for each unit, a digest of the configuration it was last
/// started with by nodeboot, and one of systemd's own configuration as of the last daemon-reload.
/// It survives a reboot: a daemon systemd starts at boot reads the files on disk, so when they
/// still digest as recorded it runs with that configuration and the run unit leaves it alone; a
/// file changed since (by the config phase before it, or a user script) restarts it. (In /run, the
/// first run after every boot restarted containerd and the kubelet for nothing: scripts/vm-test.py.)
struct UnitRecord: Equatable {
    var systemd: String?
    var units: [String: String] = [:]

    static let path = NodePaths.stateDirectory + "/units.json"
    /// Where nodeboot before 0.12 kept it (read once, so an upgrade restarts nothing).
    static let formerPath = "/run/nodeboot/units.json"

    static func load(_ paths: NodePaths) -> UnitRecord {
        // A missing or unreadable record only costs restarts: every unit is treated as unknown.
        for candidate in [path, formerPath] {
            if let bytes = try? NodeFileSystem.read(paths.node(candidate)),
                let file = try? JSONObject(parsing: bytes)
            {
                return UnitRecord(
                    systemd: try? file.optionalString("systemd"),
                    units: Dictionary((try? file.stringMap("units", required: false)) ?? [], uniquingKeysWith: { $1 }))
            }
        }
        return UnitRecord()
    }

    func save(_ paths: NodePaths) throws(NodeBootError) {
        let json = JSON.object(
            JSON.member("systemd", systemd.map(JSON.string))
                + [.init("units", .object(units.map { JSON.Member($0.key, .string($0.value)) }))])
        do {
            try NodeFileSystem.makeDirectories(paths.node(NodePaths.stateDirectory))
            try NodeFileSystem.writeAtomically(paths.node(Self.path), Array(json.sortedKeys.text.utf8), mode: 0o644)
        } catch {
            throw NodeBootError(.io, "cannot write \(paths.node(Self.path)): \(error)", cause: error)
        }
    }

    /// SHA-256 over the files' paths and current bytes on the node (not the rendered bytes:
    /// between `--skip run` and `--skip config` runs a user script may have edited them).
    static func digest(_ files: [String], paths: NodePaths) -> String {
        var input: [UInt8] = []
        for file in files.sorted() {
            input += Array(file.utf8) + [0]
            // An unreadable file digests as absent: the unit then restarts, which is the safe side.
            let bytes = (try? NodeFileSystem.read(paths.node(file))) ?? nil
            input += bytes ?? Array("<absent>".utf8)
            input.append(0)
        }
        return Hex.sha256(input)
    }
}

/// The run phase's service work, decided from the rendered files (each names the units that read
/// it): daemon-reload when systemd's configuration changed, then for each unit in
/// `ServiceUnit`'s order (a daemon's unit when `--daemon` selects it; another unit when a
/// rendered file configures it) a restart when its files changed since nodeboot last started it,
/// a start when it is not running, nothing otherwise. Each wait is bounded by `timeout`.
struct ServiceRun {
    var paths: NodePaths
    var manager: any ServiceManager
    var timeout: Duration
    /// `notice`: what is done to a unit and why; `info`: timings.
    var logger: Logger

    /// The units to handle, in order: those of the selected daemons, and the others a rendered file configures.
    static func units(files: [NodeFile], daemons: Set<Daemon>) -> [ServiceUnit] {
        ServiceUnit.allCases.filter { unit in
            unit.daemon.map(daemons.contains) ?? files.contains { $0.units.contains(unit) }
        }
    }

    /// `files`: every file this run renders (written or not); `daemons`: the filter.
    /// `outcome` grows as units are handled, so a failure leaves what was done (and the failed
    /// unit) in it for the report.
    /// `afterUp` runs once a unit is up (started, restarted or already running), before the next
    /// one: work the next unit depends on (the SOCI pause-image import between containerd and the kubelet).
    func run(
        files: [NodeFile], daemons: Set<Daemon>, into outcome: inout ServiceOutcome,
        afterUp: (ServiceUnit) async throws(NodeBootError) -> Void = { _ in }
    ) async throws(NodeBootError) {
        outcome = ServiceOutcome(managed: true)
        var record = UnitRecord.load(paths)
        var saved = record
        /// Written only when it changed: a repeated run writes nothing but status.json.
        func save(_ record: UnitRecord) throws(NodeBootError) {
            guard record != saved else { return }
            try record.save(paths)
            saved = record
        }

        let systemdDigest = UnitRecord.digest(files.filter(\.reloadsSystemd).map(\.path), paths: paths)
        let emptyDigest = UnitRecord.digest([], paths: paths)
        if systemdDigest != (record.systemd ?? emptyDigest) {
            let start = ContinuousClock.now
            do {
                try await manager.daemonReload()
            } catch {
                throw NodeBootError(
                    .systemd, "systemd daemon-reload failed: \(error)", hint: "check `systemctl status` and the journal",
                    cause: error)
            }
            outcome.reloaded = true
            logger.info("daemon-reload", metadata: ["duration": "\((ContinuousClock.now - start).milliseconds.oneDecimal)"])
        }
        record.systemd = systemdDigest
        try save(record)

        for unit in Self.units(files: files, daemons: daemons) {
            let digest = UnitRecord.digest(files.filter { $0.units.contains(unit) }.map(\.path), paths: paths)
            let action: UnitAction
            do {
                action = try await act(on: unit, digest: digest, record: record)
            } catch {
                outcome.actions.append(error.action)
                throw error.error
            }
            outcome.actions.append(action)
            if action.result == .ok || action.result == .notInstalled {
                record.units[unit.rawValue] = digest
                try save(record)
            }
            if action.result == .ok { try await afterUp(unit) }
        }
    }

    /// A unit that could not be brought up: what to report, and the error.
    struct UnitFailure: Error {
        var action: UnitAction
        var error: NodeBootError
    }

    func act(on service: ServiceUnit, digest: String, record: UnitRecord) async throws(UnitFailure) -> UnitAction {
        let unit = service.rawValue
        let start = ContinuousClock.now
        let state: UnitState
        do {
            state = try await manager.state(of: unit)
        } catch {
            throw UnitFailure(
                action: UnitAction(
                    unit: unit, action: .none, reason: "state unknown", result: .failed, state: "",
                    milliseconds: (ContinuousClock.now - start).milliseconds), error: Self.failure(unit, error, timeout: timeout))
        }
        if state.loadState == "not-found" {
            if service.isOptional {
                logger.notice(
                    "\(unit) is not installed: the DNS drop-in takes effect when it is", metadata: ["unit": "\(unit)"])
                return UnitAction(
                    unit: unit, action: .none, reason: "not installed", result: .notInstalled, state: "", milliseconds: 0)
            }
            let error = NodeBootError(
                .systemd, "\(unit) is not installed on this node (systemd does not know the unit)",
                hint:
                    "the node image must ship it: \(service.shippedAs) into /etc/systemd/system, then `systemctl daemon-reload`"
            )
            throw UnitFailure(
                action: UnitAction(
                    unit: unit, action: .none, reason: "not installed", result: .notInstalled, state: "not-found",
                    milliseconds: 0), error: error)
        }
        let changed = record.units[unit] != digest
        let operation: UnitOperation?
        let reason: String
        if changed {
            // A unit still activating is starting with the old files: only a restart applies the
            // new ones (a start would merge into the running start job).
            operation = state.activeState == "inactive" || state.activeState == "failed" ? .start : .restart
            reason = record.units[unit] == nil ? "configuration not yet applied by nodeboot" : "configuration changed"
        } else if !state.isActive {
            operation = .start
            reason = "not running (\(state.activeState))"
        } else {
            operation = nil
            reason = "running with this configuration"
        }
        guard let operation else {
            return UnitAction(
                unit: unit, action: .none, reason: reason, result: .ok, state: "\(state.activeState)/\(state.subState)",
                milliseconds: 0)
        }
        logger.notice("\(operation.rawValue) \(unit): \(reason)", metadata: ["unit": "\(unit)"])
        let after: UnitState
        do {
            after = try await manager.perform(operation, unit: unit, timeout: timeout)
        } catch {
            throw UnitFailure(
                action: UnitAction(
                    unit: unit, action: operation == .restart ? .restart : .start, reason: reason,
                    result: error.code == .timeout ? .timeout : .failed, state: "",
                    milliseconds: (ContinuousClock.now - start).milliseconds), error: Self.failure(unit, error, timeout: timeout))
        }
        let elapsed = (ContinuousClock.now - start).milliseconds
        logger.info(
            "\(unit) \(after.activeState) after \(elapsed.oneDecimal) ms",
            metadata: ["unit": "\(unit)", "duration": "\(elapsed.oneDecimal)"])
        return UnitAction(
            unit: unit, action: operation == .restart ? .restart : .start, reason: reason, result: .ok,
            state: "\(after.activeState)/\(after.subState)", milliseconds: elapsed)
    }

    /// A unit's failure as the agent reports it: the message with the unit's journal lines, and a
    /// hint for the kind of failure (`timeout`: the limit it ran into).
    static func failure(_ unit: String, _ error: SystemdError, timeout: Duration) -> NodeBootError {
        var message = error.message
        if !error.journal.isEmpty {
            message += "\n  last journal lines of \(unit):\n" + error.journal.map { "    \($0)" }.joined(separator: "\n")
        }
        let hint: String
        switch error.code {
        case .timeout:
            hint =
                "\(unit) did not become active within \(timeout.tenthsOfSeconds) s: see `journalctl -u \(unit)`; raise --unit-timeout if it is only slow"
        case .unavailable:
            hint = "run on a node booted with systemd, or use --skip run"
        case .bus:
            hint = "systemd refused the request: check `systemctl status \(unit)` and `journalctl -u \(unit)`"
        case .notFound:
            hint = "install \(unit) in the node image (nodeboot's units/), then `systemctl daemon-reload`"
        case .cancelled:
            hint = "nodeboot was stopped while it waited for \(unit); run nodeboot init again"
        case .unitFailed where error.journal.isEmpty:
            hint = "the unit left no journal lines: see `systemctl status \(unit)`, fix it, then run `nodeboot init` again"
        case .unitFailed:
            hint = "fix the cause shown in the journal lines (`journalctl -u \(unit)`), then run `nodeboot init` again"
        }
        // A wait cut short by cancellation is the run being stopped, not systemd failing.
        return NodeBootError(error.code == .cancelled ? .internal : .systemd, message, hint: hint, cause: error)
    }

    /// What the run phase would do about the files a dry run would change (without asking
    /// systemd: a unit that is down would also be started).
    static func dryRun(_ changes: [FileChange], files: [NodeFile], daemons: Set<Daemon>) -> [String] {
        let changed = Set(changes.filter { $0.action != .unchanged }.map(\.path))
        let changedFiles = files.filter { changed.contains($0.path) }
        var notes: [String] = []
        if changedFiles.contains(where: \.reloadsSystemd) { notes.append("the run phase would daemon-reload") }
        for unit in units(files: files, daemons: daemons) {
            let causes = changedFiles.filter { $0.units.contains(unit) }.map(\.path)
            if !causes.isEmpty {
                notes.append("the run phase would restart \(unit.rawValue) (\(causes.joined(separator: ", ")) would change)")
            }
        }
        if notes.isEmpty { notes.append("the run phase would restart nothing (no unit's files would change)") }
        return notes
    }
}
