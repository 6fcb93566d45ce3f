import Bootstrap
import Foundation
import IPAM
import NodeConfig
import NodeRender
import TestSupport
import Testbed
import Testing

/// `/etc/nodeboot/ipamd.json` as `init` writes it and as the daemon reads it (NodeRender's
/// writer against IPAM's reader).
@Suite("init writes ipamd.json; NodeSpec reads it back", .serialized)
struct IPAMDSpecInitTests {
    @Test("--daemon nodeboot-ipamd: the file from discovery (m4.xlarge from the table), read back to the same values")
    func initWritesIt() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        // Debian's reference plugins on the node; the image brings its own portmap.
        try FileManager.default.createDirectory(atPath: root + "/usr/lib/cni", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: root + "/opt/cni/bin", withIntermediateDirectories: true)
        for plugin in ["loopback", "portmap"] {
            FileManager.default.createFile(atPath: root + "/usr/lib/cni/" + plugin, contents: Data("#!/bin/true\n".utf8))
        }
        FileManager.default.createFile(atPath: root + "/opt/cni/bin/portmap", contents: Data("own\n".utf8))
        var options = InitBehaviourTests.options(root: root, sources: [.file(try NodeFixture.configFile())])
        options.daemons = [.containerd, .ipamd, .kubelet]
        let result = await InitBehaviourTests.initRun(options, environment: testbed.environment)
        // nodeadm's two (the default): no ipamd.json.
        let plainRoot = try NodeFixture.root()
        let plain = await InitBehaviourTests.initRun(
            InitBehaviourTests.options(root: plainRoot, sources: [.file(try NodeFixture.configFile())]),
            environment: testbed.environment)
        try await testbed.shutdown()

        #expect(result.error == nil, "\(String(describing: result.error))")
        let path = root + NodeSpec.path
        let bytes = try String(contentsOfFile: path, encoding: .utf8)
        #expect(
            bytes
                == #"{"schema":"nodeboot.ipamd/v1","cluster":"my-cluster","ipFamily":"ipv4","maxPods":58,"instanceType":"m4.xlarge","limits":{"maxENIs":4,"ipv4PerENI":15,"source":"table"},"vethPrefix":"eni"}"#
                + "\n")
        let mode = try FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? Int
        #expect(mode == 0o644)
        #expect(
            try NodeSpec.load(path)
                == NodeSpec(
                    cluster: "my-cluster", ipFamily: .ipv4, maxPods: 58, instanceType: "m4.xlarge",
                    limits: NodeSpec.Limits(maxENIs: 4, ipv4PerENI: 15, source: "table"), vethPrefix: "eni"))
        #expect(result.report?.files.contains { $0.path == NodeSpec.path } == true)
        // The plugin beside nodeboot and Debian's loopback in containerd's bin dir; the image's own portmap kept.
        let nodebootDirectory = (options.nodebootPath as NSString).deletingLastPathComponent
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: root + "/opt/cni/bin/nodeboot-cni")
                == nodebootDirectory + "/nodeboot-cni")
        #expect(
            try FileManager.default.destinationOfSymbolicLink(atPath: root + "/opt/cni/bin/loopback") == "/usr/lib/cni/loopback")
        #expect(try String(contentsOfFile: root + "/opt/cni/bin/portmap", encoding: .utf8) == "own\n")

        #expect(plain.error == nil, "\(String(describing: plain.error))")
        #expect(!FileManager.default.fileExists(atPath: plainRoot + NodeSpec.path))
        #expect(plain.report?.files.contains { $0.path == NodeSpec.path } == false)
        #expect(!FileManager.default.fileExists(atPath: plainRoot + "/opt/cni/bin/nodeboot-cni"))
    }

    @Test(
        "round trip: what IPAMDSpec renders, NodeSpec parses to the same values",
        arguments: [
            ("10.100.0.0/16", nil, ENILimits(maxENIs: 3, ipv4PerENI: 10, source: "table")),
            ("fd00:1234::/108", 17, ENILimits(maxENIs: 15, ipv4PerENI: 50, source: "DescribeInstanceTypes")),
            ("172.20.0.0/16", 250, nil),
        ] as [(String, Int?, ENILimits?)])
    func roundTrip(_ cidr: String, _ userMaxPods: Int?, _ limits: ENILimits?) throws {
        var config = NodeConfig()
        config.spec.cluster.name = "prod-east"
        config.spec.cluster.cidr = cidr
        if let userMaxPods { config.spec.kubelet.config = .object(["maxPods": .int(userMaxPods)]) }
        var context = RenderContext(
            config: config,
            instance: InstanceDetails(
                id: "i-0abc", region: "us-east-1", type: "m5.large", availabilityZone: "us-east-1a", mac: "0e:00:00:00:00:01",
                privateDnsName: "", nodeIP: "10.0.0.5"),
            kubeletVersion: ComponentVersion(1, 35, 0), containerdVersion: ComponentVersion(1, 7, 27), maxPods: 29,
            onlineCPUs: 2)
        context.networkLimits = limits
        let bytes = Array(try IPAMDSpec.render(context).utf8)
        let spec = try NodeSpec.parse(bytes)
        #expect(spec.cluster == "prod-east")
        #expect(spec.ipFamily == (cidr.contains(":") ? .ipv6 : .ipv4))
        #expect(spec.maxPods == (userMaxPods ?? 29))
        #expect(spec.instanceType == "m5.large")
        #expect(spec.limits?.maxENIs == limits?.maxENIs)
        #expect(spec.limits?.ipv4PerENI == limits?.ipv4PerENI)
        #expect(spec.limits?.source == limits?.source)
        #expect(spec.vethPrefix == IPAMDSpec.vethPrefix)
        #expect(IPAMDSpec.path == NodeSpec.path && IPAMDSpec.schema == NodeSpec.schema)
    }
}
