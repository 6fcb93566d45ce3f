import Bootstrap
import Foundation
import Logging
import NodeConfig
import Support
import Systemd
import TestSupport
import Testbed
import Testing

/// `spec.instance.storage.volumes` in the run phase, on a real loop device (formatted, probed,
/// mounted for the copy, its data checked afterwards) with a recording service manager for the
/// mount units. The EBS model check is satisfied by an `lsblk` first on the agent's PATH that
/// answers "Amazon Elastic Block Store" for the devices it is told to, as DataVolumes documents.
@Suite("init run phase: EBS data volumes (loop devices)", .serialized)
struct DataVolumesTests {
    static let unavailable: String? = {
        if getuid() != 0 { return "needs root (losetup, mkfs, mount)" }
        for tool in ["/usr/sbin/losetup", "/usr/sbin/mkfs.ext4", "/usr/sbin/blkid", "/usr/bin/lsblk"]
        where !FileManager.default.isExecutableFile(atPath: tool) {
            return "\(tool) is missing"
        }
        return nil
    }()

    /// A 64 MiB loop device, detached at the end.
    struct Loop {
        var device: String
        var image: String

        static func attach() throws -> Loop {
            let image = FileManager.default.temporaryDirectory.appendingPathComponent("volume-\(UUID().uuidString).img").path
            _ = FileManager.default.createFile(atPath: image, contents: nil)
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: image))
            try handle.truncate(atOffset: 64 << 20)
            try handle.close()
            let device = try Self.run("/usr/sbin/losetup", ["--find", "--show", image]).trimmingCharacters(
                in: .whitespacesAndNewlines)
            return Loop(device: device, image: image)
        }

        func detach() {
            _ = try? Self.run("/usr/sbin/losetup", ["-d", device])
            try? FileManager.default.removeItem(atPath: image)
        }

        /// The files on the volume (mounted read-only for a moment).
        func files() throws -> [String] {
            let mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("mnt-\(UUID().uuidString)").path
            try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
            _ = try Self.run("/usr/bin/mount", ["-o", "ro", device, mountPoint])
            defer {
                _ = try? Self.run("/usr/bin/umount", [mountPoint])
                try? FileManager.default.removeItem(atPath: mountPoint)
            }
            return (FileManager.default.enumerator(atPath: mountPoint)?.allObjects as? [String] ?? []).filter {
                !$0.hasPrefix("lost+found")
            }.sorted()
        }

        @discardableResult
        static func run(_ tool: String, _ arguments: [String]) throws -> String {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: tool)
            process.arguments = arguments
            let pipe = Pipe()
            process.standardOutput = pipe
            process.standardError = pipe
            try process.run()
            let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                throw CocoaError(.fileReadUnknown, userInfo: [NSLocalizedDescriptionKey: "\(tool) \(arguments): \(output)"])
            }
            return output
        }
    }

    /// A directory with an `lsblk` that calls `ebs` devices EBS volumes and any other disk by
    /// another model, ahead of the system's tools on PATH.
    /// A directory with an `lsblk` that calls `ebs` devices EBS volumes and any other disk by
    /// another model, and (with `root`) an `mkfs.ext4` that also plays udev: it makes the node's
    /// `/dev/disk/by-uuid/` link for the new filesystem, which nodeboot waits for. Ahead of the
    /// system's tools on PATH.
    static func tools(ebs: [String], root: String? = nil) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bin-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let cases = ebs.map { "\($0)) echo 'Amazon Elastic Block Store' ;;" }.joined(separator: "\n")
        var scripts = [
            "lsblk": "#!/bin/sh\nfor last; do :; done\ncase \"$last\" in\n\(cases)\n*) echo 'QEMU HARDDISK' ;;\nesac\n"
        ]
        if let root {
            scripts["mkfs.ext4"] =
                "#!/bin/sh\nfor last; do :; done\n/usr/sbin/mkfs.ext4 -q \"$@\" || exit $?\n"
                + "u=$(/usr/sbin/blkid -p -o value -s UUID \"$last\") && mkdir -p '\(root)/dev/disk/by-uuid' "
                + "&& ln -sfn \"$last\" \"\(root)/dev/disk/by-uuid/$u\"\n"
        }
        for (name, script) in scripts {
            try Data(script.utf8).write(to: URL(fileURLWithPath: directory + "/" + name))
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: directory + "/" + name)
        }
        return directory
    }

    static func run(_ node: InitServiceTests.Node, tools: String) async -> Result<InitReport, NodeBootError> {
        await node.run(path: tools + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    }

    static func link(_ node: InitServiceTests.Node, _ name: String, to device: String) throws {
        try FileManager.default.createDirectory(atPath: node.root + "/dev", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: node.root + name, withDestinationPath: device)
    }

    static func installMounts(_ node: InitServiceTests.Node, _ units: [String]) {
        for unit in units { node.manager.set(unit, UnitState(loadState: "loaded", activeState: "inactive", subState: "dead")) }
    }

    @Test(
        "one volume at /var/lib/containerd: formatted, containerd's data copied while it is stopped, mounted by UUID; a re-run changes nothing",
        .enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func containerdVolume() async throws {
        let loop = try Loop.attach()
        defer { loop.detach() }
        try await InitServiceTests.withNode { node in
            try Self.link(node, "/dev/xvdb", to: loop.device)
            let tools = try Self.tools(ebs: [loop.device], root: node.root)
            try FileManager.default.createDirectory(
                atPath: node.root + "/var/lib/containerd/io.containerd.content.v1.content", withIntermediateDirectories: true)
            try Data("blob".utf8).write(
                to: URL(fileURLWithPath: node.root + "/var/lib/containerd/io.containerd.content.v1.content/blob"))
            Self.installMounts(node, ["var-lib-containerd.mount"])
            node.manager.set("containerd.service", UnitState(loadState: "loaded", activeState: "active", subState: "running"))
            try node.write(
                """
                  instance:
                    storage:
                      volumes:
                        - device: /dev/xvdb
                          mountTarget: /var/lib/containerd
                          fsType: ext4
                """)
            let report = try await Self.run(node, tools: tools).get()
            let uuid = try Loop.run("/usr/sbin/blkid", ["-o", "value", "-s", "UUID", loop.device]).trimmingCharacters(
                in: .whitespacesAndNewlines)
            #expect(try Loop.run("/usr/sbin/blkid", ["-o", "value", "-s", "TYPE", loop.device]) == "ext4\n")
            let unit = try String(contentsOfFile: node.root + "/etc/systemd/system/var-lib-containerd.mount", encoding: .utf8)
            #expect(
                unit.contains(
                    "\nWhat=/dev/disk/by-uuid/\(uuid)\nWhere=/var/lib/containerd\nType=ext4\nOptions=defaults,noatime\n"))
            #expect(unit.contains("\nBefore=containerd.service\n") && unit.contains("\nWantedBy=multi-user.target\n"))
            let wants = node.root + "/etc/systemd/system/multi-user.target.wants/var-lib-containerd.mount"
            #expect(
                try FileManager.default.destinationOfSymbolicLink(atPath: wants)
                    == "/etc/systemd/system/var-lib-containerd.mount")
            // containerd stopped before the copy and started again once mounted, then the services.
            let actions = node.manager.actions
            #expect(
                Array(actions.prefix(4)) == [
                    "stop containerd.service", "daemon-reload", "start var-lib-containerd.mount", "start containerd.service",
                ], "\(actions)")
            #expect(try loop.files() == ["io.containerd.content.v1.content", "io.containerd.content.v1.content/blob"])
            _ = report

            // Mounted now: the second run leaves the disk and the units alone.
            node.manager.clearCalls()
            _ = try await Self.run(node, tools: tools).get()
            #expect(!node.manager.actions.contains { $0.contains(".mount") || $0.contains("stop") }, "\(node.manager.actions)")
        }
    }

    @Test(
        "one volume backing /var/lib/kubelet and /var/log/pods (mountTargets): mounted once, two bind mounts",
        .enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func sharedVolume() async throws {
        let loop = try Loop.attach()
        defer { loop.detach() }
        try await InitServiceTests.withNode { node in
            try Self.link(node, "/dev/xvdc", to: loop.device)
            let tools = try Self.tools(ebs: [loop.device], root: node.root)
            let base = "mnt-nodeboot-volumes-" + (loop.device.split(separator: "/").last.map(String.init) ?? "") + ".mount"
            Self.installMounts(node, [base, "var-lib-kubelet.mount", "var-log-pods.mount"])
            try FileManager.default.createDirectory(atPath: node.root + "/var/lib/kubelet/pki", withIntermediateDirectories: true)
            try Data("cert".utf8).write(to: URL(fileURLWithPath: node.root + "/var/lib/kubelet/pki/kubelet.crt"))
            try node.write(
                """
                  instance:
                    storage:
                      volumes:
                        - device: /dev/xvdc
                          mountTargets: [/var/lib/kubelet, /var/log/pods]
                          fsType: ext4
                """)
            _ = try await Self.run(node, tools: tools).get()
            let bind = try String(contentsOfFile: node.root + "/etc/systemd/system/var-lib-kubelet.mount", encoding: .utf8)
            #expect(bind.contains("\nRequires=\(base)\nAfter=\(base)\nBefore=kubelet.service\n"), "\(bind)")
            #expect(bind.contains("Type=none\nOptions=bind\n"))
            #expect(bind.contains("What=/mnt/nodeboot/volumes/"))
            #expect(
                Array(node.manager.actions.prefix(4)) == [
                    "daemon-reload", "start \(base)", "start var-lib-kubelet.mount", "start var-log-pods.mount",
                ])
            // The config phase's kubeconfig moved with the certificate.
            let files = try loop.files()
            #expect(
                files == [
                    "var-lib-kubelet", "var-lib-kubelet/kubeconfig", "var-lib-kubelet/pki", "var-lib-kubelet/pki/kubelet.crt",
                    "var-log-pods",
                ], "\(files)")
        }
    }

    @Test(
        "a device that is not an EBS volume: the run fails naming the field and the model, nothing formatted",
        .enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func notEBS() async throws {
        let loop = try Loop.attach()
        defer { loop.detach() }
        try await InitServiceTests.withNode { node in
            try Self.link(node, "/dev/xvdb", to: loop.device)
            let tools = try Self.tools(ebs: [])
            try node.write(
                """
                  instance:
                    storage:
                      volumes:
                        - device: /dev/xvdb
                          mountTarget: /var/lib/containerd
                """)
            let error = try #require(await Self.run(node, tools: tools).failureValue)
            #expect(
                error.message.contains(
                    "spec.instance.storage.volumes[0].device: /dev/xvdb is not an EBS volume (lsblk MODEL 'QEMU HARDDISK')"),
                "\(error)")
            #expect(error.hint?.contains("localStorage") == true)
            #expect((try? Loop.run("/usr/sbin/blkid", ["-p", loop.device])) == nil, "the device was written to")
            #expect(!node.manager.actions.contains { $0.contains("containerd") })
        }
    }

    @Test(
        "a target that is already another mount: refused naming it, the device untouched",
        .enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func foreignMount() async throws {
        let loop = try Loop.attach()
        defer { loop.detach() }
        try await InitServiceTests.withNode { node in
            try Self.link(node, "/dev/xvdb", to: loop.device)
            let tools = try Self.tools(ebs: [loop.device], root: node.root)
            let target = node.root + "/var/lib/containerd"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            try Loop.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "nodeboot-test", target])
            defer { _ = try? Loop.run("/usr/bin/umount", [target]) }
            // Even a unit of that name that systemd calls active (the bind or disk that is there) is not this volume's.
            Self.installMounts(node, ["var-lib-containerd.mount"])
            node.manager.set(
                "var-lib-containerd.mount", UnitState(loadState: "loaded", activeState: "active", subState: "mounted"))
            try node.write(
                """
                  instance:
                    storage:
                      volumes:
                        - device: /dev/xvdb
                          mountTarget: /var/lib/containerd
                          fsType: ext4
                """)
            let error = try #require(await Self.run(node, tools: tools).failureValue)
            #expect(
                error.message.contains("/var/lib/containerd is already a mount of nodeboot-test, not of /dev/xvdb"), "\(error)")
            #expect((try? Loop.run("/usr/sbin/blkid", ["-p", loop.device])) == nil, "the device was written to")
        }
    }

    /// A setup-local-disks in the node's tree that logs its arguments and whether each directory
    /// the array would bind already has a `.mount` unit, the unit the real script asks
    /// `systemctl is-active` about before it binds (amazon-eks-ami's coexistence rule).
    static func localDisksStandIn(_ node: InitServiceTests.Node) throws -> String {
        let log = node.root + "/var/log/setup-local-disks.log"
        let units = node.root + "/etc/systemd/system"
        let script =
            "#!/bin/sh\necho \"argv $*\" >> '\(log)'\n"
            + "for u in var-lib-kubelet var-lib-containerd var-log-pods; do\n"
            + "  if [ -e '\(units)'/$u.mount ]; then echo \"$u.mount present\"; else echo \"$u.mount absent\"; fi >> '\(log)'\n"
            + "done\n"
        try FileManager.default.createDirectory(atPath: node.root + "/usr/bin", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: node.root + "/var/log", withIntermediateDirectories: true)
        try Data(script.utf8).write(to: URL(fileURLWithPath: node.root + "/usr/bin/setup-local-disks"))
        try FileManager.default.setAttributes(
            [.posixPermissions: 0o755], ofItemAtPath: node.root + "/usr/bin/setup-local-disks")
        return log
    }

    @Test(
        "next to localStorage RAID0 (ebs-storage-coexist): the volume's mount unit exists before setup-local-disks runs",
        .enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func beforeLocalDisks() async throws {
        let loop = try Loop.attach()
        defer { loop.detach() }
        try await InitServiceTests.withNode { node in
            try Self.link(node, "/dev/xvdb", to: loop.device)
            let tools = try Self.tools(ebs: [loop.device], root: node.root)
            let log = try Self.localDisksStandIn(node)
            Self.installMounts(node, ["var-lib-containerd.mount"])
            try node.write(
                """
                  instance:
                    localStorage:
                      strategy: RAID0
                    storage:
                      volumes:
                        - device: /dev/xvdb
                          mountTarget: /var/lib/containerd
                          fsType: ext4
                """)
            _ = try await Self.run(node, tools: tools).get()
            #expect(node.manager.actions.contains("start var-lib-containerd.mount"), "\(node.manager.actions)")
            #expect(
                try String(contentsOfFile: log, encoding: .utf8)
                    == "argv raid0\nvar-lib-kubelet.mount absent\nvar-lib-containerd.mount present\nvar-log-pods.mount absent\n"
            )
        }
    }

    @Test(
        "a later volume's target already bound by an earlier boot's instance store array: refused before the first volume is formatted, no local disks",
        .enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func earlierLocalDiskBind() async throws {
        let first = try Loop.attach()
        defer { first.detach() }
        let second = try Loop.attach()
        defer { second.detach() }
        try await InitServiceTests.withNode { node in
            try Self.link(node, "/dev/xvdb", to: first.device)
            try Self.link(node, "/dev/xvdc", to: second.device)
            let tools = try Self.tools(ebs: [first.device, second.device], root: node.root)
            let log = try Self.localDisksStandIn(node)
            // setup-local-disks' bind mount of /var/lib/kubelet from the array, as an earlier boot left it.
            let target = node.root + "/var/lib/kubelet"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            try Loop.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "nodeboot-test-array", target])
            defer { _ = try? Loop.run("/usr/bin/umount", [target]) }
            Self.installMounts(node, ["srv-data.mount", "var-lib-kubelet.mount"])
            try node.write(
                """
                  instance:
                    localStorage:
                      strategy: RAID0
                    storage:
                      volumes:
                        - device: /dev/xvdb
                          mountTarget: /srv/data
                          fsType: ext4
                        - device: /dev/xvdc
                          mountTarget: /var/lib/kubelet
                          fsType: ext4
                """)
            let error = try #require(await Self.run(node, tools: tools).failureValue)
            #expect(
                error.message.contains(
                    "spec.instance.storage.volumes[1]: /var/lib/kubelet is already a mount of nodeboot-test-array, not of /dev/xvdc"
                ), "\(error)")
            #expect(error.hint?.contains("setup-local-disks") == true)
            #expect((try? Loop.run("/usr/sbin/blkid", ["-p", first.device])) == nil, "the first volume was formatted")
            #expect((try? Loop.run("/usr/sbin/blkid", ["-p", second.device])) == nil, "the second volume was formatted")
            #expect(!node.manager.actions.contains { $0.contains(".mount") }, "\(node.manager.actions)")
            #expect(!FileManager.default.fileExists(atPath: log), "setup-local-disks ran")
        }
    }

    @Test(
        "a target mounted after many other mounts (mountinfo past its first 4 KiB read): still refused, the device untouched",
        .enabled(if: unavailable == nil, "\(unavailable ?? "")"))
    func foreignMountLateInMountinfo() async throws {
        let loop = try Loop.attach()
        defer { loop.detach() }
        try await InitServiceTests.withNode { node in
            try Self.link(node, "/dev/xvdb", to: loop.device)
            let tools = try Self.tools(ebs: [loop.device], root: node.root)
            // A node's containers and pods make dozens of mounts; the one at the target comes last.
            var others: [String] = []
            defer { for path in others.reversed() { _ = try? Loop.run("/usr/bin/umount", [path]) } }
            for index in 0..<48 {
                let path = node.root + "/var/lib/pods-\(index)-" + String(repeating: "x", count: 40)
                try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
                try Loop.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=1k", "nodeboot-filler", path])
                others.append(path)
            }
            let target = node.root + "/var/log/pods"
            try FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
            try Loop.run("/usr/bin/mount", ["-t", "tmpfs", "-o", "size=1m", "nodeboot-test-late", target])
            others.append(target)
            let mountinfo = try #require(try NodeFileSystem.read("/proc/self/mountinfo"))
            #expect(mountinfo.count > 6000, "only \(mountinfo.count) bytes of mountinfo")
            Self.installMounts(node, ["var-log-pods.mount"])
            try node.write(
                """
                  instance:
                    storage:
                      volumes:
                        - device: /dev/xvdb
                          mountTarget: /var/log/pods
                          fsType: ext4
                """)
            let error = try #require(await Self.run(node, tools: tools).failureValue)
            #expect(
                error.message.contains("/var/log/pods is already a mount of nodeboot-test-late, not of /dev/xvdb"),
                "\(error)")
            #expect((try? Loop.run("/usr/sbin/blkid", ["-p", loop.device])) == nil, "the device was written to")
        }
    }

    @Test("a device that does not exist: the run fails before any service is touched")
    func missingDevice() async throws {
        try await InitServiceTests.withNode { node in
            try node.write(
                """
                  instance:
                    storage:
                      volumes:
                        - device: /dev/xvdz
                          mountTarget: /var/lib/containerd
                """)
            let error = try #require(await Self.run(node, tools: "/nonexistent").failureValue)
            #expect(error.message.contains("volumes[0].device: /dev/xvdz does not exist on this instance"), "\(error)")
            #expect(node.manager.actions.isEmpty)
        }
    }

    @Test("systemd-escape --path --suffix=mount, as the real tool does it")
    func unitNames() throws {
        let cases = ["/var/lib/containerd", "/mnt/a b/.x/", "/", "/.hidden/ü", "//var//log/pods/", "/srv/a-b_c:d.e"]
        let expected = [
            "var-lib-containerd.mount", "mnt-a\\x20b-.x.mount", "-.mount", "\\x2ehidden-\\xc3\\xbc.mount",
            "var-log-pods.mount", "srv-a\\x2db_c:d.e.mount",
        ]
        #expect(cases.map { UnitName.path($0, suffix: "mount") } == expected)
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/systemd-escape") {
            let output = try Loop.run("/usr/bin/systemd-escape", ["--path", "--suffix=mount"] + cases)
            #expect(output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) } == expected)
        }
    }
}

extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
