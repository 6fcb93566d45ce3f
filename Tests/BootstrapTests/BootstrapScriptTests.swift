import Bootstrap
import Foundation
import NodeConfig
import NodeRender
import TestSupport
import Testing

/// AL2's bootstrap.sh flags (reference/nodeadm.md §12.1) → the NodeConfig `nodeboot bootstrap-sh`
/// writes: every flag of the table, what it becomes, what is refused and why. The document is
/// read back with init's own decoder, so a test sees the NodeConfig init will see.
@Suite("bootstrap.sh flags → NodeConfig")
struct BootstrapScriptTests {
    static let endpoint = "https://0123456789ABCDEF.gr7.us-west-2.eks.amazonaws.com"
    static let ca = "Q0VSVElGSUNBVEU="

    /// The NodeConfig of a command line (nil VPC CIDRs unless given).
    static func config(_ arguments: [String], containerd: String? = nil, vpc: [String]? = nil) throws -> (
        NodeConfig, [String]
    ) {
        let translation = try BootstrapScript.translate(
            BootstrapScript.parse(arguments), containerdConfig: containerd, vpcCIDRs: vpc)
        let documents = try UserData.documents(Array(translation.document.utf8), source: "bootstrap-sh")
        let decoded = NodeConfigDecoder.decode(try #require(documents.first))
        #expect(decoded.diagnostics.isEmpty, "\(decoded.diagnostics)")
        return (try #require(decoded.config), translation.notes)
    }

    /// The problems of a command line that is refused (exit 2: `.input`).
    static func problems(_ arguments: [String], vpc: [String]? = nil) -> [String] {
        do {
            _ = try BootstrapScript.translate(BootstrapScript.parse(arguments), containerdConfig: nil, vpcCIDRs: vpc)
            return []
        } catch {
            #expect(error.code == .input)
            #expect(error.hint?.contains("nothing was written") == true)
            return error.message.split(separator: "\n").map(String.init)
        }
    }

    struct Case: Sendable, CustomStringConvertible {
        var arguments: [String]
        var vpc: [String]? = nil
        var check: @Sendable (NodeConfig.Spec) -> Bool
        var note: String? = nil
        var description: String { arguments.joined(separator: " ") }
    }

    static let cases: [Case] = [
        Case(arguments: ["my-cluster"], check: { $0.cluster.name == "my-cluster" && $0.cluster.apiServerEndpoint.isEmpty }),
        Case(
            arguments: ["--apiserver-endpoint", endpoint, "--b64-cluster-ca", ca, "--service-ipv4-cidr", "10.100.0.0/16", "c"],
            check: {
                $0.cluster.apiServerEndpoint == endpoint && $0.cluster.certificateAuthority == ca
                    && $0.cluster.cidr == "10.100.0.0/16"
            }),
        Case(
            arguments: ["c", "--kubelet-extra-args", "--node-labels=a=b,c=d  --register-with-taints=x=y:NoSchedule\t--v=4"],
            check: { $0.kubelet.flags == ["--node-labels=a=b,c=d", "--register-with-taints=x=y:NoSchedule", "--v=4"] }),
        // Karpenter's AL2 user data quotes the labels inside the single-quoted value; systemd removed the quotes.
        Case(
            arguments: ["c", "--kubelet-extra-args", #"--node-labels="karpenter.sh/nodepool=default,x=y" --max-pods=110"#],
            check: { $0.kubelet.flags == ["--node-labels=karpenter.sh/nodepool=default,x=y", "--max-pods=110"] }),
        Case(
            arguments: ["c", "--use-max-pods", "false"],
            check: { $0.kubelet.config == .object(["maxPods": .int(110)]) }, note: "maxPods 110"),
        Case(
            arguments: ["c", "--use-max-pods", "false", "--kubelet-extra-args", "--max-pods=29"],
            check: { $0.kubelet.config == nil && $0.kubelet.flags == ["--max-pods=29"] }),
        Case(arguments: ["c", "--use-max-pods", "true"], check: { $0.kubelet.config == nil }),
        Case(
            arguments: ["c", "--dns-cluster-ip", "192.168.0.1"],
            check: { $0.kubelet.config == .object(["clusterDNS": .array([.string("192.168.0.1")])]) }),
        Case(
            arguments: ["c", "--dns-cluster-ip", "10.100.0.10,10.100.0.11"],
            check: { $0.kubelet.config == .object(["clusterDNS": .array([.string("10.100.0.10"), .string("10.100.0.11")])]) }),
        Case(
            arguments: ["c", "--ip-family", "ipv6", "--service-ipv6-cidr", "fe80::/108", "--dns-cluster-ip", "fe80::2a"],
            check: {
                $0.cluster.cidr == "fe80::/108"
                    && $0.kubelet.config == .object(["clusterDNS": .array([.string("fe80::2a")])])
            }),
        Case(arguments: ["c", "--service-ipv6-cidr", "fd00::/108"], check: { $0.cluster.cidr == "fd00::/108" }),
        Case(
            arguments: ["c", "--ip-family", "ipv6"], check: { $0.cluster.cidr.isEmpty },
            note: "read with DescribeCluster"),
        Case(arguments: ["c", "--ip-family", "ipv4"], check: { $0.cluster.cidr.isEmpty }),
        Case(arguments: ["c", "--container-runtime", "containerd"], check: { $0.cluster.name == "c" }),
        Case(arguments: ["c", "--enable-docker-bridge", "false", "--docker-config-json", ""], check: { $0.cluster.name == "c" }),
        Case(arguments: ["c", "--local-disks", "raid0"], check: { $0.instance.localStorage.strategy == "RAID0" }),
        Case(arguments: ["c", "--local-disks", "raid10"], check: { $0.instance.localStorage.strategy == "RAID10" }),
        Case(arguments: ["c", "--local-disks", "mount"], check: { $0.instance.localStorage.strategy == "Mount" }),
        Case(
            arguments: ["c", "--enable-local-outpost", "true", "--cluster-id", "0a1b2c3d-local"],
            check: { $0.cluster.enableOutpost == true && $0.cluster.id == "0a1b2c3d-local" }),
        Case(arguments: ["c", "--enable-local-outpost", "false"], check: { $0.cluster.enableOutpost == false }),
        Case(arguments: ["c", "--mount-bpf-fs", "false"], check: { $0.cluster.name == "c" }, note: "/sys/fs/bpf"),
        Case(arguments: ["c", "--mount-bpf-fs", "true"], check: { $0.cluster.name == "c" }),
        Case(arguments: ["c", "--aws-api-retry-attempts", "5"], check: { $0.cluster.name == "c" }, note: "120 s"),
        Case(
            arguments: ["c", "--pause-container-account", "602401143452", "--pause-container-version", "3.5"],
            check: { $0.containerd.config.isEmpty }, note: ContainerdConfig.sandboxImage),
        Case(
            arguments: ["c", "--kubelet-extra-args", "--reserved-cpus=0-1"],
            check: {
                $0.kubelet.config == .object(["kubeReservedCgroup": .string(""), "systemReservedCgroup": .string("")])
                    && $0.kubelet.flags == ["--reserved-cpus=0-1"]
            }),
        // bootstrap.sh's DNS without DescribeCluster (endpoint and CA given): the VPC decides.
        Case(
            arguments: ["--apiserver-endpoint", endpoint, "--b64-cluster-ca", ca, "c"], vpc: ["10.0.0.0/16"],
            check: { $0.cluster.cidr == "172.20.0.0/16" }, note: "172.20.0.10"),
        Case(
            arguments: ["--apiserver-endpoint", endpoint, "--b64-cluster-ca", ca, "c"], vpc: ["192.168.0.0/16", "100.64.0.0/16"],
            check: { $0.cluster.cidr == "10.100.0.0/16" }, note: "10.100.0.10"),
        Case(arguments: ["--apiserver-endpoint=\(endpoint)", "c"], check: { $0.cluster.apiServerEndpoint == endpoint }),
    ]

    @Test("each accepted flag becomes its NodeConfig field", arguments: cases)
    func accepted(_ test: Case) throws {
        let (config, notes) = try Self.config(test.arguments, vpc: test.vpc)
        #expect(test.check(config.spec), "\(config.spec)")
        if let note = test.note { #expect(notes.contains { $0.contains(note) }, "\(notes)") }
    }

    static let refusals: [(arguments: [String], problem: String)] = [
        (["c", "--container-runtime", "dockerd"], "--container-runtime dockerd: Kubernetes 1.24 removed dockershim"),
        (["c", "--docker-config-json", "{\"bip\":\"10.1.0.1/24\"}"], "--docker-config-json: dockerd's daemon.json"),
        (["c", "--enable-docker-bridge", "true"], "--enable-docker-bridge true: there is no docker0 bridge"),
        (["c", "--ip-family", "ipv5"], "--ip-family 'ipv5': not an IP family — use ipv4 or ipv6"),
        (["c", "--ip-family", "ipv4", "--service-ipv6-cidr", "fe80::/108"], "with --ip-family ipv4"),
        (
            ["--apiserver-endpoint", endpoint, "--b64-cluster-ca", ca, "--ip-family", "ipv6", "c"],
            "--ip-family ipv6 without --service-ipv6-cidr"
        ),
        (["c", "--local-disks", "raid5"], "--local-disks 'raid5': not a strategy — use mount, raid0 or raid10"),
        (["c", "--use-max-pods", "yes"], "--use-max-pods 'yes': not true or false"),
        (["c", "--aws-api-retry-attempts", "many"], "--aws-api-retry-attempts 'many': not a number"),
        (["c", "--dns-cluster-ip", "10.100.0.10,"], "--dns-cluster-ip '10.100.0.10,': an empty address"),
        (["c", "--kubelet-extra-args", "--node-labels='a=b"], "--kubelet-extra-args: a quote is not closed"),
        (["c", "--apiserver-endpoin", "x"], "unknown option '--apiserver-endpoin' — did you mean --apiserver-endpoint?"),
        (["c", "--bogus"], "unknown option '--bogus'"),
        (["c", "--b64-cluster-ca"], "--b64-cluster-ca: the value is missing"),
        (["--use-max-pods", "false"], "the cluster name is missing"),
        (["one", "two"], "more than one cluster name ('one', 'two')"),
        (
            ["--apiserver-endpoint", endpoint, "--b64-cluster-ca", ca, "--enable-local-outpost", "true", "c"],
            "--enable-local-outpost true without --cluster-id"
        ),
    ]

    @Test("a flag that cannot apply, or a bad value, is refused naming the flag and the fix")
    func refused() {
        for (arguments, problem) in Self.refusals {
            let problems = Self.problems(arguments)
            #expect(problems.contains { $0.contains(problem) }, "\(arguments): \(problems)")
        }
    }

    @Test("every problem is reported at once")
    func allAtOnce() {
        let problems = Self.problems([
            "--ip-family", "ipv5", "--local-disks", "raid5", "--bogus", "--container-runtime", "dockerd",
        ])
        #expect(problems.count == 5, "\(problems)")  // the four, and no cluster name
        #expect(problems.contains { $0.contains("the cluster name is missing") })
    }

    @Test("--containerd-config-file: merged as spec.containerd.config, SANDBOX_IMAGE is nodeboot's pause image")
    func containerdConfig() throws {
        let toml = "version = 2\n[plugins.\"io.containerd.grpc.v1.cri\"]\nsandbox_image = \"SANDBOX_IMAGE\"\n"
        let (config, notes) = try Self.config(["c", "--containerd-config-file", "/x.toml"], containerd: toml)
        #expect(config.spec.containerd.config.contains("sandbox_image = \"\(ContainerdConfig.sandboxImage)\""))
        #expect(notes.contains { $0.contains("merged") })
    }

    @Test("the VPC's CIDRs are needed only for bootstrap.sh's DNS fallback (endpoint and CA, no service CIDR)")
    func needsVPC() {
        let both = ["--apiserver-endpoint", Self.endpoint, "--b64-cluster-ca", Self.ca, "c"]
        #expect(BootstrapScript.needsVPCCIDRs(BootstrapScript.parse(both)))
        #expect(!BootstrapScript.needsVPCCIDRs(BootstrapScript.parse(both + ["--service-ipv4-cidr", "10.1.0.0/16"])))
        #expect(!BootstrapScript.needsVPCCIDRs(BootstrapScript.parse(["c", "--b64-cluster-ca", Self.ca])))
        #expect(!BootstrapScript.needsVPCCIDRs(BootstrapScript.parse(both + ["--ip-family", "ipv6"])))
    }

    @Test("2000 random command lines: never a crash; a YAML document init's decoder reads or diagnoses, or input errors")
    func random() throws {
        var generator = SeededGenerator(seed: 16)
        let words =
            BootstrapScript.valueOptionNames.map { "--" + $0 } + [
                "c", "", "-", "--", "true", "false", "ipv4", "ipv6", "raid0", "10.100.0.0/16", "fd00::/108",
                "'", "\"", "--max-pods=5 '--x=\"a b\"'", "é\u{0}", "--help", "--dry-run", "=", "--ip-family=",
            ]
        for _ in 0..<2000 {
            let count = Int.random(in: 0...8, using: &generator)
            let arguments = (0..<count).map { _ in words.randomElement(using: &generator) ?? "" }
            let flags = BootstrapScript.parse(arguments)
            do {
                let translation = try BootstrapScript.translate(
                    flags, containerdConfig: nil, vpcCIDRs: ["10.0.0.0/16"])
                let documents = try UserData.documents(Array(translation.document.utf8), source: "random")
                // A value the decoder refuses (a CA that is not base64) is diagnosed: bootstrap-sh's check
                // turns it into exit 2 before anything is written (BootstrapShCommandTests).
                let decoded = NodeConfigDecoder.decode(try #require(documents.first))
                #expect(decoded.config != nil || !decoded.diagnostics.isEmpty, "\(arguments)")
            } catch let error as NodeBootError {
                #expect(error.code == .input && !error.message.isEmpty, "\(arguments)")
            } catch {
                Issue.record("\(arguments): \(error)")
            }
        }
    }

    @Test("--help and --dry-run and --root are nodeboot's own; values may start with '-'")
    func ownFlags() {
        #expect(BootstrapScript.parse(["--help"]).help)
        #expect(BootstrapScript.parse(["--help"]).problems.isEmpty)
        let flags = BootstrapScript.parse(["--dry-run", "--root", "/tmp/r", "c", "--kubelet-extra-args", "-v=2"])
        #expect(flags.dryRun && flags.root == "/tmp/r" && flags.kubeletExtraArgs == "-v=2" && flags.problems.isEmpty)
    }

    @Test("after its init, bootstrap.sh enables kubelet.service with the systemctl on PATH; a failure is a warning")
    func enablesKubelet() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("systemctl-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let log = directory.appendingPathComponent("calls").path
        let fake = directory.appendingPathComponent("systemctl").path
        for (status, expected) in [(0, nil), (1, "exited 1: refused (a reboot will not start the kubelet)")] {
            try "#!/bin/sh\necho \"$@\" >> \(log)\necho refused >&2\nexit \(status)\n".write(
                toFile: fake, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: fake)
            let warning = await BootstrapScript.enableKubelet(environment: ["PATH": directory.path])
            if let expected {
                #expect(warning?.hasSuffix(expected) == true, "\(String(describing: warning))")
            } else {
                #expect(warning == nil, "\(String(describing: warning))")
            }
        }
        #expect(
            try String(contentsOfFile: log, encoding: .utf8) == String(repeating: "enable --quiet kubelet.service\n", count: 2))
        let missing = await BootstrapScript.enableKubelet(environment: ["PATH": directory.path + "/none"])
        #expect(missing?.hasPrefix("systemctl not found") == true)
    }
}
