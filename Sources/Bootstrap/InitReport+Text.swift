import FoundationEssentials
import Support
import WireJSON

/// How a run is shown to a person (or a program): what `nodeboot init` prints on stdout.
extension InitReport {
    /// Warnings, notes, the phase timeline, the files (with diffs for a dry run) and the total.
    public func text(total: Duration, dryRun: Bool) -> String {
        let report = self
        var out = ""
        for warning in report.warnings { out += "warning: \(warning)\n" }
        for note in report.notes { out += "note: \(note)\n" }
        for phase in report.phases {
            let name = phase.name.rawValue.padded(to: 10)
            out += "  \(name) \(phase.milliseconds.oneDecimal.leftPadded(to: 7)) ms  \(phase.detail)\n"
        }
        for file in report.files {
            if dryRun {
                if file.action != .unchanged { out += "\(file.action.rawValue) \(file.path)\n\(file.diff ?? "")" }
            } else {
                out +=
                    "  \(file.action.rawValue.padded(to: 9)) \(String(file.mode, radix: 8)) \(String(file.size).leftPadded(to: 6)) \(file.path)\n"
            }
        }
        if dryRun && !report.files.contains(where: { $0.action != .unchanged }) { out += "no file would change\n" }
        out += "done in \(total.milliseconds.oneDecimal) ms\(report.nodeName.isEmpty ? "" : ": node \(report.nodeName)")\n"
        return out
    }

    /// The same as JSON (sorted keys, JSONEncoder's pretty format).
    public func json(total: Duration) -> String {
        let files = self.files.map { file in
            JSON.object(
                [
                    .init("path", .string(file.path)), .init("action", .string(file.action.rawValue)),
                    .init("mode", .string(String(file.mode, radix: 8))), .init("size", .int(file.size)),
                ] + JSON.member("diff", file.diff.map(JSON.string)))
        }
        let output: JSON = [
            "phases": .array(phases.map(\.json)), "files": .array(files), "warnings": .array(warnings.map(JSON.string)),
            "notes": .array(notes.map(JSON.string)), "nodeName": .string(nodeName),
            "totalMilliseconds": .double(total.milliseconds),
        ]
        return output.sortedKeys.prettyText + "\n"
    }
}
