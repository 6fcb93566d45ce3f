import Logging
import NodeConfig
import NodeRender
import Support
import Systemd

/// The run phase: nodeadm's run marker, local disks (`setup-local-disks`), then the services:
/// daemon-reload when systemd's configuration changed, and each unit the rendered files
/// configure started or restarted when its files changed (`ServiceRun`). Under `--root` this
/// machine's services are not touched.
struct RunPhase {
    var paths: NodePaths
    var daemons: Set<Daemon>
    /// False under `--root` (a test or image tree); tests with a fake manager set true.
    var manageServices: Bool
    var serviceManager: @Sendable () throws(SystemdError) -> any ServiceManager
    var unitTimeout: Duration
    /// setup-local-disks runs with it.
    var environment: [String: String]
    var logger: Logger

    /// The services' outcome is in the `services` the phase was given (kept on failure too).
    struct Output: PhaseOutput {
        /// Open when services are managed: the register phase watches the kubelet through it.
        var manager: (any ServiceManager)?
        var notes: [String]
        var detail: String
    }

    /// `services` grows as units are handled, so a failure leaves what was done in it.
    func run(_ config: NodeConfig, files: [NodeFile], services: inout ServiceOutcome) async throws(NodeBootError)
        -> Output
    {
        let marker = paths.node(NodePaths.runMarker)
        do {
            if !NodeFileSystem.exists(marker) { try NodeFileSystem.writeAtomically(marker, [], mode: 0o644) }
        } catch {
            throw NodeBootError(.io, "cannot write the run marker: \(error)", cause: error)
        }
        var notes: [String] = []
        let volumes = config.spec.instance.storage.volumes
        var opened: (any ServiceManager)?
        if !volumes.isEmpty {
            if manageServices {
                let manager = try openManager()
                opened = manager
                notes += try await DataVolumes(
                    paths: paths, environment: environment, manager: manager, timeout: unitTimeout, logger: logger
                ).run(volumes)
            } else {
                notes.append("--root: storage.volumes not set up (they need this machine's disks and systemd)")
            }
        }
        if let disks = try await localDisks(config.spec.instance.localStorage) { notes.append(disks) }
        guard manageServices else {
            services = ServiceOutcome(managed: false, note: "--root: this machine's services are not touched")
            return Output(notes: notes, detail: Self.describe(services))
        }
        let manager: any ServiceManager
        if let opened { manager = opened } else { manager = try openManager() }
        let run = ServiceRun(paths: paths, manager: manager, timeout: unitTimeout, logger: logger)
        let soci = files.contains { $0.path == SOCISnapshotter.configPath }
        try await run.run(files: files, daemons: daemons, into: &services) { unit throws(NodeBootError) in
            if soci && unit == .containerd { try await importPauseImageForSOCI() }
        }
        return Output(manager: manager, notes: notes, detail: Self.describe(services))
    }

    func openManager() throws(NodeBootError) -> any ServiceManager {
        do {
            return try serviceManager()
        } catch {
            throw NodeBootError(
                .systemd, "cannot manage containerd and the kubelet: \(error.message)",
                hint:
                    "nodeboot init starts services through systemd (PID 1); on a machine without it use --skip run, or --root DIR for an image tree",
                cause: error)
        }
    }

    /// FastImagePull: the image build cached the pause image with the overlayfs snapshotter, so
    /// the kubelet's first sandbox would fetch it again through SOCI (from ECR, before the
    /// credential provider works). nodeadm's post-launch step imports the saved archive into the
    /// snapshotter's store once containerd is up; without the archive there is nothing to import.
    func importPauseImageForSOCI() async throws(NodeBootError) {
        let archive = paths.node(SOCISnapshotter.pauseArchive)
        guard NodeFileSystem.exists(archive) else {
            logger.warning(
                "\(SOCISnapshotter.pauseArchive) is missing: the pause image is not imported into the SOCI snapshotter",
                metadata: ["phase": "run"])
            return
        }
        let ctr = paths.node("/usr/bin/ctr")
        let result: ExternalCommand.Output
        do {
            result = try await ExternalCommand.run(
                ctr, SOCISnapshotter.importArguments, environment: environment, timeout: .seconds(120))
        } catch {
            throw NodeBootError(
                .systemd, "cannot import the pause image into the SOCI snapshotter: \(error)",
                hint: "the image must ship containerd's ctr at /usr/bin/ctr")
        }
        guard result.status == 0 && !result.timedOut else {
            let output = result.combined.split(separator: "\n").suffix(5).joined(separator: "\n")
            throw NodeBootError(
                .systemd,
                "ctr \(SOCISnapshotter.importArguments.joined(separator: " ")) failed (exit \(result.status)\(result.timedOut ? ", timed out after 120 s" : "")):\n\(output)",
                hint: "check soci-snapshotter.service (`systemctl status soci-snapshotter`) and \(SOCISnapshotter.pauseArchive)")
        }
        logger.info("pause image imported into the SOCI snapshotter", metadata: ["phase": "run"])
    }

    /// nodeadm's local-disk aspect: `setup-local-disks <strategy>` with its options; the note to
    /// report, nil when no strategy is set.
    func localDisks(_ storage: NodeConfig.LocalStorage) async throws(NodeBootError) -> String? {
        guard !storage.strategy.isEmpty else { return nil }
        var arguments = [storage.strategy.lowercased()]
        if !storage.mountPath.isEmpty { arguments += ["--dir", storage.mountPath] }
        for mount in storage.disabledMounts {
            switch mount {
            case "PodLogs": arguments.append("--no-bind-pods-logs")
            case "Containerd": arguments.append("--no-bind-containerd")
            default: arguments.append("--no-bind-soci")
            }
        }
        let script = paths.node(NodePaths.setupLocalDisks)
        let result: ExternalCommand.Output
        do {
            result = try await ExternalCommand.run(script, arguments, environment: environment, timeout: .seconds(600))
        } catch {
            throw NodeBootError(.io, "local disks: \(error)", hint: "install setup-local-disks in the image")
        }
        let output = result.combined
        if !output.isEmpty {
            logger.notice("\(output.hasSuffix("\n") ? String(output.dropLast()) : output)", metadata: ["phase": "run"])
        }
        guard result.status == 0 && !result.timedOut else {
            throw NodeBootError(
                .io, "setup-local-disks \(arguments.joined(separator: " ")) failed (exit \(result.status))",
                hint: "its output is above; check the instance store volumes")
        }
        return "setup-local-disks \(arguments.joined(separator: " "))"
    }

    /// The timeline's line for the service work.
    static func describe(_ outcome: ServiceOutcome) -> String {
        guard outcome.managed else { return "services not managed: \(outcome.note ?? "")" }
        var parts: [String] = []
        if outcome.reloaded { parts.append("daemon-reload") }
        parts += outcome.actions.filter { $0.action != .none }.map { "\($0.action.rawValue) \($0.unit)" }
        let steady = outcome.actions.filter { $0.action == .none }.map(\.unit)
        if !steady.isEmpty { parts.append("\(steady.joined(separator: ", ")) unchanged") }
        return parts.isEmpty ? "no services" : parts.joined(separator: "; ")
    }
}
