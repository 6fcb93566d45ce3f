import Bootstrap
import Support

/// `nodeboot status`: what the last `init` did (/run/nodeboot/status.json), and ipamd's pool.
enum Status {
    static let command = Command(
        "status", abstract: "Show what the last init did (phases, files, units, registration, error) and ipamd's pool.",
        discussion: "Exit status 0 when the last run succeeded, 1 when it failed or no run left a report. "
            + "With --ipamd: ipamd's state alone (-o json: the status it answers on its socket; exit 1 when it does not answer).",
        options: [
            .value("output", short: "o", "output", "Output format: text, or json (the file as written)."),
            .value("root", "root", "Node root: read the report under this directory."),
            .flag("ipamd", "Show ipamd's state only: its socket's status reply, or the state it last wrote."),
        ])

    static func run(_ arguments: Arguments) throws {
        let output = try arguments.choice("output", default: OutputFormat.text)
        let paths = NodePaths(root: arguments.string("root"))
        if arguments.flag("ipamd") {
            return try ipamd(paths, output: output)
        }
        let (bytes, report): ([UInt8], StatusReport)
        do {
            (bytes, report) = try StatusReport.read(paths)
        } catch {
            throw Failure(error)
        }
        if output == .json {
            StandardStreams.output(String(decoding: bytes, as: UTF8.self))
        } else {
            StandardStreams.output(report.text() + IPAMStatus.read(paths).text())
        }
        if report.result != .ok { throw ExitStatus(code: 1) }
    }

    /// `--ipamd`: the live reply as JSON, or the section as text (exit 1 unless the daemon answered).
    static func ipamd(_ paths: NodePaths, output: OutputFormat) throws {
        if output == .json {
            do {
                StandardStreams.output(try IPAMStatus.liveJSON(paths))
            } catch {
                throw Failure(error)
            }
            return
        }
        let status = IPAMStatus.read(paths)
        StandardStreams.output(status.text())
        guard case .live = status.source else { throw ExitStatus(code: 1) }
    }
}
