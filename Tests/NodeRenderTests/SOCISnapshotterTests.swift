import Foundation
import NodeConfig
import NodeRender
import TOML
import TestSupport
import Testing

@Suite("FastImagePull: the SOCI snapshotter (nodeadm's containerd_config_test thresholds and files)")
struct SOCISnapshotterTests {
    static func context(gate: Bool?, cpus: Int, gibibytes: Double, containerd: ComponentVersion = ComponentVersion(1, 7, 27))
        -> RenderContext
    {
        var context = RendererTests.context { config in
            if let gate { config.spec.featureGates["FastImagePull"] = gate }
        }
        context.onlineCPUs = cpus
        context.onlineMemoryBytes = UInt64(gibibytes * Double(1 << 30))
        context.containerdVersion = containerd
        return context
    }

    static func text(_ files: [NodeFile], _ path: String) -> String? {
        files.first { $0.path == path }.map { String(decoding: $0.bytes, as: UTF8.self) }
    }

    @Test(
        "on only with the gate, ≥ 4 CPUs and ≥ 7 GiB (nodeadm's table, both containerd majors)",
        arguments: [
            (nil as Bool?, 4, 7.0, false), (true, 2, 4.0, false), (true, 4, 6.0, false), (true, 4, 8.0, true),
            (true, 4, 7.0, true), (false, 8, 32.0, false), (true, 3, 64.0, false),
        ])
    func thresholds(gate: Bool?, cpus: Int, gibibytes: Double, expected: Bool) throws {
        for containerd in [ComponentVersion(1, 7, 27), ComponentVersion(2, 1, 0)] {
            let context = Self.context(gate: gate, cpus: cpus, gibibytes: gibibytes, containerd: containerd)
            #expect(SOCISnapshotter.decision(context).enabled == expected)
            let files = try NodeRenderer.render(context)
            let toml = try #require(Self.text(files, ContainerdConfig.path))
            #expect(toml.contains("snapshotter = 'soci'") == expected, "\(containerd)")
            #expect(toml.contains("[proxy_plugins.soci]") == expected)
            #expect((Self.text(files, SOCISnapshotter.configPath) != nil) == expected)
            #expect((Self.text(files, SOCISnapshotter.dropInPath) != nil) == expected)
            let kubelet = try #require(Self.text(files, KubeletConfig.configPath))
            #expect(kubelet.contains("\"imageServiceEndpoint\"") == expected)
            // Asked for and refused: the reason names what the instance lacks.
            let reason = SOCISnapshotter.decision(context).reason
            #expect((reason != nil) == (gate == true && !expected))
            if let reason { #expect(reason.contains("\(cpus) and")) }
        }
    }

    @Test("the snapshotter config is nodeadm's file byte for byte; the drop-in needs a daemon-reload")
    func files() throws {
        let files = try NodeRenderer.render(Self.context(gate: true, cpus: 4, gibibytes: 8))
        let expected = try String(
            contentsOf: Paths.conformance.appendingPathComponent("nodeadm/_infra/soci-snapshotter.config.toml"),
            encoding: .utf8)
        #expect(Self.text(files, SOCISnapshotter.configPath) == expected)
        let dropIn = try #require(files.first { $0.path == SOCISnapshotter.dropInPath })
        #expect(
            String(decoding: dropIn.bytes, as: UTF8.self)
                == "[Unit]\nRequires=soci-snapshotter.service\nAfter=soci-snapshotter.service\n")
        #expect(dropIn.reloadsSystemd && dropIn.units == [.containerd])
        let kubelet = try #require(Self.text(files, KubeletConfig.configPath))
        #expect(kubelet.contains("\"imageServiceEndpoint\": \"unix:///run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock\""))
        #expect(SOCISnapshotter.importArguments.last == "/etc/eks/pause.tar")
    }

    @Test("containerd's config: the snapshotter in the CRI table of each schema, the proxy plugin, a user mirror kept")
    func containerdConfig() throws {
        func table(_ toml: String, _ header: String) -> [String] {
            let lines = toml.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
            guard let start = lines.firstIndex(of: header) else { return [] }
            return Array(lines[(start + 1)...].prefix { !$0.hasPrefix("[") && !$0.isEmpty })
        }
        let v2 = try ContainerdConfig.render(Self.context(gate: true, cpus: 4, gibibytes: 8))
        #expect(
            table(v2, "[plugins.'io.containerd.grpc.v1.cri'.containerd]") == [
                "default_runtime_name = 'runc'", "disable_snapshot_annotations = false",
                "discard_unpacked_layers = true", "snapshotter = 'soci'",
            ])
        #expect(
            table(v2, "[proxy_plugins.soci]") == [
                "address = '/run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock'", "type = 'snapshot'",
            ])
        #expect(table(v2, "[proxy_plugins.soci.exports]") == ["root = '/var/lib/soci-snapshotter-grpc'"])
        let v3 = try ContainerdConfig.render(
            Self.context(gate: true, cpus: 4, gibibytes: 8, containerd: ComponentVersion(2, 1, 0)))
        #expect(
            table(v3, "[plugins.'io.containerd.cri.v1.images']") == [
                "disable_snapshot_annotations = false", "discard_unpacked_layers = true", "snapshotter = 'soci'",
            ])
        #expect(table(v3, "[proxy_plugins.soci.exports]") == ["root = '/var/lib/soci-snapshotter-grpc'"])
        // nodeadm's test: with SOCI, a user's registry mirror stays beside the snapshotter.
        var context = Self.context(gate: true, cpus: 4, gibibytes: 8)
        context.config.spec.containerd.config = """
            [plugins."io.containerd.grpc.v1.cri".registry.mirrors."docker.io"]
            endpoint = ["https://mirror.example"]
            """
        let merged = try ContainerdConfig.render(context)
        #expect(merged.contains("snapshotter = 'soci'") && merged.contains("https://mirror.example"))
        // Off: not a line of it.
        let off = try ContainerdConfig.render(Self.context(gate: false, cpus: 4, gibibytes: 8))
        #expect(!off.contains("soci") && !off.contains("proxy_plugins"))
    }
}
