import ArgumentParser
import Bootstrap

/// `nodeboot status`: what the last `init` did (/run/nodeboot/status.json).
struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show what the last init did: phases, files, units, registration, error.",
        discussion: "Exit status 0 when the last run succeeded, 1 when it failed or no run left a report.")

    @Option(name: .shortAndLong, help: "Output format: text, or json (the file as written).")
    var output: OutputFormat = .text

    @Option(help: "Node root: read the report under this directory.")
    var root: String?

    func run() throws {
        let path = NodePaths(root: root).node(NodePaths.statusFile)
        let bytes: [UInt8]
        do {
            guard let read = try NodeFileSystem.read(path, limit: 16 << 20) else {
                throw Failure(
                    NodeBootError(
                        .io, "no report at \(path): nodeboot init has not reached this node since it booted",
                        hint:
                            "run `nodeboot init`; a run refused before the apply phase leaves no report (its error is in the journal: journalctl -u nodeboot)"
                    ))
            }
            bytes = read
        } catch let failure as Failure {
            throw failure
        } catch {
            throw Failure(NodeBootError(.io, "cannot read \(path): \(error)"))
        }
        let report: StatusReport
        do {
            report = try StatusReport.decode(bytes)
        } catch {
            throw Failure(
                NodeBootError(
                    .io, "\(path) is not a nodeboot status report: \(error)", hint: "run `nodeboot init` again to rewrite it"))
        }
        if output == .json {
            print(String(decoding: bytes, as: UTF8.self), terminator: "")
        } else {
            print(report.text(), terminator: "")
        }
        if report.result != .ok { throw ExitCode(1) }
    }
}
