import Testing

@testable import TOML

/// The user TOML blocks (`containerd.config: |`) of the e2e cases' NodeConfig YAML files.
enum UserTOML {
    /// `containerdv1-*/configv2.yaml`.
    static let v1CasesV2 = """
        version = 2

        [grpc]
        address = "/run/foo/foo.sock"

        [plugins."io.containerd.grpc.v1.cri".containerd]
        discard_unpacked_layers = false

        """

    /// `containerdv1-*/configv3.yaml`.
    static let v1CasesV3 = """
        version = 3

        [grpc]
        address = "/run/foo/foo.sock"

        [plugins.'io.containerd.cri.v1.images']
        discard_unpacked_layers = false

        """

    /// `containerdv2-*/configv2.yaml`: a header for a table that an earlier header created implicitly.
    static let v2CasesV2 = """
        version = 2

        [grpc]
        address = "/run/foo/foo.sock"

        [plugins."io.containerd.grpc.v1.cri".containerd]
        discard_unpacked_layers = false

        [plugins.'io.containerd.grpc.v1.cri']
        sandbox_image = "registry.k8s.io/pause:3.10"

        """

    /// `containerdv2-*/configv3.yaml`.
    static let v2CasesV3 = """
        version = 3

        [grpc]
        address = "/run/foo/foo.sock"

        [plugins.'io.containerd.cri.v1.images'.pinned_images]
        sandbox = 'registry.k8s.io/pause:3.10'

        """

    static let all: [(file: String, toml: String)] = [
        ("containerdv1-config/configv2.yaml", v1CasesV2),
        ("containerdv1-runtime-config-neuron/configv2.yaml", v1CasesV2),
        ("containerdv1-runtime-config-nvidia/configv2.yaml", v1CasesV2),
        ("containerdv1-config/configv3.yaml", v1CasesV3),
        ("containerdv1-runtime-config-neuron/configv3.yaml", v1CasesV3),
        ("containerdv1-runtime-config-nvidia/configv3.yaml", v1CasesV3),
        ("containerdv2-config/configv2.yaml", v2CasesV2),
        ("containerdv2-runtime-config-neuron/configv2.yaml", v2CasesV2),
        ("containerdv2-runtime-config-nvidia/configv2.yaml", v2CasesV2),
        ("containerdv2-config/configv3.yaml", v2CasesV3),
        ("containerdv2-runtime-config-neuron/configv3.yaml", v2CasesV3),
        ("containerdv2-runtime-config-nvidia/configv3.yaml", v2CasesV3),
    ]
}

/// nodeadm's containerd templates rendered with its template variables (runtime runc, sandbox image
/// localhost/kubernetes/pause:latest); the e2e goldens are these merged with the user TOML.
enum RenderedTemplate {
    /// `config.template.toml` (containerd 1.x) with EnableCDI true (kubelet ≥ 1.32).
    static let containerd1 = """
        version = 2
        root = "/var/lib/containerd"
        state = "/run/containerd"

        [grpc]
        address = "/run/containerd/containerd.sock"

        [plugins."io.containerd.grpc.v1.cri".containerd]
        default_runtime_name = "runc"
        discard_unpacked_layers = true

        [plugins."io.containerd.grpc.v1.cri"]
        sandbox_image = "localhost/kubernetes/pause:latest"
        enable_cdi = true

        [plugins."io.containerd.grpc.v1.cri".registry]
        config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        base_runtime_spec = "/etc/containerd/base-runtime-spec.json"

        [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = true

        [plugins."io.containerd.grpc.v1.cri".cni]
        bin_dir = "/opt/cni/bin"
        conf_dir = "/etc/cni/net.d"


        """

    /// `config2.template.toml` (containerd 2.x) with EnableCDI true.
    static let containerd2 = """
        version = 3
        root = "/var/lib/containerd"
        state = "/run/containerd"

        [grpc]
        address = "/run/containerd/containerd.sock"

        [plugins.'io.containerd.cri.v1.images']
        discard_unpacked_layers = true

        [plugins.'io.containerd.cri.v1.images'.pinned_images]
        sandbox = "localhost/kubernetes/pause:latest"

        [plugins."io.containerd.cri.v1.images".registry]
        config_path = "/etc/containerd/certs.d:/etc/docker/certs.d"

        [plugins.'io.containerd.cri.v1.runtime']
        enable_cdi = true

        [plugins.'io.containerd.cri.v1.runtime'.containerd]
        default_runtime_name = "runc"

        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = "io.containerd.runc.v2"
        base_runtime_spec = "/etc/containerd/base-runtime-spec.json"

        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = true

        [plugins.'io.containerd.cri.v1.runtime'.cni]
        bin_dir = "/opt/cni/bin"
        conf_dir = "/etc/cni/net.d"


        """
}

@Suite("nodeadm e2e goldens")
struct TOMLGoldenTests {
    static let goGoldens = [
        "containerdv1-config/expected-containerd-config.toml",
        "containerdv1-config/expected-containerd-config-pre-1.32.toml",
        "containerdv1-runtime-config-neuron/expected-containerd-config.toml",
        "containerdv1-runtime-config-nvidia/expected-containerd-config.toml",
        "containerdv2-config/expected-containerd-configv3.toml",
        "containerdv2-runtime-config-nvidia/expected-containerd-configv3.toml",
        "containerdv2-runtime-config-neuron/expected-containerd-configv3.toml",
    ]

    @Test("a golden written by go-toml comes back byte for byte from parse + canonical", arguments: goGoldens)
    func roundTrip(golden: String) throws {
        let text = try Conformance.nodeadm(golden)
        let table = try TOML.parse(text)
        #expect(table.count == 5)
        #expect(TOML.canonical(table) == text)
    }

    static let otherDocuments = [
        "containerdv2-config/expected-containerd-configv2.toml",
        "containerdv2-runtime-config-neuron/expected-containerd-configv2.toml",
        "containerdv2-runtime-config-nvidia/expected-containerd-configv2.toml",
        "_infra/soci-snapshotter.config.toml",
    ]

    @Test("containerd's migrate output and the SOCI config parse", arguments: otherDocuments)
    func parsesOtherDocuments(file: String) throws {
        let table = try TOML.parse(try Conformance.nodeadm(file))
        #expect(!table.isEmpty)
        // Reading the canonical form back gives the same values.
        #expect(try TOML.parse(TOML.canonical(table)) == table)
    }

    @Test("the migrate output's values have the right types")
    func migrateOutputValues() throws {
        let table = try TOML.parse(try Conformance.nodeadm("containerdv2-config/expected-containerd-configv2.toml"))
        #expect(table["version"] == .integer(3))
        #expect(table["disabled_plugins"] == .array([]))
        #expect(table.value(at: ["grpc", "max_recv_message_size"]) == .integer(16_777_216))
        let runtime = ["plugins", "io.containerd.cri.v1.runtime"]
        #expect(table.value(at: runtime + ["cdi_spec_dirs"]) == .array([.string("/etc/cdi"), .string("/var/run/cdi")]))
        #expect(table.value(at: runtime + ["enable_cdi"]) == .boolean(true))
        #expect(table.value(at: ["plugins", "io.containerd.gc.v1.scheduler", "pause_threshold"]) == .float(0.02))
        #expect(table.value(at: ["plugins", "io.containerd.internal.v1.tracing"]) == .table(TOMLTable()))
        let options = runtime + ["containerd", "runtimes", "runc", "options", "SystemdCgroup"]
        #expect(table.value(at: options) == .boolean(true))
    }

    @Test("the SOCI config's quoted key and array")
    func sociValues() throws {
        let table = try TOML.parse(try Conformance.nodeadm("_infra/soci-snapshotter.config.toml"))
        let gzip = ["pull_modes", "parallel_pull_unpack", "decompress_streams", "gzip"]
        #expect(table.value(at: gzip + ["args"]) == .array([.string("-d"), .string("-c")]))
        #expect(table.value(at: ["pull_modes", "parallel_pull_unpack", "max_concurrent_downloads"]) == .integer(-1))
        #expect(table.value(at: ["pull_modes", "parallel_pull_unpack", "concurrent_download_chunk_size"]) == .string("16mb"))
    }

    @Test("each case's user TOML is the literal in this file, and parses", arguments: UserTOML.all.map(\.file))
    func userTOML(file: String) throws {
        let yaml = try Conformance.nodeadm(file)
        let literal = try #require(UserTOML.all.first { $0.file == file }?.toml)
        #expect(Conformance.containerdConfigBlock(in: yaml) == literal)
        let table = try TOML.parse(literal)
        #expect(table.value(at: ["grpc", "address"]) == .string("/run/foo/foo.sock"))
    }

    @Test("a header may define a table an earlier header created implicitly (containerdv2-config/configv2.yaml)")
    func implicitThenExplicit() throws {
        let table = try TOML.parse(UserTOML.v2CasesV2)
        let cri = ["plugins", "io.containerd.grpc.v1.cri"]
        #expect(table.value(at: cri + ["sandbox_image"]) == .string("registry.k8s.io/pause:3.10"))
        #expect(table.value(at: cri + ["containerd", "discard_unpacked_layers"]) == .boolean(false))
    }

    @Test("the rendered containerd 1 template merged with the user TOML gives the golden")
    func mergeContainerd1Template() throws {
        let golden = try Conformance.nodeadm("containerdv1-config/expected-containerd-config.toml")
        let merged = try TOML.parse(RenderedTemplate.containerd1).merged(with: try TOML.parse(UserTOML.v1CasesV2))
        #expect(TOML.canonical(merged) == golden)
    }

    @Test("the rendered containerd 2 template merged with the user TOML gives the golden")
    func mergeContainerd2Template() throws {
        let golden = try Conformance.nodeadm("containerdv2-config/expected-containerd-configv3.toml")
        let merged = try TOML.parse(RenderedTemplate.containerd2).merged(with: try TOML.parse(UserTOML.v2CasesV3))
        #expect(TOML.canonical(merged) == golden)
    }

    @Test("the golden minus the user's two keys, merged with the user TOML, gives the golden")
    func mergeRestoresUserKeys() throws {
        let golden = try Conformance.nodeadm("containerdv1-config/expected-containerd-config.toml")
        var base = try TOML.parse(golden)
        let address = ["grpc", "address"]
        let discard = ["plugins", "io.containerd.grpc.v1.cri", "containerd", "discard_unpacked_layers"]
        #expect(base.removeValue(at: address) == .string("/run/foo/foo.sock"))
        #expect(base.removeValue(at: discard) == .boolean(false))
        #expect(TOML.canonical(base) != golden)
        let merged = base.merged(with: try TOML.parse(UserTOML.v1CasesV2))
        #expect(TOML.canonical(merged) == golden)
    }

    @Test("nodeadm's merge unit test: [a.b.c.d] f = 0 merged with [a.b.c.d] e = 0")
    func nodeadmMergeUnitTest() throws {
        let merged = try TOML.parse("[a.b.c.d]\nf = 0").merged(with: try TOML.parse("[a.b.c.d]\ne = 0"))
        #expect(TOML.canonical(merged) == "[a]\n[a.b]\n[a.b.c]\n[a.b.c.d]\ne = 0\nf = 0\n")
    }
}
