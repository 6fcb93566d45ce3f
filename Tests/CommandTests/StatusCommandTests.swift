import Foundation
import TestSupport
import Testbed
import Testing

/// `nodeboot status` as an operator runs it, after real `nodeboot init` runs against the testbed.
@Suite("nodeboot status", .serialized)
struct StatusCommandTests {
    static let binary = Paths.debugBinaries.appendingPathComponent("nodeboot").path

    @Test("no report yet: exit 1 and where it looked")
    func noReport() async throws {
        let root = try NodeFixture.root()
        let result = try await ChildProcess.run(
            [Self.binary, "status", "--root", root], environment: ChildProcess.cleanEnvironment([:]))
        #expect(result.status == 1)
        #expect(result.stderr.contains("no report at \(root)/run/nodeboot/status.json"))
    }

    @Test("after init --register-node: the timeline, the files and the Node; json as written; then a failed run")
    func afterInit() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        let environment = ChildProcess.cleanEnvironment(testbed.environment)
        let config = root + "-config.yaml"
        try Data("apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: my-cluster\n".utf8)
            .write(to: URL(fileURLWithPath: config))
        let initialized = try await ChildProcess.run(
            [Self.binary, "init", "--root", root, "-c", "file://\(config)", "--register-node"], environment: environment)
        let text = try await ChildProcess.run([Self.binary, "status", "--root", root], environment: environment)
        let json = try await ChildProcess.run(
            [Self.binary, "status", "--root", root, "--output", "json"], environment: environment)
        // A run that reaches the API server and then gives up: the Node never becomes Ready.
        let failed = try await ChildProcess.run(
            [
                Self.binary, "init", "--root", root, "-c", "file://\(config)", "--register-node", "--wait-ready",
                "--register-timeout", "1",
            ], environment: environment)
        let afterFailure = try await ChildProcess.run([Self.binary, "status", "--root", root], environment: environment)
        let failedJSON = try await ChildProcess.run(
            [Self.binary, "status", "--root", root, "--output", "json"], environment: environment)
        try await testbed.shutdown()

        #expect(initialized.status == 0, "stderr: \(initialized.stderr)")
        let node = testbed.configuration.privateDnsName
        #expect(text.status == 0, "stderr: \(text.stderr)")
        #expect(text.stdout.hasPrefix("last init: succeeded"))
        #expect(text.stdout.contains("files: 8 written, 0 unchanged"))
        #expect(text.stdout.contains("units: not managed (--root"))
        #expect(text.stdout.contains("node: \(node): created"))
        for phase in ["source", "validate", "discover", "render", "apply", "run", "register"] {
            #expect(text.stdout.contains("\n  \(phase) "), "phase \(phase) missing:\n\(text.stdout)")
        }
        let report = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(report["schema"] as? String == "nodeboot.status/v2")
        #expect(report["result"] as? String == "ok")
        #expect((report["node"] as? [String: Any])?["registration"] as? String == "created")

        #expect(failed.status == 1)
        #expect(afterFailure.status == 1)
        #expect(afterFailure.stdout.hasPrefix("last init: FAILED"))
        #expect(afterFailure.stdout.contains("\n  register "))
        #expect(afterFailure.stdout.contains(" failed  node "), "\(afterFailure.stdout)")
        #expect(afterFailure.stdout.contains("error: "))
        #expect(afterFailure.stdout.contains("Ready"))
        // The error names the failing domain: the API server's side (the Node not Ready), not AWS.
        let failure = try #require(try JSONSerialization.jsonObject(with: Data(failedJSON.stdout.utf8)) as? [String: Any])
        #expect((failure["error"] as? [String: Any])?["code"] as? String == "kube")
        #expect((failure["node"] as? [String: Any])?["registration"] as? String == "failed")
    }
}
