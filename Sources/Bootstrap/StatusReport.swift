public import FoundationEssentials
import Support
import WireJSON

#if canImport(Glibc)
    import Glibc
#endif

/// `/run/nodeboot/status.json`: what the last `init` that reached the node did. Written with
/// result `running` (and its pid) when a run takes the init lock to write to the node, and again
/// with its outcome at the end (a run refused earlier changed nothing on the node, so it leaves
/// the previous report in place; its error is on stderr and in the journal). `nodeboot status`
/// prints it; a `running` report whose process holds no lock reads as `interrupted`.
public struct StatusReport: Sendable, Equatable {
    public struct File: Sendable, Equatable {
        public var path: String
        public var action: FileChange.Action
    }

    public struct Node: Sendable, Equatable {
        /// What the register phase found or did.
        public enum Registration: String, Sendable {
            /// `--register-node`: the Node did not exist; it was created.
            case created
            /// `--register-node`: the Node existed and was patched.
            case reconciled
            /// `--register-node`: the Node existed as desired.
            case unchanged
            /// The kubelet registered the Node (waited for, not touched).
            case found
            /// The phase did not run (`detail` says why).
            case notChecked = "not checked"
            case failed
        }

        public var name: String
        public var registration: Registration
        /// nil when Ready was not waited for.
        public var ready: Bool?
        public var detail: String

        public init(name: String, registration: Registration, ready: Bool? = nil, detail: String = "") {
            self.name = name
            self.registration = registration
            self.ready = ready
            self.detail = detail
        }
    }

    public struct Failure: Sendable, Equatable {
        /// The failing domain (`NodeBootError.Code`): input, aws, kube, systemd, io, internal.
        public var code: String
        public var message: String
        public var hint: String?
    }

    /// v2: error codes name the failing domain (v1 had `bad-input`, and `aws`/`io` for API
    /// server and systemd failures).
    public var schema = "nodeboot.status/v2"
    public var command = "init"
    /// The process of the run (absent in reports written before issue 15).
    public var pid: Int32?
    public var startedAt: String
    /// Absent while the run is under way.
    public var finishedAt: String?
    public var result: Outcome
    public var phases: [PhaseRecord]
    public var files: [File]
    public var units: ServiceOutcome
    public var node: Node
    public var warnings: [String]
    public var error: Failure?

    public init(
        startedAt: Date, finishedAt: Date, report: InitReport, error: NodeBootError?
    ) {
        self.startedAt = UTCTime.iso8601(startedAt)
        self.finishedAt = UTCTime.iso8601(finishedAt)
        self.result = error == nil ? .ok : .failed
        self.phases = report.phases
        self.files = report.files.map { File(path: $0.path, action: $0.action) }
        self.units = report.services
        self.node = report.node
        self.warnings = report.warnings
        self.error = error.map { Failure(code: $0.code.name, message: $0.message, hint: $0.hint) }
        self.pid = getpid()
    }

    /// The report of a run that has just taken the init lock and is about to write to the node.
    public static func running(startedAt: Date, report: InitReport) -> StatusReport {
        var status = StatusReport(startedAt: startedAt, finishedAt: startedAt, report: report, error: nil)
        status.finishedAt = nil
        status.result = .running
        return status
    }

    /// The file's text: JSONEncoder's pretty format with sorted keys, as nodeboot has always written it.
    public func encoded() -> [UInt8] {
        Array(json.sortedKeys.prettyText.utf8) + [0x0A]
    }

    public static func decode(_ bytes: [UInt8]) throws -> StatusReport {
        try StatusReport(json: JSONObject(parsing: bytes))
    }

    var json: JSON {
        let node: JSON = .object(
            [.init("name", .string(node.name)), .init("registration", .string(node.registration.rawValue))]
                + JSON.member("ready", node.ready.map(JSON.bool)) + [.init("detail", .string(node.detail))])
        let error = self.error.map { error -> JSON in
            .object(
                [.init("code", .string(error.code)), .init("message", .string(error.message))]
                    + JSON.member("hint", error.hint.map(JSON.string)))
        }
        return .object(
            [.init("schema", .string(schema)), .init("command", .string(command))]
                + JSON.member("pid", pid.map { JSON.int(Int($0)) })
                + [.init("startedAt", .string(startedAt))] + JSON.member("finishedAt", finishedAt.map(JSON.string))
                + [
                    .init("result", .string(result.rawValue)), .init("phases", .array(phases.map(\.json))),
                    .init(
                        "files",
                        .array(files.map { ["path": .string($0.path), "action": .string($0.action.rawValue)] })),
                    .init("units", units.json), .init("node", node),
                    .init("warnings", .array(warnings.map(JSON.string))),
                ] + JSON.member("error", error))
    }

    init(json: JSONObject) throws(JSONShapeError) {
        schema = try json.string("schema")
        command = try json.string("command")
        pid = try json.optionalInt("pid").map { Int32(truncatingIfNeeded: $0) }
        startedAt = try json.string("startedAt")
        finishedAt = try json.optionalString("finishedAt")
        result = try json.value("result")
        phases = try json.objects("phases", PhaseRecord.init(json:))
        files = try json.objects("files") { (file) throws(JSONShapeError) in
            File(path: try file.string("path"), action: try file.value("action"))
        }
        units = try ServiceOutcome(json: json.object("units"))
        let node = try json.object("node")
        self.node = Node(
            name: try node.string("name"), registration: try node.value("registration"),
            ready: try node.optionalBool("ready"), detail: try node.string("detail"))
        warnings = try json.strings("warnings")
        error = try json.optionalObject("error").map { (error) throws(JSONShapeError) in
            Failure(code: try error.string("code"), message: try error.string("message"), hint: try error.optionalString("hint"))
        }
    }

    /// The node's last report (`nodeboot status`): the file as written, and decoded.
    public static func read(_ paths: NodePaths) throws(NodeBootError) -> ([UInt8], StatusReport) {
        let path = paths.node(NodePaths.statusFile)
        let read: [UInt8]?
        do {
            read = try NodeFileSystem.read(path, limit: 16 << 20)
        } catch {
            throw NodeBootError(.io, "cannot read \(path): \(error)")
        }
        guard let bytes = read else {
            throw NodeBootError(
                .io, "no report at \(path): nodeboot init has not reached this node since it booted",
                hint:
                    "run `nodeboot init`; a run refused before the apply phase leaves no report (its error is in the journal: journalctl -u nodeboot-config -u nodeboot-run)"
            )
        }
        do {
            var status = try decode(bytes)
            if status.result == .running, let pid = status.pid, !InitLock.isHeld(paths, by: pid) {
                status.result = .interrupted
                return (status.encoded(), status)
            }
            return (bytes, status)
        } catch {
            throw NodeBootError(
                .io, "\(path) is not a nodeboot status report: \(error)", hint: "run `nodeboot init` again to rewrite it")
        }
    }

    /// For a person: the outcome first, then the timeline, what changed, the units and the node.
    public func text() -> String {
        let process = pid.map { " (pid \($0))" } ?? ""
        var out: String
        switch result {
        case .ok, .failed:
            out = "last init: \(result == .ok ? "succeeded" : "FAILED"), started \(startedAt), finished \(finishedAt ?? "?")\n"
        case .running:
            out = "last init: RUNNING\(process), started \(startedAt)\n"
        case .interrupted:
            out =
                "last init: INTERRUPTED\(process), started \(startedAt): it stopped before it finished (killed, or the machine went down)\n"
                + "hint: run `nodeboot init` again: it repairs the node (every file is its old or its new content)\n"
        }
        if let error {
            out += "error: \(error.message)\n"
            if let hint = error.hint { out += "hint: \(hint)\n" }
        }
        out += "phases:\n"
        for phase in phases {
            let name = phase.name.rawValue.padded(to: 9)
            let time = phase.milliseconds.oneDecimal.leftPadded(to: 8)
            out += "  \(name) \(time) ms  \(phase.result.rawValue)  \(phase.detail)\n"
        }
        if result == .running || result == .interrupted {
            // Written when the run began to write: what it did after that is not known here.
            out +=
                result == .running
                ? "  (now writing to the node)\n" : "  (then it began to write to the node; nothing after that was recorded)\n"
            for warning in warnings { out += "warning: \(warning)\n" }
            return out
        }
        let written = files.filter { $0.action != .unchanged }
        out += "files: \(written.count) written, \(files.count - written.count) unchanged\n"
        for file in written { out += "  \(file.action.rawValue) \(file.path)\n" }
        if units.managed {
            out += "units:\(units.reloaded ? " daemon-reload;" : "")"
            out += units.actions.isEmpty ? " none\n" : "\n"
            for action in units.actions {
                let what = action.action == .none ? "unchanged" : action.action.rawValue
                out += "  \(action.unit): \(what) (\(action.reason)) \(action.result.rawValue) \(action.state)\n"
            }
        } else {
            out += "units: not managed\(units.note.map { " (\($0))" } ?? "")\n"
        }
        let ready = node.ready.map { $0 ? ", Ready" : ", not Ready" } ?? ""
        out += "node: \(node.name.isEmpty ? "(unknown)" : node.name): \(node.registration.rawValue)\(ready)"
        out += node.detail.isEmpty ? "\n" : " (\(node.detail))\n"
        for warning in warnings { out += "warning: \(warning)\n" }
        return out
    }
}
