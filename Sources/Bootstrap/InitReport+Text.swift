import FoundationEssentials
import Support

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

    /// The same as JSON (sorted keys).
    public func json(total: Duration) -> String {
        let report = self
        struct Output: Encodable {
            var phases: [PhaseRecord]
            var files: [File]
            var warnings: [String]
            var notes: [String]
            var nodeName: String
            var totalMilliseconds: Double
        }
        struct File: Encodable {
            var path: String
            var action: String
            var mode: String
            var size: Int
            var diff: String?
        }
        let output = Output(
            phases: report.phases,
            files: report.files.map {
                File(path: $0.path, action: $0.action.rawValue, mode: String($0.mode, radix: 8), size: $0.size, diff: $0.diff)
            }, warnings: report.warnings, notes: report.notes, nodeName: report.nodeName,
            totalMilliseconds: total.milliseconds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return ((try? encoder.encode(output)).map { String(decoding: $0, as: UTF8.self) } ?? "{}") + "\n"
    }
}
