import Bootstrap
import Foundation
import NodeConfig
import NodeRender
import Testing

@Suite("apply: atomic writes, unchanged files untouched, dry run writes nothing")
struct ApplyTests {
    static func root() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("apply-\(UUID().uuidString)").path
    }

    @Test("a second apply of the same files keeps inode and mtime")
    func idempotent() throws {
        let root = Self.root()
        let applier = Applier(paths: NodePaths(root: root))
        let files = [
            NodeFile("/etc/a.conf", "one\n"), NodeFile("/var/lib/kubelet/kubeconfig", "secret\n", mode: 0o600),
        ]
        #expect(try applier.apply(files).map(\.action) == [.created, .created])
        let before = try FileManager.default.attributesOfItem(atPath: root + "/etc/a.conf")
        Thread.sleep(forTimeInterval: 0.02)
        #expect(try applier.apply(files).map(\.action) == [.unchanged, .unchanged])
        let after = try FileManager.default.attributesOfItem(atPath: root + "/etc/a.conf")
        #expect(before[.systemFileNumber] as? Int == after[.systemFileNumber] as? Int)
        #expect(before[.modificationDate] as? Date == after[.modificationDate] as? Date)
        let mode = try FileManager.default.attributesOfItem(atPath: root + "/var/lib/kubelet/kubeconfig")[.posixPermissions]
        #expect(mode as? Int == 0o600)
        // A changed file is replaced (new inode: written beside it, renamed over it).
        #expect(try applier.apply([NodeFile("/etc/a.conf", "two\n")]).map(\.action) == [.updated])
        let replaced = try FileManager.default.attributesOfItem(atPath: root + "/etc/a.conf")
        #expect(replaced[.systemFileNumber] as? Int != before[.systemFileNumber] as? Int)
        #expect(try String(contentsOfFile: root + "/etc/a.conf", encoding: .utf8) == "two\n")
        // No temporary files left behind.
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/etc") == ["a.conf"])
    }

    @Test("a file that cannot be written midway changes no file: every staged file is removed")
    func allOrNothing() throws {
        let root = Self.root()
        let applier = Applier(paths: NodePaths(root: root))
        let old = [NodeFile("/etc/a.conf", "old a\n"), NodeFile("/etc/z/z.conf", "old z\n")]
        _ = try applier.apply(old)
        // A directory where b.conf's staged copy would go: the second of three writes fails.
        let blocker = root + "/etc/.b.conf.nodeboot-\(ProcessInfo.processInfo.processIdentifier)"
        try FileManager.default.createDirectory(atPath: blocker, withIntermediateDirectories: true)
        let new = [
            NodeFile("/etc/a.conf", "new a\n"), NodeFile("/etc/b.conf", "b\n"), NodeFile("/etc/z/z.conf", "new z\n"),
        ]
        #expect {
            _ = try applier.apply(new)
        } throws: { error in
            guard let error = error as? NodeBootError else { return false }
            return error.code == .io && error.message.contains("b.conf") && error.hint?.contains("no file was changed") == true
        }
        #expect(try String(contentsOfFile: root + "/etc/a.conf", encoding: .utf8) == "old a\n")
        #expect(try String(contentsOfFile: root + "/etc/z/z.conf", encoding: .utf8) == "old z\n")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: root + "/etc").sorted()
                == [blocker.split(separator: "/").last.map(String.init) ?? "", "a.conf", "z"].sorted())
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/etc/z") == ["z.conf"])
    }

    @Test("plan with diffs writes nothing and shows the change")
    func dryRun() throws {
        let root = Self.root()
        let applier = Applier(paths: NodePaths(root: root))
        _ = try applier.apply([NodeFile("/etc/a.conf", "one\ntwo\nthree\n")])
        let plan = try applier.plan([NodeFile("/etc/a.conf", "one\n2\nthree\n"), NodeFile("/etc/b", "new\n")], withDiffs: true)
        #expect(plan.map(\.action) == [.updated, .created])
        #expect(plan[0].diff?.contains("-two\n+2\n") == true)
        #expect(!FileManager.default.fileExists(atPath: root + "/etc/b"))
        #expect(try String(contentsOfFile: root + "/etc/a.conf", encoding: .utf8) == "one\ntwo\nthree\n")
    }

    @Test("config sources: a directory is read in name order, only .yaml/.yml/.json")
    func directory() async throws {
        let directory = Self.root()
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let documents = [
            "a.yaml": "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: test-cluster\n",
            "b.yml": "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    flags: [--v=2]\n",
            "c.json":
                "{\"apiVersion\":\"node.eks.aws/v1alpha1\",\"kind\":\"NodeConfig\",\"spec\":{\"kubelet\":{\"flags\":[\"--node-labels=env=test\"]}}}",
            "ignore.txt": "not yaml: [", "config.yaml.bak": "nor this: [",
        ]
        for (name, text) in documents { try Data(text.utf8).write(to: URL(fileURLWithPath: "\(directory)/\(name)")) }
        let result = try await ConfigChain(sources: [.file(directory)]) { nil }.load()
        let config = try #require(result.config).config
        #expect(config.spec.cluster.name == "test-cluster")
        #expect(config.spec.kubelet.flags == ["--v=2", "--node-labels=env=test"])
        // An empty directory holds no config: skipped with a note.
        let empty = Self.root()
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        let none = try await ConfigChain(sources: [.file(empty)]) { nil }.load()
        #expect(none.config == nil && none.notes.count == 1)
    }

    @Test("the config cache's spec is nodeadm's shape")
    func cacheShape() throws {
        var config = NodeConfig()
        config.spec.cluster.name = "my-cluster"
        config.spec.cluster.cidr = "10.100.0.0/16"
        #expect(
            ConfigCache.specJSON(config.spec).rendered(indent: 0)
                == "{\"cluster\":{\"cidr\":\"10.100.0.0/16\",\"name\":\"my-cluster\"},\"containerd\":{},\"instance\":{\"localStorage\":{},\"network\":{}},\"kubelet\":{}}"
        )
    }
}
