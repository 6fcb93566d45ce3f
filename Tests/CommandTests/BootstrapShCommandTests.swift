import Foundation
import TestSupport
import Testbed
import Testing

/// `nodeboot bootstrap-sh` (what /etc/eks/bootstrap.sh runs) as user data runs it: the drop-in
/// written, then init, against the testbed under --root; the AL2 test harness's DNS cases
/// (reference/nodeadm.md §12.4) as the kubelet would read them; refusals change nothing.
@Suite("nodeboot bootstrap-sh", .serialized)
struct BootstrapShCommandTests {
    static let binary = Paths.debugBinaries.appendingPathComponent("nodeboot").path
    static let endpoint = "https://test-k8s.eks.amazonaws.com"

    /// Every path under `root` with its bytes (links as their target).
    static func tree(_ root: String) -> [String: Data] {
        var result: [String: Data] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            let path = root + "/" + relative
            if let target = try? FileManager.default.destinationOfSymbolicLink(atPath: path) {
                result[relative] = Data(("-> " + target).utf8)
            } else {
                result[relative] = FileManager.default.contents(atPath: path) ?? Data()
            }
        }
        return result
    }

    /// The clusterDNS the kubelet ends up with: the drop-in's when it sets one, else config.json's.
    static func clusterDNS(_ root: String) throws -> [String]? {
        for file in ["/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf", "/etc/kubernetes/kubelet/config.json"] {
            guard let data = FileManager.default.contents(atPath: root + file) else { continue }
            let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
            if let dns = object?["clusterDNS"] as? [String] { return dns }
        }
        return nil
    }

    static func run(_ arguments: [String], testbed: Testbed) async throws -> ChildProcess.Result {
        try await ChildProcess.run(
            [binary, "bootstrap-sh"] + arguments, environment: ChildProcess.cleanEnvironment(testbed.environment))
    }

    @Test("DNS as bootstrap.sh had it: explicit, from the service CIDR, and the VPC fallback without DescribeCluster")
    func dns() async throws {
        let testbed = try await Testbed.start()
        let ca = ["--b64-cluster-ca", "Q0VSVElGSUNBVEU=", "--apiserver-endpoint", Self.endpoint]
        let cases: [([String], [String])] = [
            (ca + ["--dns-cluster-ip", "192.168.0.1", "--service-ipv4-cidr", "10.100.0.0/16"], ["192.168.0.1"]),
            (ca + ["--service-ipv4-cidr", "192.168.0.0/16"], ["192.168.0.10"]),
            // The testbed's VPC (192.0.2.0/24) has no 10.x block: EKS's 10.100.0.0/16.
            (ca, ["10.100.0.10"]),
        ]
        for (arguments, expected) in cases {
            let root = try NodeFixture.root()
            let result = try await Self.run(["--root", root, "my-cluster"] + arguments, testbed: testbed)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            #expect(try Self.clusterDNS(root) == expected, "\(arguments)")
            #expect(FileManager.default.fileExists(atPath: root + "/etc/eks/nodeadm.d/10-bootstrap-sh.yaml"))
            #expect(result.stderr.contains("running nodeboot init"))
        }
        try await testbed.shutdown()
    }

    @Test("the kubelet gets --kubelet-extra-args as flags; --use-max-pods false is maxPods 110")
    func kubeletFlags() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        let result = try await Self.run(
            [
                "--root", root, "my-cluster", "--kubelet-extra-args", #"--node-labels="team=a,tier=web" --v=3"#,
                "--use-max-pods", "false",
            ], testbed: testbed)
        let written = root + "/etc/eks/nodeadm.d/10-bootstrap-sh.yaml"
        let first = try FileManager.default.attributesOfItem(atPath: written)
        // The same user data again (a repair): the drop-in and init's files stay as they are.
        let again = try await Self.run(
            [
                "--root", root, "my-cluster", "--kubelet-extra-args", #"--node-labels="team=a,tier=web" --v=3"#,
                "--use-max-pods", "false",
            ], testbed: testbed)
        try await testbed.shutdown()
        #expect(again.status == 0, "\(again.stderr)")
        let second = try FileManager.default.attributesOfItem(atPath: written)
        #expect(first[.systemFileNumber] as? Int == second[.systemFileNumber] as? Int)
        #expect(first[.modificationDate] as? Date == second[.modificationDate] as? Date)
        #expect(again.stdout.contains("0 written"), "\(again.stdout)")
        #expect(result.status == 0, "\(result.stderr)")
        let environment = try String(contentsOfFile: root + "/etc/eks/kubelet/environment", encoding: .utf8)
        #expect(environment.contains(" --node-labels=team=a,tier=web --v=3"), "\(environment)")
        let dropIn = try #require(
            FileManager.default.contents(atPath: root + "/etc/kubernetes/kubelet/config.json.d/40-nodeadm.conf"))
        let object = try JSONSerialization.jsonObject(with: dropIn) as? [String: Any]
        #expect(object?["maxPods"] as? Int == 110)
    }

    @Test("refused flags: exit 2, every problem named, nothing written, init not run")
    func refused() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        let before = Self.tree(root)
        let result = try await Self.run(
            ["--root", root, "my-cluster", "--container-runtime", "dockerd", "--local-disks", "raid5"], testbed: testbed)
        // A value init's validation refuses (not a CIDR): still nothing written.
        let invalid = try await Self.run(
            ["--root", root, "my-cluster", "--service-ipv4-cidr", "10.100.0.0/33"], testbed: testbed)
        let ca = try await Self.run(["--root", root, "my-cluster", "--b64-cluster-ca", "not base64!"], testbed: testbed)
        try await testbed.shutdown()
        #expect(ca.status == 2, "\(ca.stderr)")
        #expect(ca.stderr.contains("certificateAuthority") && ca.stderr.contains("nothing was written"), "\(ca.stderr)")
        #expect(result.status == 2)
        #expect(result.stderr.contains("--container-runtime dockerd") && result.stderr.contains("--local-disks 'raid5'"))
        #expect(invalid.status == 2, "\(invalid.stderr)")
        #expect(invalid.stderr.contains("10.100.0.0/33") && invalid.stderr.contains("nothing was written"), "\(invalid.stderr)")
        #expect(Self.tree(root) == before)
    }

    @Test("--dry-run prints the NodeConfig and the init command; writes nothing; --help prints the flags")
    func dryRun() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        let before = Self.tree(root)
        let result = try await Self.run(
            ["--dry-run", "--root", root, "my-cluster", "--service-ipv4-cidr", "10.100.0.0/16", "--local-disks", "raid0"],
            testbed: testbed)
        let help = try await Self.run(["--help"], testbed: testbed)
        try await testbed.shutdown()
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("(dry run: not written)"))
        #expect(result.stdout.contains("strategy: \"RAID0\""))
        #expect(result.stdout.contains("# then: nodeboot init --config-source imds://user-data --config-source file://\(root)"))
        #expect(Self.tree(root) == before)
        #expect(help.status == 0 && help.stdout.contains("--kubelet-extra-args"))
    }

    @Test("compat/bootstrap.sh runs the nodeboot on PATH with its arguments unchanged")
    func shippedScript() async throws {
        let script = Paths.packageRoot.appendingPathComponent("compat/bootstrap.sh").path
        let result = try await ChildProcess.run(
            [script, "--dry-run", "c", "--service-ipv4-cidr", "10.100.0.0/16", "--kubelet-extra-args", "--v=2 --x='a b'"],
            environment: ChildProcess.cleanEnvironment(["PATH": Paths.debugBinaries.path + ":/usr/bin:/bin"]))
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("- \"--x=a b\""), "\(result.stdout)")
    }
}
