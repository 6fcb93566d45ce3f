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
        let root = try InitBehaviourTests.nodeRoot()
        let result = try await ChildProcess.run(
            [Self.binary, "status", "--root", root], environment: ChildProcess.cleanEnvironment([:]))
        #expect(result.status == 1)
        #expect(result.stderr.contains("no report at \(root)/run/nodeboot/status.json"))
    }

    @Test("after init --register-node: the timeline, the files and the Node; json as written; then a failed run")
    func afterInit() async throws {
        let testbed = try await Testbed.start()
        let root = try InitBehaviourTests.nodeRoot()
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
        #expect(report["schema"] as? String == "nodeboot.status/v1")
        #expect(report["result"] as? String == "ok")
        #expect((report["node"] as? [String: Any])?["registration"] as? String == "created")

        #expect(failed.status == 1)
        #expect(afterFailure.status == 1)
        #expect(afterFailure.stdout.hasPrefix("last init: FAILED"))
        #expect(afterFailure.stdout.contains("register"))
        #expect(afterFailure.stdout.contains("error: "))
        #expect(afterFailure.stdout.contains("Ready"))
    }
}
