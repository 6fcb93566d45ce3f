import Bootstrap
import Support

/// `nodeboot status`: what the last `init` did (/run/nodeboot/status.json).
enum Status {
    static let command = Command(
        "status", abstract: "Show what the last init did: phases, files, units, registration, error.",
        discussion: "Exit status 0 when the last run succeeded, 1 when it failed or no run left a report.",
        options: [
            .value("output", short: "o", "output", "Output format: text, or json (the file as written)."),
            .value("root", "root", "Node root: read the report under this directory."),
        ])

    static func run(_ arguments: Arguments) throws {
        let output = try arguments.choice("output", default: OutputFormat.text)
        let (bytes, report): ([UInt8], StatusReport)
        do {
            (bytes, report) = try StatusReport.read(NodePaths(root: arguments.string("root")))
        } catch {
            throw Failure(error)
        }
        StandardStreams.output(output == .json ? String(decoding: bytes, as: UTF8.self) : report.text())
        if report.result != .ok { throw ExitStatus(code: 1) }
    }
}
