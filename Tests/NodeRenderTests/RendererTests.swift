import Foundation
import NodeConfig
import NodeRender
import TestSupport
import Testing

@Suite("renderers (nodeadm's unit-test facts and goldens)")
struct RendererTests {
    static func context(_ mutate: (inout NodeConfig) -> Void = { _ in }, kubelet: String = "1.35.0") -> RenderContext {
        var config = NodeConfig()
        config.spec.cluster.name = "my-cluster"
        config.spec.cluster.apiServerEndpoint = "https://example.com"
        config.spec.cluster.certificateAuthority = "Y2VydGlmaWNhdGVBdXRob3JpdHk="
        config.spec.cluster.cidr = "10.100.0.0/16"
        mutate(&config)
        return RenderContext(
            config: config,
            instance: InstanceDetails(
                id: "i-1234567890abcdef0", region: "us-west-2", type: "m4.xlarge", availabilityZone: "us-west-2f",
                mac: "0e:49:61:0f:c3:11", privateDnsName: "ip-172-16-34-43.ec2.internal", nodeIP: "172.16.34.43"),
            kubeletVersion: ComponentVersion(parsing: kubelet)!, containerdVersion: ComponentVersion(1, 7, 27),
            maxPods: 58, onlineCPUs: 2)
    }

    @Test("cluster DNS from the service CIDR (net_test)")
    func clusterDNS() {
        #expect(KubeletConfig.clusterDNS(cidr: "10.100.0.0/16") == "10.100.0.10")
        #expect(KubeletConfig.clusterDNS(cidr: "172.20.0.0/16") == "172.20.0.10")
        #expect(KubeletConfig.clusterDNS(cidr: "fc00::/7") == "fc00::a")
        #expect(KubeletConfig.clusterDNS(cidr: "fd00:1234::/108") == "fd00:1234::a")
    }

    @Test("resolved drop-in: the exact strings of resolve_test")
    func resolved() {
        func render(_ nameservers: [String], _ domains: [String]) -> String? {
            var network = NodeConfig.Network()
            network.nameservers = nameservers
            network.domains = domains
            return ResolvedConfig.render(network)
        }
        #expect(render([], []) == nil)
        #expect(render(["8.8.8.8", "8.8.4.4"], []) == "[Resolve]\nDNS=8.8.8.8 8.8.4.4\n\n")
        #expect(render([], ["example.com", "test.local"]) == "[Resolve]\n\nDomains=example.com test.local\n")
        #expect(
            render(["1.1.1.1", "1.0.0.1"], ["company.com", "internal.local"])
                == "[Resolve]\nDNS=1.1.1.1 1.0.0.1\nDomains=company.com internal.local\n")
    }

    @Test("systemd environment: Go quoting, % doubled, an escaped quote at the end kept, newlines never raw")
    func environment() {
        #expect(SystemdEnvironment.escape("value with \"quotes\" inside") == "value with \\\"quotes\\\" inside")
        #expect(SystemdEnvironment.escape("a\"") == "a\\\"")
        #expect(SystemdEnvironment.escape("50%") == "50%%")
        #expect(SystemdEnvironment.escape("a\nEVIL=1") == "a\\nEVIL=1")
        let files = SystemdEnvironment.files(["kubelet": ["B": "2", "A": "1"], "containerd": [:]])
        #expect(files.map(\.path) == ["/etc/systemd/system/kubelet.service.d/environment.conf"])
        #expect(String(decoding: files[0].bytes, as: UTF8.self) == "[Service]\nEnvironment=\"A=1\"\nEnvironment=\"B=2\"\n")
    }

    @Test("kubeconfig with --token-helper aws is nodeadm's golden, byte for byte")
    func kubeconfigGolden() throws {
        var context = Self.context()
        context.tokenHelper = .aws
        let golden = try String(
            contentsOf: Paths.conformance.appendingPathComponent("nodeadm/kubeconfig/expected-kubeconfig.yaml"),
            encoding: .utf8)
        #expect(KubeletConfig.kubeconfig(context) == golden)
    }

    @Test("flags: nodeadm's in a fixed order, the user's last; the dropin-alpha variable before 1.30")
    func flags() {
        let context = Self.context({ $0.spec.kubelet.flags = ["--v=5"] }, kubelet: "1.29.0")
        let flags = KubeletConfig.flags(context)
        #expect(flags.first == "--node-ip=172.16.34.43")
        #expect(flags.last == "--v=5")
        #expect(!flags.contains { $0.hasPrefix("--pod-infra-container-image") })
        let withDropIn = Self.context({ $0.spec.kubelet.config = .object(["maxPods": .int(1)]) }, kubelet: "1.29.0")
        #expect(KubeletConfig.environment(withDropIn).hasPrefix("KUBELET_CONFIG_DROPIN_DIR_ALPHA=on\nNODEADM_KUBELET_ARGS="))
        #expect(!KubeletConfig.environment(withDropIn).hasSuffix("\n"))
    }

    @Test("version toggles (config_test)")
    func toggles() throws {
        func gates(_ version: String) throws -> [String: Any] {
            let json = KubeletConfig.config(Self.context(kubelet: version))
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            return try #require(object["featureGates"] as? [String: Any])
        }
        #expect(try gates("1.32.0").keys.sorted() == ["RotateKubeletServerCertificate"])
        #expect(try gates("1.33.0").keys.sorted() == ["DynamicResourceAllocation", "RotateKubeletServerCertificate"])
        #expect(try gates("1.34.0").count == 3)
    }

    @Test("/etc/hosts: an outpost's lines are appended once")
    func hosts() {
        let first = HostsFile.appending(addresses: ["127.0.0.1", "::1"], host: "localhost", to: Array("10.0.0.1 x".utf8))
        #expect(first.map { String(decoding: $0, as: UTF8.self) } == "10.0.0.1 x\n127.0.0.1\tlocalhost\n::1\tlocalhost\n")
        #expect(HostsFile.appending(addresses: ["127.0.0.1", "::1"], host: "localhost", to: first) == nil)
    }

    @Test("versions: the first x.y.z, as nodeadm's regexes")
    func versions() {
        #expect(ComponentVersion(parsing: "Kubernetes v1.35.0-eks-5e0fdde") == ComponentVersion(1, 35, 0))
        #expect(
            ComponentVersion(parsing: "containerd github.com/containerd/containerd v1.7.27 05044ec0")
                == ComponentVersion(1, 7, 27))
        #expect(ComponentVersion(parsing: "no version") == nil)
    }

    @Test("the embedded default base runtime spec is nodeadm's, byte for byte")
    func baseRuntimeSpec() throws {
        let golden = try String(
            contentsOf: Paths.conformance.appendingPathComponent("nodeadm/_infra/base-runtime-spec.json"), encoding: .utf8)
        #expect(BaseRuntimeSpec.defaultText == golden)
    }

    @Test("JSON text: Go's escaping")
    func json() {
        #expect(JSONText.string("<a&b>\n\u{1}").rendered(indent: 0) == "\"\\u003ca\\u0026b\\u003e\\n\\u0001\"")
        #expect(JSONText.object([]).rendered(indent: 4) == "{}")
    }
}
