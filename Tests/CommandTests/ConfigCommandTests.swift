import Foundation
import TestSupport
import Testing

/// `nodeboot config check` and `config dump` as an operator runs them: the real binary, files
/// as config sources, no network.
@Suite("nodeboot config check and dump")
struct ConfigCommandTests {
    static let binary = Paths.debugBinaries.appendingPathComponent("nodeboot").path

    /// Every kind of field: strings, lists, maps, nested kubelet config, a multi-line containerd
    /// TOML, per-unit environment, feature gates, local storage, DNS.
    static let rich =
        NodeFixture.config + """

              kubelet:
                config:
                  maxPods: 58
                  clusterDNS:
                  - 1.1.1.1
                  evictionHard:
                    memory.available: "100Mi"
                  shutdownGracePeriod: 30s
                flags:
                - --node-labels=team=infra,tier=2
                - --register-with-taints=dedicated=infra:NoSchedule
              containerd:
                config: |
                  [plugins."io.containerd.grpc.v1.cri".containerd]
                  discard_unpacked_layers = false
              instance:
                localStorage:
                  strategy: RAID0
                environment:
                  default:
                    HTTP_PROXY: http://proxy.internal:3128
                    NO_PROXY: "169.254.169.254,localhost"
                  kubelet:
                    GOMAXPROCS: "2"
                network:
                  nameservers:
                  - 10.0.0.2
                  domains:
                  - corp.example.com
              featureGates:
                InstanceIdNodeName: true
            """

    /// A second document merged over the first (nodeadm's rules: later strings win, maps merge).
    static let overlay = """
        apiVersion: node.eks.aws/v1alpha1
        kind: NodeConfig
        spec:
          kubelet:
            config:
              systemReserved:
                cpu: 150m
        """

    static func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func write(_ text: String, _ path: String) throws -> String {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return "file://" + path
    }

    /// Runs nodeboot with only the config sources as input (no AWS endpoint: nothing may be fetched).
    static func nodeboot(_ arguments: [String]) async throws -> ChildProcess.Result {
        try await ChildProcess.run([binary] + arguments, environment: ChildProcess.cleanEnvironment([:]))
    }

    static func json(_ text: String) throws -> NSDictionary {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? NSDictionary)
    }

    /// The member at a dotted path (`spec.cluster.name`).
    static func value(_ json: NSDictionary, _ path: String) -> Any? {
        var current: Any? = json
        for key in path.split(separator: ".") { current = (current as? NSDictionary)?[String(key)] }
        return current
    }

    @Test("check: a valid config exits 0; the cluster fields left to DescribeCluster are a note")
    func check() async throws {
        let dir = try Self.directory()
        let full = try Self.write(Self.rich, dir + "/full.yaml")
        let partial = try Self.write(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: c\n", dir + "/partial.yaml")
        let ok = try await Self.nodeboot(["config", "check", "-c", full])
        #expect(ok.status == 0, "stderr: \(ok.stderr)")
        #expect(ok.stdout == "Configuration is valid\n")
        let missing = try await Self.nodeboot(["config", "check", "-c", partial])
        #expect(missing.status == 0, "stderr: \(missing.stderr)")
        #expect(
            missing.stderr.contains(
                "note: spec.cluster.apiServerEndpoint, certificateAuthority, cidr not given: init reads them with one DescribeCluster"
            ), "\(missing.stderr)")
    }

    @Test("check: every problem with its place and fix, exit 2, nothing on stdout")
    func checkRefuses() async throws {
        let dir = try Self.directory()
        let bad = try Self.write(
            """
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            spec:
              cluster:
                name: my-cluster
                cidr: 10.100.0.0/33
              kubelet:
                maxPodsExpression: "max_pods +"
            """, dir + "/bad.yaml")
        let result = try await Self.nodeboot(["config", "check", "-c", bad])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("bad.yaml: line 6: spec.cluster.cidr"), "\(result.stderr)")
        let strict = try await Self.nodeboot([
            "config", "check", "--strict", "-c",
            try Self.write(Self.rich + "\n  unknownField: 1\n", dir + "/unknown.yaml"),
        ])
        #expect(strict.status == 2)
        #expect(strict.stderr.contains("unknownField"), "\(strict.stderr)")
    }

    @Test("dump: the merged config in JSON, both documents merged")
    func dumpJSON() async throws {
        let dir = try Self.directory()
        let sources = [
            "-c", try Self.write(Self.rich, dir + "/10-rich.yaml"), "-c", try Self.write(Self.overlay, dir + "/20-overlay.yaml"),
        ]
        let dump = try await Self.nodeboot(["config", "dump"] + sources)
        #expect(dump.status == 0, "stderr: \(dump.stderr)")
        let json = try Self.json(dump.stdout)
        #expect(json["apiVersion"] as? String == "node.eks.aws/v1alpha1")
        #expect(json["kind"] as? String == "NodeConfig")
        #expect(Self.value(json, "spec.cluster.name") as? String == "my-cluster")
        #expect(Self.value(json, "spec.kubelet.config.maxPods") as? Int == 58)
        #expect(Self.value(json, "spec.kubelet.config.systemReserved.cpu") as? String == "150m")
        #expect((Self.value(json, "spec.kubelet.flags") as? [String])?.count == 2)
        #expect(
            (Self.value(json, "spec.containerd.config") as? String)?.contains("discard_unpacked_layers = false") == true)
        #expect(Self.value(json, "spec.instance.environment.kubelet.GOMAXPROCS") as? String == "2")
        #expect(Self.value(json, "spec.featureGates.InstanceIdNodeName") as? Bool == true)
    }

    @Test(
        "dump round trip: the dump (JSON or YAML) passes config check and dumps to the same merged config",
        arguments: ["json", "yaml"])
    func roundTrip(format: String) async throws {
        let dir = try Self.directory()
        let sources = [
            "-c", try Self.write(Self.rich, dir + "/10-rich.yaml"), "-c", try Self.write(Self.overlay, dir + "/20-overlay.yaml"),
        ]
        let reference = try await Self.nodeboot(["config", "dump", "-o", "json"] + sources)
        let dump = try await Self.nodeboot(["config", "dump", "-o", format] + sources)
        #expect(dump.status == 0, "stderr: \(dump.stderr)")
        if format == "yaml" {
            #expect(dump.stdout.hasPrefix("apiVersion: \"node.eks.aws/v1alpha1\"\nkind: \"NodeConfig\"\nspec:\n"))
        }
        let again = try Self.write(dump.stdout, dir + "/dump.\(format)")
        let check = try await Self.nodeboot(["config", "check", "-c", again])
        #expect(check.status == 0, "stderr: \(check.stderr)\ndump:\n\(dump.stdout)")
        // Only the placeholder CA's warning (the source has it too): every dumped field is known.
        #expect(!check.stderr.contains("unknown"), "\(check.stderr)")
        let redump = try await Self.nodeboot(["config", "dump", "-o", "json", "-c", again])
        #expect(redump.status == 0, "stderr: \(redump.stderr)")
        #expect(try Self.json(redump.stdout) == Self.json(reference.stdout))
        #expect(redump.stdout == reference.stdout)
    }

    @Test("dump of nodeadm's MIME user data merges its NodeConfig parts and skips the shell script")
    func dumpMIME() async throws {
        let mime = Paths.conformance.appendingPathComponent("nodeadm/mime-userdata-merge/config.yaml").path
        let dump = try await Self.nodeboot(["config", "dump", "-o", "yaml", "-c", "file://" + mime])
        #expect(dump.status == 0, "stderr: \(dump.stderr)")
        #expect(dump.stdout.contains("maxPods: 58"), "\(dump.stdout)")
        #expect(dump.stdout.contains("cpu: \"150m\""), "\(dump.stdout)")
        #expect(!dump.stdout.contains("hello"))
    }
}
