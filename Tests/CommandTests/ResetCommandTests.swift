import Foundation
import TestSupport
import Testbed
import Testing

/// `nodeboot reset` as an operator runs it: the binary after the binary's init, under --root
/// against the testbed (this machine's services untouched).
@Suite("nodeboot reset (the binary)", .serialized)
struct ResetCommandTests {
    static let binary = Paths.debugBinaries.appendingPathComponent("nodeboot").path

    static func run(_ arguments: [String], _ environment: [String: String] = [:]) async throws -> ChildProcess.Result {
        try await ChildProcess.run([binary] + arguments, environment: ChildProcess.cleanEnvironment(environment))
    }

    @Test("nodeboot --help lists reset and bootstrap-sh; reset --help lists its options")
    func help() async throws {
        let top = try await Self.run(["--help"])
        #expect(top.stdout.contains("reset") && top.stdout.contains("bootstrap-sh"))
        let help = try await Self.run(["reset", "--help"])
        #expect(help.status == 0)
        for option in [
            "-d, --daemon <daemon>", "--delete-node", "--node-name", "--keep-network", "--dry-run", "--root", "--unit-timeout",
        ] {
            #expect(help.stdout.contains(option), "\(option)")
        }
    }

    @Test("bad flags: exit 2 naming the flag and the fix, nothing changed")
    func usage() async throws {
        let cases: [([String], String)] = [
            (["reset", "--daemon", "dockerd", "--root", "/tmp/x"], "--daemon dockerd: not a daemon"),
            (["reset", "--unit-timeout", "0"], "--unit-timeout must be between 0 and 3600 seconds"),
            (["reset", "--node-name", "", "--root", "/tmp/x"], "--node-name is empty"),
            (["reset", "--bogus"], "Unknown option '--bogus'"),
        ]
        for (arguments, message) in cases {
            let result = try await Self.run(arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
        }
    }

    @Test("init then reset --dry-run (nothing changes) then reset: the tree is as before init")
    func initThenReset() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        let config = try NodeFixture.configFile()
        let before = BootstrapShCommandTests.tree(root)
        let initialized = try await Self.run(["init", "--root", root, "-c", "file://\(config)"], testbed.environment)
        #expect(initialized.status == 0, "\(initialized.stderr)")
        let written = BootstrapShCommandTests.tree(root)
        let dry = try await Self.run(["reset", "--root", root, "--dry-run"], testbed.environment)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("remove /etc/kubernetes/kubelet/config.json"))
        #expect(BootstrapShCommandTests.tree(root) == written)
        let reset = try await Self.run(["reset", "--root", root], testbed.environment)
        // A step that cannot be done: reported, exit 1, the other steps done.
        let failing = try await Self.run(
            ["reset", "--root", root, "--delete-node", "--node-name", "ip-10-0-0-1.ec2.internal"], testbed.environment)
        try await testbed.shutdown()
        #expect(reset.status == 0, "\(reset.stderr)")
        #expect(reset.stdout.contains("removed /var/lib/kubelet/kubeconfig"))
        let after = BootstrapShCommandTests.tree(root).filter { !["run", "var", "var/lib"].contains($0.key) }
        #expect(after == before)
        #expect(failing.status == 1)
        #expect(failing.stderr.contains("kubectl delete node ip-10-0-0-1.ec2.internal"), "\(failing.stderr)")
    }
}
