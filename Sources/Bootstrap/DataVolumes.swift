import FoundationEssentials
import Logging
import NodeConfig
import Support
import Systemd

#if canImport(Glibc)
    import Glibc
#endif

/// `spec.instance.storage.volumes`: EBS data volumes, set up in the run phase after the run
/// marker and before the local disks (nodeadm's ebs-storage aspect, amazon-eks-ami #2759).
///
/// Every volume is checked first (the device exists, is a block device, `lsblk` calls its model
/// "Amazon Elastic Block Store", and no target is already a mount of something else), so a wrong
/// device or a taken directory fails the run before any disk is formatted. Then each volume
/// whose mount units are not all active: formatted when `blkid` finds nothing on it (a
/// partition table is refused), mounted by UUID through a generated
/// `.mount` unit (`Options=defaults,noatime`, `WantedBy=multi-user.target`). When a target is
/// `/var/lib/containerd` or `/var/lib/kubelet` and holds data, its service is stopped, the data
/// copied onto the volume through a temporary mount, and the service started again once the
/// volume is mounted. nodeboot's addition (amazon-eks-ami #2827): a volume with several
/// `mountTargets` is mounted once under `/mnt/nodeboot/volumes/` and each target is a bind mount
/// of a directory on it.
///
/// Next to `localStorage` (nodeadm's ebs-storage-coexist case): setup-local-disks runs after the
/// volumes and leaves a directory whose `.mount` unit is active alone; the units here have the
/// names it asks systemd about (`UnitName.path`, `systemd-escape --path`), so a volume at a
/// directory the array would bind-mount keeps it. What cannot coexist is refused before a disk
/// is touched: a volume inside the array's directories by validation
/// (`localStorageConflicts`), a target an earlier boot's array already binds by `check`.
///
/// The model check, the filesystem probe and the copy run `lsblk`, `blkid`, `mkfs.<type>`,
/// `mount`, `umount` and `cp` found on the agent's `PATH`: a test satisfies the EBS check with an
/// `lsblk` of its own first on `PATH` (scripts/systemd-test.py does, for loop devices).
struct DataVolumes {
    static let ebsModel = "Amazon Elastic Block Store"
    static let baseDirectory = "/mnt/nodeboot/volumes"
    static let copyDirectory = "/run/nodeboot/volume-copy"
    static let unitDirectory = "/etc/systemd/system"
    /// Data directories whose daemon must not run while its data moves.
    static let services = ["/var/lib/containerd": "containerd.service", "/var/lib/kubelet": "kubelet.service"]

    var paths: NodePaths
    var environment: [String: String]
    var manager: any ServiceManager
    var timeout: Duration
    var logger: Logger

    /// One mount unit to write and start.
    struct Mount: Equatable {
        var unit: String
        var what: String
        var whereTo: String
        var type: String
        var options: String
        /// For a bind mount: the volume's own mount unit.
        var requires: String?
        /// The daemons whose data it holds (ordered after it at boot).
        var before: [String]

        func text(device: String) -> String {
            var lines = [
                "# Written by nodeboot init for spec.instance.storage.volumes (\(device)); removed by nodeboot reset.",
                "[Unit]",
                "Description=nodeboot data volume \(device) at \(whereTo)",
            ]
            if let requires { lines += ["Requires=\(requires)", "After=\(requires)"] }
            if !before.isEmpty { lines.append("Before=\(before.joined(separator: " "))") }
            lines += [
                "", "[Mount]", "What=\(what)", "Where=\(whereTo)", "Type=\(type)", "Options=\(options)", "",
                "[Install]", "WantedBy=multi-user.target", "",
            ]
            return lines.joined(separator: "\n")
        }
    }

    /// A volume as checked: where it is and what it will be mounted as.
    struct Plan {
        var index: Int
        var volume: NodeConfig.Volume
        /// The device node the path resolves to (`/dev/xvdb` → `/dev/nvme1n1`).
        var device: String
        /// Where the volume itself is mounted: its only target, or a directory under `baseDirectory`.
        var base: String
        var shared: Bool
        var units: [String]
    }

    /// Sets up every volume; returns the notes for the report.
    func run(_ volumes: [NodeConfig.Volume]) async throws(NodeBootError) -> [String] {
        guard !volumes.isEmpty else { return [] }
        var plans: [Plan] = []
        let mounted = Self.mounts()
        for (index, volume) in volumes.enumerated() { plans.append(try await check(index, volume, mounted: mounted)) }
        var notes: [String] = []
        for plan in plans { notes.append(try await setUp(plan)) }
        return notes
    }

    func field(_ index: Int) -> String { "spec.instance.storage.volumes[\(index)]" }

    /// Everything that can be known without changing a disk. `mounted`: the kernel's mounts
    /// before any volume of this run was set up (`mounts()`).
    func check(_ index: Int, _ volume: NodeConfig.Volume, mounted: [String: (device: UInt64, source: String)])
        async throws(NodeBootError) -> Plan
    {
        let field = field(index)
        let node = paths.node(volume.device)
        guard let resolved = realpath(node, nil) else {
            throw NodeBootError(
                .io, "\(field).device: \(volume.device) does not exist on this instance",
                hint: "attach the EBS volume at launch (block device mapping) and name its device, e.g. /dev/xvdb")
        }
        let device = String(cString: resolved)
        free(resolved)
        var info = stat()
        guard stat(device, &info) == 0, info.st_mode & S_IFMT == S_IFBLK else {
            throw NodeBootError(
                .io, "\(field).device: \(volume.device) is not a block device",
                hint: "name the EBS volume's device, e.g. /dev/xvdb")
        }
        let model = try await command("lsblk", ["-d", "-n", "-o", "MODEL", device], field: field)
        let modelText = String(decoding: model.stdout, as: UTF8.self).trimmed
        guard model.status == 0, modelText == Self.ebsModel else {
            throw NodeBootError(
                .io,
                "\(field).device: \(volume.device) is not an EBS volume (lsblk MODEL '\(modelText)'\(model.status == 0 ? "" : ", exit \(model.status)"))",
                hint: "storage.volumes takes EBS volumes; instance store disks are spec.instance.localStorage")
        }
        let targets = volume.targets.map { "/" + $0.split(separator: "/").joined(separator: "/") }
        let shared = targets.count > 1
        let base =
            shared ? Self.baseDirectory + "/" + (device.split(separator: "/").last.map(String.init) ?? "volume") : targets[0]
        let baseUnit = UnitName.path(base, suffix: "mount")
        let units = [baseUnit] + (shared ? targets.map { UnitName.path($0, suffix: "mount") } : [])
        // A target that is already a mount of something else (a bind, another disk: e.g. the bind mount of an
        // instance store array that setup-local-disks made at an earlier boot) is refused before any volume is
        // formatted: nodeboot would hide it, and an active unit of that name is not this volume's.
        for target in [base] + (shared ? targets : []) {
            if let other = mounted[paths.node(target)], other.device != info.st_rdev {
                throw NodeBootError(
                    .io, "\(field): \(target) is already a mount of \(other.source), not of \(volume.device)",
                    hint:
                        "unmount it and remove what mounts it at boot (a .mount unit in /etc/systemd/system, e.g. setup-local-disks' bind mount), or give the volume another directory"
                )
            }
        }
        return Plan(index: index, volume: volume, device: device, base: base, shared: shared, units: units)
    }

    func setUp(_ plan: Plan) async throws(NodeBootError) -> String {
        let field = field(plan.index)
        var active = true
        for unit in plan.units {
            let state: UnitState
            do {
                state = try await manager.state(of: unit)
            } catch {
                throw NodeBootError(.systemd, "\(field): cannot read \(unit): \(error)", cause: error)
            }
            if state.activeState != "active" { active = false }
        }
        if active { return "\(plan.volume.device): \(plan.units.joined(separator: ", ")) already active" }

        var type = try await filesystem(plan, field: field)
        var formatted = false
        if type == nil {
            let mkfs = "mkfs.\(plan.volume.filesystem)"
            logger.notice("formatting \(plan.volume.device) as \(plan.volume.filesystem)", metadata: ["phase": "run"])
            let result = try await command(mkfs, [plan.device], field: field, timeout: .seconds(600))
            guard result.status == 0, !result.timedOut else {
                throw NodeBootError(
                    .io, "\(field): \(mkfs) \(plan.device) failed (exit \(result.status)): \(tail(result))",
                    hint: "check the volume in the EC2 console; the image needs \(mkfs)")
            }
            type = plan.volume.filesystem
            formatted = true
        } else if type != plan.volume.filesystem {
            logger.warning(
                "\(plan.volume.device) already holds \(type ?? "") (fsType \(plan.volume.filesystem)): mounted as it is, not reformatted",
                metadata: ["phase": "run"])
        }
        let uuid = try await probe(plan.device, tag: "UUID", field: field)
        guard let uuid, !uuid.isEmpty else {
            throw NodeBootError(
                .io, "\(field): \(plan.volume.device) has a \(type ?? "") filesystem without a UUID",
                hint: "give it one (xfs_admin -U generate / tune2fs -U random)")
        }

        // Data that must move onto the volume, and the daemons to stop while it does.
        let targets = plan.volume.targets.map { "/" + $0.split(separator: "/").joined(separator: "/") }
        var stopped: [String] = []
        let needsCopy = targets.filter { !isEmptyDirectory(paths.node($0)) }
        if plan.shared || !needsCopy.isEmpty {
            for target in needsCopy {
                guard let service = Self.services[target] else { continue }
                if (try? await manager.state(of: service))?.isActive == true {
                    logger.notice("stopping \(service) while \(target) moves onto \(plan.volume.device)")
                    do {
                        _ = try await manager.perform(.stop, unit: service, timeout: timeout)
                    } catch {
                        throw NodeBootError(
                            .systemd, "\(field): cannot stop \(service) to move \(target): \(error)", cause: error)
                    }
                    stopped.append(service)
                }
            }
            try await copy(plan, type: type ?? plan.volume.filesystem, targets: targets, field: field)
        }

        // udev makes /dev/disk/by-uuid/ for a new filesystem a moment after mkfs (asynchronously): a mount unit
        // started before the link exists fails at once where systemd does not wait for the device (a container).
        let link = paths.node("/dev/disk/by-uuid/\(uuid)")
        let deadline = ContinuousClock.now + .seconds(15)
        while !NodeFileSystem.exists(link) {
            guard ContinuousClock.now < deadline else {
                throw NodeBootError(
                    .io, "\(field): /dev/disk/by-uuid/\(uuid) (\(plan.volume.device)) did not appear within 15 s",
                    hint: "udev makes it: check systemd-udevd (`udevadm settle`, `systemctl status systemd-udevd`)")
            }
            try? await Task.sleep(for: .milliseconds(50))
        }

        // The units: written, enabled, started (the volume first, then its bind mounts).
        var mounts = [
            Mount(
                unit: plan.units[0], what: "/dev/disk/by-uuid/\(uuid)", whereTo: plan.base,
                type: type ?? plan.volume.filesystem, options: "defaults,noatime", requires: nil,
                before: plan.shared ? [] : Self.services[plan.base].map { [$0] } ?? [])
        ]
        if plan.shared {
            for (target, unit) in zip(targets, plan.units.dropFirst()) {
                mounts.append(
                    Mount(
                        unit: unit, what: plan.base + "/" + Self.subdirectory(target), whereTo: target, type: "none",
                        options: "bind", requires: plan.units[0], before: Self.services[target].map { [$0] } ?? []))
            }
        }
        do {
            for mount in mounts {
                try NodeFileSystem.makeDirectories(paths.node(mount.whereTo))
                try NodeFileSystem.writeAtomically(
                    paths.node(Self.unitDirectory + "/" + mount.unit), Array(mount.text(device: plan.volume.device).utf8),
                    mode: 0o644)
                try NodeFileSystem.linkAtomically(
                    paths.node(Self.unitDirectory + "/multi-user.target.wants/" + mount.unit),
                    target: Self.unitDirectory + "/" + mount.unit)
            }
        } catch {
            throw NodeBootError(.io, "\(field): cannot write its mount units: \(error)", cause: error)
        }
        do {
            try await manager.daemonReload()
            for mount in mounts { _ = try await manager.perform(.start, unit: mount.unit, timeout: timeout) }
            for service in stopped {
                logger.notice("starting \(service) again: its data is on \(plan.volume.device)")
                _ = try await manager.perform(.start, unit: service, timeout: timeout)
            }
        } catch {
            throw NodeBootError(
                .systemd, "\(field): mounting \(plan.volume.device) failed: \(error)",
                hint: "see `systemctl status \(plan.units[0])` and the journal", cause: error)
        }
        let what = formatted ? "formatted \(type ?? ""), " : ""
        return "\(plan.volume.device): \(what)mounted at \(targets.joined(separator: ", "))"
    }

    /// The filesystem `blkid` finds on the device; nil when there is none. A partition table
    /// is refused: formatting would destroy partitions someone made on purpose.
    func filesystem(_ plan: Plan, field: String) async throws(NodeBootError) -> String? {
        let result = try await command("blkid", ["-p", "-o", "export", plan.device], field: field)
        // blkid exits 2 when it finds nothing.
        if result.status == 2 { return nil }
        guard result.status == 0 else {
            throw NodeBootError(.io, "\(field): blkid \(plan.device) failed (exit \(result.status)): \(tail(result))")
        }
        var values: [String: String] = [:]
        for line in String(decoding: result.stdout, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 2 { values[parts[0]] = parts[1] }
        }
        if let table = values["PTTYPE"], values["TYPE"] == nil {
            throw NodeBootError(
                .io, "\(field): \(plan.volume.device) holds a \(table) partition table, not a filesystem",
                hint: "name a partition (e.g. /dev/xvdb1), or wipe the volume (wipefs -a) to let nodeboot format it")
        }
        return values["TYPE"]
    }

    func probe(_ device: String, tag: String, field: String) async throws(NodeBootError) -> String? {
        let result = try await command("blkid", ["-p", "-o", "value", "-s", tag, device], field: field)
        guard result.status == 0 else { return nil }
        return String(decoding: result.stdout, as: UTF8.self).trimmed
    }

    /// Mounts the volume on a temporary directory, creates the directories its targets need,
    /// and copies what the targets hold onto it (ownership, modes, links and times kept).
    func copy(_ plan: Plan, type: String, targets: [String], field: String) async throws(NodeBootError) {
        let scratch = paths.node(Self.copyDirectory + "/" + (plan.device.split(separator: "/").last.map(String.init) ?? "v"))
        do {
            try NodeFileSystem.makeDirectories(scratch)
        } catch {
            throw NodeBootError(.io, "\(field): cannot create \(scratch): \(error)", cause: error)
        }
        let mounted = try await command("mount", ["-t", type, plan.device, scratch], field: field)
        guard mounted.status == 0 else {
            throw NodeBootError(
                .io, "\(field): mount \(plan.device) \(scratch) failed (exit \(mounted.status)): \(tail(mounted))")
        }
        var failure: NodeBootError?
        for target in targets {
            let destination = plan.shared ? scratch + "/" + Self.subdirectory(target) : scratch
            do {
                try NodeFileSystem.makeDirectories(destination)
            } catch {
                failure = NodeBootError(.io, "\(field): cannot create \(destination): \(error)", cause: error)
                break
            }
            let source = paths.node(target)
            guard !isEmptyDirectory(source) else { continue }
            logger.notice("copying \(target) onto \(plan.volume.device)", metadata: ["phase": "run"])
            let copied = try? await command(
                "cp", ["-a", source + "/.", destination + "/"], field: field, timeout: .seconds(1800))
            if copied?.status != 0 || copied?.timedOut == true {
                failure = NodeBootError(
                    .io, "\(field): copying \(target) onto \(plan.volume.device) failed\(copied.map { ": " + tail($0) } ?? "")",
                    hint: "the volume may be too small for what \(target) holds")
                break
            }
        }
        let unmounted = try? await command("umount", [scratch], field: field)
        if let failure { throw failure }
        if unmounted?.status != 0 {
            throw NodeBootError(.io, "\(field): umount \(scratch) failed\(unmounted.map { ": " + tail($0) } ?? "")")
        }
        try? NodeFileSystem.remove(scratch)
    }

    /// The kernel's mounts (`/proc/self/mountinfo`): mount point → device number and source. A
    /// mount point mounted twice keeps the later (the one that shows). Read to its end with
    /// `NodeFileSystem.read`: `FileManager.contents(atPath:)` stops after the first read of a
    /// procfs file (about 4 KiB of mountinfo), which lost every later mount on a node with many.
    static func mounts(_ file: String = "/proc/self/mountinfo") -> [String: (device: UInt64, source: String)] {
        guard let data = try? NodeFileSystem.read(file, limit: 16 << 20) else { return [:] }
        var result: [String: (device: UInt64, source: String)] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: false)
            guard fields.count > 4, let dash = fields.firstIndex(of: "-"), dash + 2 < fields.count else { continue }
            let numbers = fields[2].split(separator: ":").compactMap { UInt64($0) }
            guard numbers.count == 2 else { continue }
            // glibc's makedev: the 12+20-bit major and 20+12-bit minor interleaved.
            let (major, minor) = (numbers[0], numbers[1])
            let device =
                ((major & 0xffff_f000) << 32) | ((major & 0xfff) << 8) | ((minor & 0xffff_ff00) << 12) | (minor & 0xff)
            result[unescape(fields[4])] = (device, String(fields[dash + 2]))
        }
        return result
    }

    /// mountinfo's octal escapes (`\040` for a space).
    static func unescape(_ field: Substring) -> String {
        var bytes: [UInt8] = []
        var utf8 = Array(field.utf8)[...]
        while let byte = utf8.popFirst() {
            if byte == UInt8(ascii: "\\"), utf8.count >= 3,
                let value = UInt8(String(decoding: utf8.prefix(3), as: UTF8.self), radix: 8)
            {
                bytes.append(value)
                utf8 = utf8.dropFirst(3)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The directory on a shared volume that backs `target` (`/var/lib/kubelet` → `var-lib-kubelet`).
    static func subdirectory(_ target: String) -> String {
        String(UnitName.path(target, suffix: "").dropLast())
    }

    func isEmptyDirectory(_ path: String) -> Bool {
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: path) else { return true }
        return entries.isEmpty
    }

    func tail(_ output: ExternalCommand.Output) -> String {
        output.combined.split(separator: "\n").suffix(3).joined(separator: " / ")
    }

    /// Runs `name` found on the agent's PATH.
    func command(_ name: String, _ arguments: [String], field: String, timeout: Duration = .seconds(60))
        async throws(NodeBootError) -> ExternalCommand.Output
    {
        guard let path = ExternalCommand.find(name, environment: environment) else {
            throw NodeBootError(
                .io, "\(field): \(name) is not on PATH", hint: "the image needs util-linux, e2fsprogs and xfsprogs")
        }
        do {
            return try await ExternalCommand.run(path, arguments, environment: environment, timeout: timeout)
        } catch {
            throw NodeBootError(.io, "\(field): \(name) could not run: \(error)", cause: error)
        }
    }
}
