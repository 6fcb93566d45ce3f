import NodeConfig
import NodeRender
import Testing

@Suite("ipamd.json renderer (IPAMDSpec)")
struct IPAMDSpecTests {
    static func context(_ mutate: (inout NodeConfig) -> Void = { _ in }) -> RenderContext {
        var context = RendererTests.context(mutate)
        context.instance.type = "m5.large"
        context.maxPods = 29
        context.networkLimits = ENILimits(maxENIs: 3, ipv4PerENI: 10, source: "table")
        return context
    }

    @Test("golden bytes: fixed key order, compact, one trailing newline")
    func golden() throws {
        #expect(
            try IPAMDSpec.render(Self.context())
                == #"{"schema":"nodeboot.ipamd/v1","cluster":"my-cluster","ipFamily":"ipv4","maxPods":29,"instanceType":"m5.large","limits":{"maxENIs":3,"ipv4PerENI":10,"source":"table"},"vethPrefix":"eni"}"#
                + "\n")
    }

    @Test("an IPv6 service CIDR, limits from DescribeInstanceTypes; unknown limits are left out")
    func variants() throws {
        var context = Self.context { $0.spec.cluster.cidr = "fd00:1234::/108" }
        context.networkLimits = ENILimits(maxENIs: 15, ipv4PerENI: 50, source: "DescribeInstanceTypes")
        #expect(
            try IPAMDSpec.render(context)
                == #"{"schema":"nodeboot.ipamd/v1","cluster":"my-cluster","ipFamily":"ipv6","maxPods":29,"instanceType":"m5.large","limits":{"maxENIs":15,"ipv4PerENI":50,"source":"DescribeInstanceTypes"},"vethPrefix":"eni"}"#
                + "\n")
        context.networkLimits = nil
        context.maxPods = 110
        #expect(
            try IPAMDSpec.render(context)
                == #"{"schema":"nodeboot.ipamd/v1","cluster":"my-cluster","ipFamily":"ipv6","maxPods":110,"instanceType":"m5.large","vethPrefix":"eni"}"#
                + "\n")
    }

    @Test("maxPods is the kubelet's effective value: the user's kubelet.config.maxPods wins")
    func userMaxPods() throws {
        let context = Self.context { $0.spec.kubelet.config = .object(["maxPods": .int(17)]) }
        #expect(try IPAMDSpec.maxPods(context) == 17)
        #expect(try IPAMDSpec.render(context).contains(#""maxPods":17,"#))
        #expect(try IPAMDSpec.maxPods(Self.context { $0.spec.kubelet.config = .object(["maxPods": .double(40)]) }) == 40)
        let zero = Self.context { $0.spec.kubelet.config = .object(["maxPods": .int(0)]) }
        let error = #expect(throws: RenderError.self) { try IPAMDSpec.render(zero) }
        #expect(error?.field == "spec.kubelet.config.maxPods")
    }

    @Test("rendered only when nodeboot-ipamd is among the daemons, as a file of nodeboot-ipamd.service")
    func selection() throws {
        var context = Self.context()
        context.daemons = Daemon.defaults
        let defaults = try NodeRenderer.render(context)
        #expect(!defaults.contains { $0.path == IPAMDSpec.path })
        context.daemons = [.containerd, .ipamd, .kubelet]
        let withIPAMD = try NodeRenderer.render(context)
        let file = try #require(withIPAMD.first { $0.path == "/etc/nodeboot/ipamd.json" })
        #expect(file.mode == 0o644 && file.units == [.ipamd] && !file.reloadsSystemd)
        #expect(file.bytes == Array(try IPAMDSpec.render(context).utf8))
        // Nothing else changes: the same files in the same order, the spec added.
        #expect(withIPAMD.filter { $0.path != IPAMDSpec.path } == defaults)
    }
}
