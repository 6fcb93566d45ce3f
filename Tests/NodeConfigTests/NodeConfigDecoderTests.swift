import Foundation
import NodeConfig
import TestSupport
import Testing

@Suite("NodeConfig decoding")
struct NodeConfigDecoderTests {
    static func decode(_ text: String, source: String = "user data") throws -> (
        config: NodeConfig?, diagnostics: [ConfigDiagnostic]
    ) {
        let documents = try UserData.documents(Array(text.utf8), source: source)
        var config: NodeConfig?
        var diagnostics: [ConfigDiagnostic] = []
        for document in documents {
            let result = NodeConfigDecoder.decode(document)
            config = result.config
            diagnostics += result.diagnostics
        }
        return (config, diagnostics)
    }

    /// Every NodeConfig input of nodeadm's e2e suite (YAML, JSON-inline and MIME).
    static let conformanceInputs: [String] = {
        let root = Paths.conformance.appendingPathComponent("nodeadm")
        guard let walker = FileManager.default.enumerator(atPath: root.path) else { return [] }
        return walker.compactMap { $0 as? String }
            .filter { $0.hasSuffix(".yaml") && !$0.hasPrefix("_infra") && !$0.contains("expected") }
            .filter { $0.contains("config") }
            .sorted()
    }()

    @Test("every NodeConfig input of nodeadm's e2e suite decodes without errors", arguments: conformanceInputs)
    func conformanceInput(_ path: String) throws {
        let url = Paths.conformance.appendingPathComponent("nodeadm").appendingPathComponent(path)
        let text = try String(contentsOf: url, encoding: .utf8)
        let result = try Self.decode(text, source: "file \(path)")
        #expect(result.diagnostics.filter { $0.severity == .error } == [], "\(result.diagnostics)")
        #expect(result.config?.apiVersion == NodeConfig.apiVersion)
        if path == "config-check/config-bad.yaml" {
            #expect(
                result.diagnostics.map(\.description) == [
                    "file config-check/config-bad.yaml: line 6: spec.cluster.name-not-real: unknown field 'name-not-real'"
                ])
        } else {
            #expect(result.diagnostics == [], "\(result.diagnostics)")
        }
    }

    @Test("the inputs are there")
    func inputsArePresent() {
        #expect(Self.conformanceInputs.count >= 30)
    }

    @Test("fields land where nodeadm puts them; inline documents keep their types")
    func fields() throws {
        let result = try Self.decode(
            """
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            spec:
              cluster:
                name: my-cluster
                apiServerEndpoint: https://example.com
                certificateAuthority: Y2VydGlmaWNhdGVBdXRob3JpdHk=
                cidr: 10.100.0.0/16
                enableOutpost: true
                id: my-id
              kubelet:
                config:
                  maxPods: 58
                  clusterDNS: [1.1.1.1]
                  cpuManagerPolicyOptions: {full-pcpus-only: "true"}
                flags: ["--v=5"]
                maxPodsExpression: "max_pods + 2"
              instance:
                localStorage: {strategy: RAID0}
                environment: {default: {HTTP_PROXY: "http://p:3128"}}
                network: {nameservers: [8.8.8.8], domains: [example.com]}
              featureGates:
                InstanceIdNodeName: true
            """)
        let spec = try #require(result.config?.spec)
        #expect(result.diagnostics == [])
        #expect(spec.cluster.enableOutpost == true && spec.cluster.id == "my-id")
        #expect(spec.kubelet.flags == ["--v=5"] && spec.kubelet.maxPodsExpression == "max_pods + 2")
        #expect(
            spec.kubelet.config
                == .object([
                    "maxPods": .int(58), "clusterDNS": .array([.string("1.1.1.1")]),
                    "cpuManagerPolicyOptions": .object(["full-pcpus-only": .string("true")]),
                ]))
        #expect(spec.instance.localStorage.strategy == "RAID0")
        #expect(spec.instance.environment == ["default": ["HTTP_PROXY": "http://p:3128"]])
        #expect(spec.instance.network.nameservers == ["8.8.8.8"])
        #expect(spec.featureGates == ["InstanceIdNodeName": true])
    }

    struct BadCase: Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var says: String
        var severity: ConfigDiagnostic.Severity = .error
        var testDescription: String { name }
    }

    static let head = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n"

    static let badCases: [BadCase] = [
        BadCase(
            name: "a typo is a warning with a suggestion", text: head + "spec:\n  clustr:\n    name: x\n",
            says: "user data: line 4: spec.clustr: unknown field 'clustr' — did you mean 'cluster'?", severity: .warning),
        BadCase(
            name: "keys are case-sensitive", text: head + "Spec:\n  cluster: {}\n",
            says: "line 3: Spec: unknown field 'Spec' — did you mean 'spec'?", severity: .warning),
        BadCase(
            name: "wrong type", text: head + "spec:\n  kubelet:\n    flags: --v=5\n",
            says: "line 5: spec.kubelet.flags: expected a list of strings, found a scalar"),
        BadCase(
            name: "unknown apiVersion", text: "apiVersion: node.eks.aws/v1\nkind: NodeConfig\n",
            says: "line 1: apiVersion: 'node.eks.aws/v1' is not supported — use apiVersion: node.eks.aws/v1alpha1"),
        BadCase(
            name: "wrong kind", text: "apiVersion: node.eks.aws/v1alpha1\nkind: Pod\n",
            says: "line 2: kind: 'Pod' is not NodeConfig"),
        BadCase(name: "YAML syntax error", text: head + "spec:\n  cluster:\n  name: [x\n", says: "not valid YAML or JSON"),
        BadCase(
            name: "CA that is not base64", text: head + "spec:\n  cluster:\n    certificateAuthority: not*base64\n",
            says: "line 5: spec.cluster.certificateAuthority: is not base64"),
        BadCase(
            name: "boolean that is not one", text: head + "spec:\n  cluster:\n    enableOutpost: maybe\n",
            says: "spec.cluster.enableOutpost: expected true or false, found 'maybe'"),
        BadCase(name: "empty document", text: "# nothing\n", says: "the document is empty"),
        BadCase(
            name: "a list where a mapping belongs", text: head + "spec:\n  - cluster\n",
            says: "line 4: spec: expected a mapping, found a list"),
    ]

    @Test("problems name the line and field, and say what to do", arguments: badCases)
    func problems(_ c: BadCase) throws {
        let result = try Self.decode(c.text)
        let matching = result.diagnostics.filter { $0.severity == c.severity && $0.description.contains(c.says) }
        #expect(!matching.isEmpty, "\(result.diagnostics)")
        if c.severity == .error { #expect(result.config == nil) }
    }

    @Test("a problem in MIME part 2 names the part and the line in the user data")
    func mimeLines() throws {
        let text = """
            MIME-Version: 1.0
            Content-Type: multipart/mixed; boundary="//"

            --//
            Content-Type: application/node.eks.aws

            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            --//
            Content-Type: application/node.eks.aws

            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            spec:
              clustr: {}
            --//--

            """
        let result = try Self.decode(text)
        #expect(
            result.diagnostics.map(\.description) == [
                "user data part 2 (application/node.eks.aws): line 15: spec.clustr: unknown field 'clustr' — did you mean 'cluster'?"
            ])
    }

    @Test("inline documents merge as nodeadm's merge_test says: maps merge, scalars and arrays replace")
    func inlineMerge() {
        let base: ConfigValue = .object([
            "logging": .object(["verbosity": .int(5)]), "podsPerCore": .int(20),
            "systemReserved": .object(["cpu": .string("150m")]), "clusterDNS": .array([.string("a"), .string("b")]),
        ])
        let patch: ConfigValue = .object([
            "logging": .object(["verbosity": .int(2)]), "maxPods": .int(150), "clusterDNS": .array([.string("c")]),
        ])
        #expect(
            base.merged(with: patch)
                == .object([
                    "logging": .object(["verbosity": .int(2)]), "maxPods": .int(150), "podsPerCore": .int(20),
                    "systemReserved": .object(["cpu": .string("150m")]), "clusterDNS": .array([.string("c")]),
                ]))
    }
}

@Suite("NodeConfig decoding: empty sections")
struct EmptySectionTests {
    @Test("empty sections and quoted numbers decode as nodeadm reads them")
    func emptySections() throws {
        let text =
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  containerd:\n  kubelet:\n    config:\n      maxPods: \"58\"\n      x: ~\n"
        let result = NodeConfigDecoder.decode(RawDocument(origin: DocumentOrigin(source: "s"), bytes: Array(text.utf8)))
        #expect(result.diagnostics == [])
        #expect(result.config?.spec.kubelet.config == .object(["maxPods": .string("58"), "x": .null]))
    }
}
