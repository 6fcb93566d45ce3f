import ArgumentParser
import Bootstrap

/// `nodeboot status`: what the last `init` did (/run/nodeboot/status.json).
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what the last init did: phases, files, units, registration, error.",
        discussion: "Exit status 0 when the last run succeeded, 1 when it failed or no run left a report.")

    @Option(name: .shortAndLong, help: "Output format: text, or json (the file as written).")
    var output: OutputFormat = .text

    @Option(help: "Node root: read the report under this directory.")
    var root: String?

    func run() throws {
        let (bytes, report): ([UInt8], StatusReport)
        do {
            (bytes, report) = try StatusReport.read(NodePaths(root: root))
        } catch {
            throw Failure(error)
        }
        if output == .json {
            print(String(decoding: bytes, as: UTF8.self), terminator: "")
        } else {
            print(report.text(), terminator: "")
        }
        if report.result != .ok { throw ExitCode(1) }
    }
}
