import NodeConfig
import Testing

@Suite("spec.instance.storage.volumes: decoding, merge and validation before any disk is touched")
struct StorageVolumesTests {
    static let cluster =
        "  cluster:\n    name: c\n    apiServerEndpoint: https://example.com\n    cidr: 10.100.0.0/16\n    certificateAuthority: Y2E=\n"

    static func validate(_ volumes: String) throws -> [ConfigDiagnostic] {
        let located = try MergeValidationTests.decode(
            MergeValidationTests.header + cluster + "  instance:\n    storage:\n      volumes:\n" + volumes)
        return NodeConfigValidation.validate(located).errors
    }

    @Test("nodeadm's form and nodeboot's mountTargets decode; fsType defaults to xfs")
    func decode() throws {
        let located = try MergeValidationTests.decode(
            MergeValidationTests.header + Self.cluster
                + "  instance:\n    storage:\n      volumes:\n        - device: /dev/xvdb\n          mountTarget: /var/lib/containerd\n        - {device: /dev/xvdc, mountTargets: [/var/lib/kubelet, /var/log/pods], fsType: ext4}\n"
        )
        let volumes = located.config.spec.instance.storage.volumes
        #expect(volumes.count == 2)
        #expect(volumes[0] == NodeConfig.Volume(device: "/dev/xvdb", mountTarget: "/var/lib/containerd"))
        #expect(volumes[0].filesystem == "xfs")
        #expect(volumes[1].targets == ["/var/lib/kubelet", "/var/log/pods"] && volumes[1].filesystem == "ext4")
        #expect(NodeConfigValidation.validate(located).errors.isEmpty)
    }

    @Test("a later document's volumes replace the earlier list; an empty one keeps it")
    func merge() throws {
        var base = NodeConfig()
        base.spec.instance.storage.volumes = [NodeConfig.Volume(device: "/dev/xvdb", mountTarget: "/var/lib/containerd")]
        var patch = NodeConfig()
        #expect(try base.merged(with: patch).spec.instance.storage.volumes == base.spec.instance.storage.volumes)
        patch.spec.instance.storage.volumes = [NodeConfig.Volume(device: "/dev/xvdc", mountTarget: "/data")]
        #expect(try base.merged(with: patch).spec.instance.storage.volumes == patch.spec.instance.storage.volumes)
    }

    @Test("every rule: the field, with line and a fix")
    func rules() throws {
        let errors = try Self.validate(
            """
                    - device: /dev/xvdb
                      mountTarget: /var/lib/containerd
                    - device: /dev/xvdc
                      mountTarget: /var/lib/containerd/
                    - device: xvdd
                      mountTarget: /data
                    - device: /dev/xvdb
                      mountTarget: /data2
                      fsType: btrfs
                    - device: /dev/xvde
                    - device: /dev/xvdf
                      mountTargets: [/var, relative, /data/inner]
                    - mountTarget: /data3

            """)
        let byField = Dictionary(errors.map { ($0.field, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(
            Set(byField.keys) == [
                "spec.instance.storage.volumes[1].mountTarget", "spec.instance.storage.volumes[2].device",
                "spec.instance.storage.volumes[3].device", "spec.instance.storage.volumes[3].fsType",
                "spec.instance.storage.volumes[4].mountTarget", "spec.instance.storage.volumes[5].mountTargets[0]",
                "spec.instance.storage.volumes[5].mountTargets[1]", "spec.instance.storage.volumes[5].mountTargets[2]",
                "spec.instance.storage.volumes[6].device",
            ], "\(errors)")
        #expect(
            byField["spec.instance.storage.volumes[1].mountTarget"]?.message.contains(
                "is also spec.instance.storage.volumes[0].mountTarget") == true)
        #expect(byField["spec.instance.storage.volumes[3].device"]?.message.contains("already volume 0's device") == true)
        #expect(byField["spec.instance.storage.volumes[3].fsType"]?.hint?.contains("xfs, ext4") == true)
        #expect(byField["spec.instance.storage.volumes[5].mountTargets[0]"]?.message.contains("system directory") == true)
        #expect(byField["spec.instance.storage.volumes[5].mountTargets[2]"]?.message.contains("is inside '/data'") == true)
        #expect(errors.allSatisfy { $0.hint != nil && $0.line != nil })
    }

    static func validate(localStorage: String, _ volumes: String) throws -> [ConfigDiagnostic] {
        let located = try MergeValidationTests.decode(
            MergeValidationTests.header + cluster + "  instance:\n    localStorage:\n" + localStorage
                + "    storage:\n      volumes:\n" + volumes)
        return NodeConfigValidation.validate(located).errors
    }

    @Test(
        "next to localStorage RAID0 (ebs-storage-coexist): a volume at a directory the array binds is fine, one inside it or inside mountPath is refused"
    )
    func localStorageCoexistence() throws {
        let volumes = """
                    - device: /dev/xvdb
                      mountTarget: /var/lib/containerd
                    - device: /dev/xvdc
                      mountTargets: [/var/lib/kubelet/pods, /srv/data]
                    - device: /dev/xvdd
                      mountTarget: /var/log/pods/archive
                    - device: /dev/xvde
                      mountTarget: /mnt/k8s-disks/0
                    - device: /dev/xvdf
                      mountTarget: /mnt/k8s

            """
        // The volume at /var/lib/containerd keeps it (setup-local-disks skips an active unit).
        let errors = try Self.validate(localStorage: "      strategy: RAID0\n", volumes)
        let byField = Dictionary(errors.map { ($0.field, $0) }, uniquingKeysWith: { first, _ in first })
        #expect(
            Set(byField.keys) == [
                "spec.instance.storage.volumes[1].mountTargets[0]", "spec.instance.storage.volumes[2].mountTarget",
                "spec.instance.storage.volumes[3].mountTarget",
            ], "\(errors)")
        let kubelet = try #require(byField["spec.instance.storage.volumes[1].mountTargets[0]"])
        #expect(
            kubelet.message
                == "'/var/lib/kubelet/pods' is inside /var/lib/kubelet, which localStorage's RAID0 array bind-mounts: the bind would hide the volume"
        )
        #expect(
            kubelet.hint == "mount the volume at /var/lib/kubelet itself (setup-local-disks then leaves it to the volume)")
        #expect(
            byField["spec.instance.storage.volumes[2].mountTarget"]?.hint?.contains("disabledMounts: [PodLogs]") == true)
        #expect(
            byField["spec.instance.storage.volumes[3].mountTarget"]?.message
                == "'/mnt/k8s-disks/0' is inside /mnt/k8s-disks, where localStorage (RAID0) mounts the instance store disks")
        #expect(errors.allSatisfy { $0.line != nil })

        // The bind mount disabled: /var/log/pods stays on the root filesystem, a volume inside it is fine. Another
        // mountPath frees /mnt/k8s-disks.
        let moved = try Self.validate(
            localStorage: "      strategy: RAID10\n      mountPath: /mnt/local/\n      disabledMounts: [PodLogs]\n", volumes)
        #expect(
            Set(moved.map(\.field)) == [
                "spec.instance.storage.volumes[1].mountTargets[0]"
            ], "\(moved)")
        // Mount binds nothing: only its mountPath tree is the script's.
        let mounted = try Self.validate(localStorage: "      strategy: Mount\n", volumes)
        #expect(Set(mounted.map(\.field)) == ["spec.instance.storage.volumes[3].mountTarget"], "\(mounted)")
        // Without a strategy there are no instance store disks to fight over.
        #expect(try Self.validate(localStorage: "      mountPath: /mnt/k8s-disks\n", volumes).isEmpty)
        // A volume that holds the mountPath tree is fine: systemd mounts the array after it at boot.
        #expect(
            try Self.validate(
                localStorage: "      strategy: RAID0\n      mountPath: /data/disks\n",
                "        - {device: /dev/xvdb, mountTarget: /data}\n"
            ).isEmpty)
    }
}
