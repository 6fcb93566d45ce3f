import FoundationEssentials
import Logging
import Support

/// The report phase: `/run/nodeboot/status.json` for every run that holds the node's lock: one
/// that touched the node (`NodeClaim` wrote it as `running` when the run began to write), and one
/// refused before that which could take the lock (it changed nothing else; the report says why,
/// for `nodeboot status`); and the outcome to systemd (`STATUS=report`, then `READY=1` with a
/// STATUS line, or the phase that failed).
struct ReportPhase {
    var paths: NodePaths
    var logger: Logger
    var notify: @Sendable (String) -> Void

    func run(_ report: InitReport, startedAt: Date, touchedNode: Bool, failedIn phase: PhaseName?, error: NodeBootError?) {
        if touchedNode { notify("STATUS=report") }
        if let error {
            notify("STATUS=failed in the \(phase?.rawValue ?? "source") phase")
            if touchedNode { write(StatusReport(startedAt: startedAt, finishedAt: Date(), report: report, error: error)) }
        } else {
            if touchedNode { write(StatusReport(startedAt: startedAt, finishedAt: Date(), report: report, error: nil)) }
            notify(
                report.deferred.map { "READY=1\nSTATUS=\($0)" }
                    ?? "READY=1\nSTATUS=done: node \(report.nodeName) \(report.node.registration.rawValue)")
        }
    }

    func write(_ status: StatusReport) {
        do {
            try NodeFileSystem.makeDirectories(paths.node(NodePaths.runDirectory))
            try NodeFileSystem.writeAtomically(paths.node(NodePaths.statusFile), status.encoded(), mode: 0o644)
        } catch {
            // The run's outcome is already decided; a report that cannot be written is worth a line.
            logger.warning("cannot write \(paths.node(NodePaths.statusFile)): \(error)")
        }
    }
}
