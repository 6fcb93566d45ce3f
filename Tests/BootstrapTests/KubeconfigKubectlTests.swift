import AWS
import ExecCredential
import Foundation
import SigV4
import TestSupport
import Testbed
import Testing

/// kubectl, a real Kubernetes client, uses the kubeconfig `nodeboot init --root …` wrote: its exec
/// block runs `nodeboot token`, whose token the testbed's API server verifies as EKS would.
@Suite(
    "kubectl with the node's kubeconfig against the testbed API server", .serialized,
    .enabled(if: !Kubectl.binaries.isEmpty, "no kubectl binary on this machine"))
struct KubeconfigKubectlTests {
    struct Node {
        var testbed: Testbed
        var root: String
        var kubeconfig: String { root + "/var/lib/kubelet/kubeconfig" }
        var ca: String { root + "/etc/kubernetes/pki/ca.crt" }
        /// What a process on the node sees: IMDS (the instance role) and nothing else from AWS.
        var environment: [String: String] {
            [
                "PATH": "/usr/bin:/bin", "HOME": root,
                "AWS_EC2_METADATA_SERVICE_ENDPOINT": testbed.imdsEndpoint,
            ]
        }
    }

    /// `nodeboot init --skip run` with a NodeConfig that names only the cluster: endpoint and CA
    /// come from DescribeCluster, which reports the testbed's API server.
    static func initializedNode() async throws -> Node {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        let config = root + "/config.yaml"
        try Data(
            "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: \(testbed.kubeClusterName)\n    cidr: 10.100.0.0/16\n"
                .utf8
        ).write(to: URL(fileURLWithPath: config))
        var environment = testbed.environment
        environment["PATH"] = "/usr/bin:/bin"
        let binary = Paths.debugBinaries.appendingPathComponent("nodeboot").path
        let result = try await ChildProcess.run(
            [binary, "init", "--skip", "run", "--root", root, "-c", "file://" + config], environment: environment)
        #expect(result.status == 0, "\(result.stderr)")
        return Node(testbed: testbed, root: root)
    }

    static func kubectl(_ binary: String, _ node: Node, _ arguments: [String], kubeconfig: String? = nil, ca: String? = nil)
        async throws -> ChildProcess.Result
    {
        // The kubeconfig names the node path /etc/kubernetes/pki/ca.crt; on this host it is under the root.
        try await ChildProcess.run(
            [binary, "--kubeconfig", kubeconfig ?? node.kubeconfig, "--certificate-authority", ca ?? node.ca]
                + arguments, environment: node.environment, timeout: 60)
    }

    @Test("kubectl version and get nodes work, oldest and newest kubectl", arguments: Kubectl.binaries)
    func works(kubectl: String) async throws {
        let node = try await Self.initializedNode()
        defer { Task { try? await node.testbed.shutdown() } }
        let version = try await Self.kubectl(kubectl, node, ["version"])
        #expect(version.status == 0, "\(version.stderr)")
        #expect(version.stdout.contains("Server Version"), "\(version.stdout)")
        let created = try await ChildProcess.run(
            [
                kubectl, "--kubeconfig", node.kubeconfig, "--certificate-authority", node.ca, "create", "--validate=false", "-f",
                "-",
            ], environment: node.environment,
            stdin: #"{"apiVersion":"v1","kind":"Node","metadata":{"name":"ip-172-16-34-43.us-west-2.compute.internal"}}"#)
        #expect(created.status == 0, "\(created.stdout) \(created.stderr)")
        let nodes = try await Self.kubectl(kubectl, node, ["get", "nodes"])
        #expect(nodes.status == 0, "\(nodes.stderr)")
        #expect(nodes.stdout.contains("ip-172-16-34-43"), "\(nodes.stdout) \(nodes.stderr)")
        // The token came from the instance role via IMDS and maps to the node's user.
        let requests = await node.testbed.requests().filter { $0.endpoint == "kube" && $0.path.hasPrefix("/api/v1/nodes") }
        #expect(!requests.isEmpty)
    }

    @Test("a token for another cluster is refused with the server's 401", arguments: Kubectl.binaries)
    func wrongCluster(kubectl: String) async throws {
        let node = try await Self.initializedNode()
        defer { Task { try? await node.testbed.shutdown() } }
        let text = try String(contentsOfFile: node.kubeconfig, encoding: .utf8)
        let other = node.root + "/other-kubeconfig"
        try Data(text.replacingOccurrences(of: "\"\(node.testbed.kubeClusterName)\"", with: "\"other-cluster\"").utf8)
            .write(to: URL(fileURLWithPath: other))
        let result = try await Self.kubectl(kubectl, node, ["get", "nodes"], kubeconfig: other)
        #expect(result.status != 0)
        #expect(result.stderr.contains("Unauthorized") || result.stderr.contains("must be logged in"), "\(result.stderr)")
    }

    @Test("an expired token is refused with the server's 401", arguments: Kubectl.binaries)
    func expiredToken(kubectl: String) async throws {
        let node = try await Self.initializedNode()
        defer { Task { try? await node.testbed.shutdown() } }
        // A plugin that prints a token signed 20 minutes ago (STS honours 15).
        let token = try ExecCredential.token(
            clusterName: node.testbed.kubeClusterName, region: "us-west-2", credentials: node.testbed.roleCredentials,
            date: Date().addingTimeInterval(-20 * 60), environment: [:])
        let plugin = node.root + "/old-token.sh"
        let document = ExecCredential.document(
            apiVersion: ExecCredential.v1beta1, token: token, expiration: Date().addingTimeInterval(3600))
        try Data("#!/bin/sh\ncat <<'EOF'\n\(document)EOF\n".utf8).write(to: URL(fileURLWithPath: plugin))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: plugin)
        let text = try String(contentsOfFile: node.kubeconfig, encoding: .utf8)
        let binary = try #require(text.split(separator: "\n").first { $0.contains("command:") })
            .split(separator: ":", maxSplits: 1)[1].trimmingCharacters(in: .whitespaces)
        let stale = node.root + "/stale-kubeconfig"
        try Data(text.replacingOccurrences(of: binary, with: plugin).utf8).write(to: URL(fileURLWithPath: stale))
        let result = try await Self.kubectl(kubectl, node, ["get", "nodes"], kubeconfig: stale)
        #expect(result.status != 0)
        #expect(result.stderr.contains("Unauthorized") || result.stderr.contains("must be logged in"), "\(result.stderr)")
    }

    @Test("the wrong CA in the kubeconfig fails TLS", arguments: Kubectl.binaries)
    func wrongCA(kubectl: String) async throws {
        let node = try await Self.initializedNode()
        let other = try await Testbed.start()
        defer {
            Task {
                try? await node.testbed.shutdown()
                try? await other.shutdown()
            }
        }
        let wrong = node.root + "/other-ca.crt"
        try Data(other.kubeCACertificatePEM.utf8).write(to: URL(fileURLWithPath: wrong))
        let result = try await Self.kubectl(kubectl, node, ["get", "nodes"], ca: wrong)
        #expect(result.status != 0)
        #expect(result.stderr.contains("x509") || result.stderr.contains("certificate"), "\(result.stderr)")
    }
}

/// The kubectl binaries to test with.
enum Kubectl {
    static let sdk = "/usr/lib/google-cloud-sdk/bin"

    /// The oldest and the newest kubectl present (google-cloud-sdk ships kubectl.1.27 … 1.33).
    static let binaries: [String] = {
        let versioned = ((try? FileManager.default.contentsOfDirectory(atPath: sdk)) ?? [])
            .filter { $0.hasPrefix("kubectl.1.") }
            .sorted { (Int($0.dropFirst(10)) ?? 0) < (Int($1.dropFirst(10)) ?? 0) }
            .map { "\(sdk)/\($0)" }
        if let first = versioned.first, let last = versioned.last { return first == last ? [first] : [first, last] }
        return FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl") ? ["/usr/bin/kubectl"] : []
    }()

}
