import Logging
import Support
import WireJSON

/// The phases of `nodeboot init` that appear in its timeline and in status.json, in order
/// (DESIGN's table; `source` includes decoding, `report` is the status file itself).
public enum PhaseName: String, Sendable {
    case source, validate, discover, render, apply, run, register
}

/// How a phase, or a whole run, ended.
public enum Outcome: String, Sendable {
    case ok, failed
    /// A run's report written when it began writing to the node (status.json only): replaced by
    /// its outcome when it ends.
    case running
    /// What a reader makes of `running` from a process that no longer holds the init lock: it
    /// was killed (or the machine stopped) before it finished. Never written to the file.
    case interrupted
}

/// One phase's timing and outcome, for the timeline and status.json.
public struct PhaseRecord: Sendable, Equatable {
    public var name: PhaseName
    /// When the phase started, in milliseconds after the run started.
    public var start: Double
    public var milliseconds: Double
    public var result: Outcome
    public var detail: String

    var json: JSON {
        [
            "name": .string(name.rawValue), "start": .double(start), "milliseconds": .double(milliseconds),
            "result": .string(result.rawValue), "detail": .string(detail),
        ]
    }

    init(name: PhaseName, start: Double, milliseconds: Double, result: Outcome, detail: String) {
        self.name = name
        self.start = start
        self.milliseconds = milliseconds
        self.result = result
        self.detail = detail
    }

    init(json: JSONObject) throws(JSONShapeError) {
        name = try json.value("name")
        start = try json.double("start")
        milliseconds = try json.double("milliseconds")
        result = try json.value("result")
        detail = try json.string("detail")
    }
}

/// What a phase hands on: its result, and the one-line detail of its timeline entry.
protocol PhaseOutput: Sendable {
    var detail: String { get }
}

/// The one place every phase of `init` is timed and made visible: the timeline record (status.json's
/// `phases`, the report's timeline), `STATUS=<phase>` to systemd when it starts, and a journal entry
/// with NODEBOOT_PHASE and NODEBOOT_DURATION_MS when it ends.
struct PhaseRecorder {
    let logger: Logger
    let notify: @Sendable (String) -> Void
    let origin = ContinuousClock.now
    private(set) var phases: [PhaseRecord] = []
    /// The phase under way, or the one that failed.
    private(set) var current: PhaseName?

    init(logger: Logger, notify: @escaping @Sendable (String) -> Void) {
        self.logger = logger
        self.notify = notify
    }

    /// Runs one phase: announces it, times it, records its detail, or records its failure (the
    /// first line of the error) and rethrows.
    mutating func run<Output: PhaseOutput>(
        _ name: PhaseName, _ body: () async throws(NodeBootError) -> Output
    ) async throws(NodeBootError) -> Output {
        current = name
        notify("STATUS=\(name.rawValue)")
        let start = ContinuousClock.now
        do {
            let output = try await body()
            record(name, start: start, result: .ok, detail: output.detail)
            return output
        } catch {
            let firstLine = error.message.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
            record(name, start: start, result: .failed, detail: firstLine)
            throw error
        }
    }

    /// Work that belongs to phase `name` but comes before it is timed (taking the node's lock,
    /// which may wait for another run): not recorded when it succeeds; its failure is the phase's.
    mutating func prepare<Output>(
        _ name: PhaseName, _ body: () async throws(NodeBootError) -> Output
    ) async throws(NodeBootError) -> Output {
        current = name
        notify("STATUS=\(name.rawValue): taking the node's lock")
        let start = ContinuousClock.now
        do {
            return try await body()
        } catch {
            let firstLine = error.message.split(separator: "\n", maxSplits: 1).first.map(String.init) ?? ""
            record(name, start: start, result: .failed, detail: firstLine)
            throw error
        }
    }

    private mutating func record(_ name: PhaseName, start: ContinuousClock.Instant, result: Outcome, detail: String) {
        let now = ContinuousClock.now
        let phase = PhaseRecord(
            name: name, start: (start - origin).milliseconds, milliseconds: (now - start).milliseconds, result: result,
            detail: detail)
        phases.append(phase)
        guard result == .ok else { return }
        logger.info(
            "\(name.rawValue) \(phase.milliseconds.oneDecimal) ms: \(detail)",
            metadata: ["phase": "\(name.rawValue)", "duration": "\(phase.milliseconds.oneDecimal)"])
    }
}
