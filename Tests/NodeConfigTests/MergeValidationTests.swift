import NodeConfig
import Testing

@Suite("merge (nodeadm's merge_test facts) and validation")
struct MergeValidationTests {
    static func decode(_ yaml: String, source: String = "test.yaml") throws -> LocatedConfig {
        let (config, diagnostics) = NodeConfigDecoder.decodeLocated(
            RawDocument(origin: DocumentOrigin(source: source), bytes: Array(yaml.utf8)))
        return try #require(config, "\(diagnostics)")
    }

    static let header = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n"

    @Test("strings: a later non-empty value wins, an empty one never clears")
    func strings() throws {
        var base = NodeConfig()
        var patch = NodeConfig()
        patch.spec.cluster.name = "override"
        #expect(try base.merged(with: patch).spec.cluster.name == "override")
        base.spec.cluster.name = "previous"
        patch.spec.cluster.name = "next"
        #expect(try base.merged(with: patch).spec.cluster.name == "next")
        patch.spec.cluster.name = ""
        #expect(try base.merged(with: patch).spec.cluster.name == "previous")
    }

    @Test("kubelet config deep-merged, flags appended, gates per key, enableOutpost false keeps true")
    func kubelet() throws {
        let base = try Self.decode(
            Self.header
                + "  cluster:\n    enableOutpost: true\n  featureGates:\n    InstanceIdNodeName: true\n  kubelet:\n    config:\n      logging: {verbosity: 5}\n      podsPerCore: 20\n      systemReserved: {cpu: 150m}\n    flags: [--node-labels=nodegroup=example, --register-with-taints=the=taint:NoSchedule]\n"
        )
        let patch = try Self.decode(
            Self.header
                + "  cluster:\n    enableOutpost: false\n  featureGates:\n    InstanceIdNodeName: false\n  kubelet:\n    config:\n      logging: {verbosity: 2}\n      maxPods: 150\n    flags: [--node-labels=nodegroup=user-set]\n",
            source: "second.yaml")
        let merged = try base.merged(with: patch)
        let kubelet = merged.config.spec.kubelet
        #expect(
            kubelet.config
                == .object([
                    "logging": .object(["verbosity": .int(2)]), "maxPods": .int(150), "podsPerCore": .int(20),
                    "systemReserved": .object(["cpu": .string("150m")]),
                ]))
        #expect(
            kubelet.flags == [
                "--node-labels=nodegroup=example", "--register-with-taints=the=taint:NoSchedule",
                "--node-labels=nodegroup=user-set",
            ])
        #expect(merged.config.spec.cluster.enableOutpost == true)
        #expect(merged.config.spec.featureGates["InstanceIdNodeName"] == false)
        // The appended flag keeps the place it came from.
        #expect(merged.location(of: "spec.kubelet.flags[2]").origin.source == "second.yaml")
        #expect(merged.location(of: "spec.kubelet.flags[0]").origin.source == "test.yaml")
    }

    @Test("inline documents: lists are replaced, not merged")
    func lists() throws {
        let base = ConfigValue.object(["process": .object(["rlimits": .array([.object(["soft": .int(1024)])])])])
        let patch = ConfigValue.object(["process": .object(["rlimits": .array([.object(["hard": .int(1024)])])])])
        #expect(
            base.merged(with: patch)
                == .object(["process": .object(["rlimits": .array([.object(["hard": .int(1024)])])])]))
    }

    @Test("containerd TOML: deep-merged and written canonically (nodeadm's unit test)")
    func toml() throws {
        var base = NodeConfig()
        base.spec.containerd.config = "[a.b.c.d]\nf = 0"
        var patch = NodeConfig()
        patch.spec.containerd.config = "[a.b.c.d]\ne = 0"
        #expect(try base.merged(with: patch).spec.containerd.config == "[a]\n[a.b]\n[a.b.c]\n[a.b.c.d]\ne = 0\nf = 0\n")
        // Only one side: verbatim.
        #expect(try NodeConfig().merged(with: patch).spec.containerd.config == "[a.b.c.d]\ne = 0")
    }

    @Test("validation collects every problem, each with its line and a fix")
    func everyProblem() throws {
        let located = try Self.decode(
            Self.header
                + "  cluster:\n    name: my cluster\n    apiServerEndpoint: ftp://example.com\n    cidr: 10.100.0.0/33\n    enableOutpost: true\n  instance:\n    localStorage:\n      strategy: RAID5\n      mountPath: ../disks\n    environment:\n      ../../etc/evil:\n        A: b\n    network:\n      nameservers: [8.8.8.888]\n  kubelet:\n    flags: [\"--v=2\\nEVIL=1\"]\n"
        )
        let result = NodeConfigValidation.validate(located)
        let fields = Set(result.errors.map(\.field))
        #expect(
            fields == [
                "spec.cluster.name", "spec.cluster.apiServerEndpoint", "spec.cluster.cidr", "spec.cluster.id",
                "spec.instance.localStorage.strategy", "spec.instance.localStorage.mountPath",
                "spec.instance.environment[\"../../etc/evil\"]", "spec.instance.network.nameservers[0]",
                "spec.kubelet.flags[0]",
            ])
        let cidr = try #require(result.errors.first { $0.field == "spec.cluster.cidr" })
        #expect(cidr.line == 7)
        #expect(cidr.hint != nil)
        #expect(result.missingClusterFields == ["certificateAuthority"])
    }

    @Test("a CA: no PEM armor is a warning (nodeadm's suite uses a placeholder); a key or a broken block is an error")
    func certificateAuthority() throws {
        func problems(_ pem: String) throws -> [ConfigDiagnostic] {
            let base64 = try #require(Base64Text.encode(Array(pem.utf8)))
            let located = try Self.decode(
                Self.header
                    + "  cluster:\n    name: c\n    apiServerEndpoint: https://example.com\n    cidr: 10.100.0.0/16\n    certificateAuthority: \(base64)\n"
            )
            return NodeConfigValidation.validate(located).diagnostics
        }
        #expect(try problems("certificateAuthority").map(\.severity) == [.warning])
        #expect(
            try problems("-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----\n").map(\.severity) == [.error])
        #expect(try problems("-----BEGIN CERTIFICATE-----\nMIIB\n").map(\.severity) == [.error])
        #expect(try problems("-----BEGIN CERTIFICATE-----\nMIIBCg==\n-----END CERTIFICATE-----\n").isEmpty)
    }

    @Test("CIDRs and addresses, strictly")
    func addresses() {
        for good in ["10.100.0.0/16", "172.20.0.0/16", "fd00:1234::/108", "fc00::/7", "0.0.0.0/0", "::/0"] {
            #expect(CIDR(good) != nil, "\(good)")
        }
        for bad in ["10.100.0.0/33", "300.1.0.0/16", "fd00::/129", "10.100.0.0", "10.01.0.0/16", "1::2::3/64", "/16", "a/b"] {
            #expect(CIDR(bad) == nil, "\(bad)")
        }
        #expect(IPAddress("::ffff:10.0.0.1")?.isIPv4 == true)
        #expect(IPAddress("2001:db8::1")?.isIPv4 == false)
    }
}

/// Standard base64 for test fixtures.
enum Base64Text {
    static func encode(_ bytes: [UInt8]) -> String? {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/")
        var out = ""
        var index = 0
        while index < bytes.count {
            let chunk = Array(bytes[index..<min(index + 3, bytes.count)])
            let value = chunk.enumerated().reduce(0) { $0 | Int($1.element) << (16 - 8 * $1.offset) }
            for position in 0..<4 {
                out.append(position <= chunk.count ? alphabet[(value >> (18 - 6 * position)) & 63] : "=")
            }
            index += 3
        }
        return out
    }
}
