import Foundation
import SigV4
import TestSupport
import Testbed
import Testing

/// The kubectl binaries on this machine: the oldest and the newest of the Google Cloud SDK's
/// `kubectl.1.N`, else `/usr/bin/kubectl`.
enum Kubectl {
    static let directory = "/usr/lib/google-cloud-sdk/bin"

    static let binaries: [String] = {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []  // no SDK: none
        let versioned =
            names.compactMap { name -> (minor: Int, path: String)? in
                guard name.hasPrefix("kubectl.1."), let minor = Int(name.dropFirst("kubectl.1.".count)) else {
                    return nil
                }
                let path = directory + "/" + name
                return FileManager.default.isExecutableFile(atPath: path) ? (minor, path) : nil
            }
            .sorted { $0.minor < $1.minor }
        if let oldest = versioned.first, let newest = versioned.last {
            return oldest.path == newest.path ? [oldest.path] : [oldest.path, newest.path]
        }
        return FileManager.default.isExecutableFile(atPath: "/usr/bin/kubectl") ? ["/usr/bin/kubectl"] : []
    }()

    /// A kubeconfig for the testbed whose exec plugin is a shell script printing an ExecCredential.
    static func kubeconfig(_ testbed: Testbed, token: String, ca: String, in directory: URL) throws -> String {
        let plugin = directory.appendingPathComponent("token-plugin.sh")
        let credential =
            #"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{},"#
            + #""status":{"expirationTimestamp":"2099-01-01T00:00:00Z","token":"\#(token)"}}"#
        try Data("#!/bin/sh\ncat <<'EOF'\n\(credential)\nEOF\n".utf8).write(to: plugin)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: plugin.path)
        let config = directory.appendingPathComponent("kubeconfig")
        try Data(
            """
            apiVersion: v1
            kind: Config
            clusters:
              - name: testbed
                cluster:
                  server: \(testbed.kubeEndpoint)
                  certificate-authority: \(ca)
            contexts:
              - name: testbed
                context:
                  cluster: testbed
                  user: node
            current-context: testbed
            users:
              - name: node
                user:
                  exec:
                    apiVersion: client.authentication.k8s.io/v1beta1
                    command: \(plugin.path)
                    interactiveMode: Never

            """.utf8
        ).write(to: config)
        return config.path
    }

    static func run(_ binary: String, _ arguments: [String], kubeconfig: String, home: URL) async throws
        -> ChildProcess.Result
    {
        try await ChildProcess.run(
            [binary, "--kubeconfig", kubeconfig, "--request-timeout", "20s"] + arguments,
            environment: ChildProcess.cleanEnvironment(["HOME": home.path, "KUBECONFIG": kubeconfig]), timeout: 60)
    }
}

@Suite(
    "kubectl against the testbed's API server",
    .enabled(if: !Kubectl.binaries.isEmpty, "no kubectl found (\(Kubectl.directory)/kubectl.1.N or /usr/bin/kubectl)"),
    .enabled(if: Kube.botocoreAvailable, "botocore not installed (pip install botocore)"),
    .enabled(if: Kube.curlAvailable, "curl not found on PATH"))
struct KubectlTests {
    @Test("kubectl version and get nodes with an exec plugin printing a botocore-made node token", arguments: Kubectl.binaries)
    func versionAndNodes(kubectl: String) async throws {
        try await withTestbed { testbed throws in
            let name = testbed.configuration.privateDnsName
            let created = try await Kube.call(
                testbed, "POST", "/api/v1/nodes", token: Kube.adminToken(testbed),
                body: #"{"metadata":{"name":"\#(name)"},"status":{"nodeInfo":{"kubeletVersion":"v1.31.0-eks-1234567"}}}"#)
            #expect(created.status == 201)
            try await testbed.setNodeReady(name: name)

            let directory = try Kube.directory()
            let token = try #require(
                try await Kube.botocoreTokens([Kube.botocoreSpec(testbed.roleCredentials, region: testbed.region)]).first)
            let config = try Kubectl.kubeconfig(testbed, token: token, ca: try Kube.caFile(testbed), in: directory)

            let version = try await Kubectl.run(kubectl, ["version", "--output", "json"], kubeconfig: config, home: directory)
            #expect(version.status == 0, "\(version.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(version.stdout.utf8)) as? [String: Any])
            #expect((json["serverVersion"] as? [String: Any])?["gitVersion"] as? String == "v1.31.0-eks-testbed")

            let nodes = try await Kubectl.run(kubectl, ["get", "nodes"], kubeconfig: config, home: directory)
            #expect(nodes.status == 0, "\(nodes.stderr)")
            let lines = nodes.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
            #expect(lines.first == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"])
            let row = try #require(lines.dropFirst().first)
            #expect(row.count == 5)
            #expect(row.first == name)
            #expect(row.dropFirst().first == "Ready")
            #expect(row.dropFirst(2).first == "<none>")
            #expect(row.last == "v1.31.0-eks-1234567")
            let users = await testbed.requests().filter { $0.endpoint == "kube" }.compactMap(\.username)
            #expect(users.contains("system:node:\(name)"))
        }
    }

    @Test("kubectl trusting another CA fails with an x509 error", arguments: Kubectl.binaries.prefix(1))
    func wrongCA(kubectl: String) async throws {
        let other = try await Testbed.start()
        let otherCA = try Kube.caFile(other)
        try await other.shutdown()
        try await withTestbed { testbed throws in
            let directory = try Kube.directory()
            let config = try Kubectl.kubeconfig(testbed, token: Kube.nodeToken(testbed), ca: otherCA, in: directory)
            let result = try await Kubectl.run(kubectl, ["get", "nodes"], kubeconfig: config, home: directory)
            #expect(result.status != 0)
            #expect(result.stderr.contains("x509"), "\(result.stderr)")
            #expect(await testbed.requests().filter { $0.endpoint == "kube" }.isEmpty)
        }
    }

    @Test("kubectl with a token for another cluster is told to log in", arguments: Kubectl.binaries.suffix(1))
    func unauthorized(kubectl: String) async throws {
        try await withTestbed { testbed throws in
            let directory = try Kube.directory()
            let token = try #require(
                try await Kube.botocoreTokens([
                    Kube.botocoreSpec(testbed.roleCredentials, region: testbed.region, cluster: "not-this-cluster")
                ]).first)
            let config = try Kubectl.kubeconfig(testbed, token: token, ca: try Kube.caFile(testbed), in: directory)
            let result = try await Kubectl.run(kubectl, ["get", "nodes"], kubeconfig: config, home: directory)
            #expect(result.status != 0)
            // "(Unauthorized)" up to 1.2x, "(the server has asked for the client to provide credentials)" since.
            #expect(result.stderr.contains("You must be logged in to the server"), "\(result.stderr)")
            let refused = await testbed.requests().filter { $0.endpoint == "kube" }
            #expect(!refused.isEmpty && refused.allSatisfy { $0.status == 401 })
        }
    }
}
