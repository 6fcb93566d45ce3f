import Foundation
import Support
import Testing

/// Staged files (`.NAME.nodeboot-PID`): their name, what a failed `writeAll` leaves (nothing), and
/// the sweep that removes those of writers that are gone (issue 15).
@Suite("staged files: names, failed writes leave nothing, stale ones are swept")
struct StagedFileTests {
    static func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("staged-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func touch(_ path: String, age seconds: Double = 0) throws {
        try Data("x".utf8).write(to: URL(fileURLWithPath: path))
        if seconds > 0 {
            try FileManager.default.setAttributes(
                [.modificationDate: Date(timeIntervalSinceNow: -seconds)], ofItemAtPath: path)
        }
    }

    /// A pid no process has: a child that has exited and been reaped.
    static func deadPID() throws -> Int32 {
        let child = Process()
        child.executableURL = URL(fileURLWithPath: "/bin/true")
        try child.run()
        child.waitUntilExit()
        return child.processIdentifier
    }

    @Test(
        "the staged name is .NAME.nodeboot-PID; only that form gives a pid",
        arguments: [
            (".environment.conf.nodeboot-4242", Int32(4242)), (".a.nodeboot-1", 1), ("..nodeboot-7", nil),
            (".kubeconfig.nodeboot-", nil), ("environment.conf.nodeboot-42", nil), (".nodeboot-42", nil),
            (".a.nodeboot-12x", nil), (".a.nodeboot-99999999999", nil), (".a.nodeboot-0", nil), ("config.json", nil),
        ] as [(String, Int32?)])
    func names(name: String, pid: Int32?) {
        #expect(NodeFileSystem.stagingProcess(name) == pid)
    }

    @Test("stagedName and stagingProcess agree")
    func roundTrip() {
        #expect(NodeFileSystem.stagedName("environment.conf", pid: 4242) == ".environment.conf.nodeboot-4242")
        #expect(NodeFileSystem.stagingProcess(NodeFileSystem.stagedName("config.json", pid: 31)) == 31)
    }

    @Test("a dead writer's staged files and links go; a live writer's, other names, subdirectories and other directories stay")
    func sweep() throws {
        let directory = try Self.directory()
        let other = try Self.directory()
        let dead = try Self.deadPID()
        let me = ProcessInfo.processInfo.processIdentifier
        try Self.touch("\(directory)/.environment.conf.nodeboot-\(dead)")
        try FileManager.default.createSymbolicLink(
            atPath: "\(directory)/.aws-iam-authenticator.nodeboot-\(dead)", withDestinationPath: "/usr/bin/nodeboot")
        try Self.touch("\(directory)/.config.json.nodeboot-\(me)")  // this process's, written now: live
        try Self.touch("\(directory)/environment.conf")
        try Self.touch("\(directory)/.environment.conf.swp")
        try FileManager.default.createDirectory(
            atPath: "\(directory)/.dir.nodeboot-\(dead)", withIntermediateDirectories: true)
        try Self.touch("\(other)/.kubeconfig.nodeboot-\(dead)")
        let removed = NodeFileSystem.removeStaleStaged(in: [directory, directory + "/missing"])
        #expect(
            removed.sorted()
                == ["\(directory)/.aws-iam-authenticator.nodeboot-\(dead)", "\(directory)/.environment.conf.nodeboot-\(dead)"])
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: directory).sorted()
                == [
                    ".config.json.nodeboot-\(me)", ".dir.nodeboot-\(dead)", ".environment.conf.swp", "environment.conf",
                ])
        #expect(FileManager.default.fileExists(atPath: "\(other)/.kubeconfig.nodeboot-\(dead)"))
    }

    @Test("a live pid that started after the file was written is a reused pid: the file goes")
    func reusedPID() throws {
        let directory = try Self.directory()
        let me = ProcessInfo.processInfo.processIdentifier
        // Written (by its mtime) a day before this process started: not this process's.
        try Self.touch("\(directory)/.ca.crt.nodeboot-\(me)", age: 86400 + ProcessInfo.processInfo.systemUptime)
        try Self.touch("\(directory)/.config.toml.nodeboot-\(me)")
        #expect(NodeFileSystem.removeStaleStaged(in: [directory]) == ["\(directory)/.ca.crt.nodeboot-\(me)"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory) == [".config.toml.nodeboot-\(me)"])
    }

    @Test("a failed writeAll removes its staged files and the directories it created, and changes no target")
    func failedWriteLeavesNothing() throws {
        let root = try Self.directory()
        try FileManager.default.createDirectory(atPath: root + "/etc", withIntermediateDirectories: true)
        try Data("old\n".utf8).write(to: URL(fileURLWithPath: root + "/etc/a.conf"))
        // The third file's staged name is taken by a directory: staging it fails after two were staged,
        // one of them in directories this call created.
        let me = ProcessInfo.processInfo.processIdentifier
        try FileManager.default.createDirectory(
            atPath: root + "/etc/.c.conf.nodeboot-\(me)", withIntermediateDirectories: true)
        #expect(throws: NodeFileSystem.Failure.self) {
            try NodeFileSystem.writeAll(
                [
                    (root + "/etc/a.conf", Array("new\n".utf8), 0o644),
                    (root + "/etc/systemd/system/kubelet.service.d/environment.conf", Array("x\n".utf8), 0o644),
                    (root + "/etc/c.conf", Array("c\n".utf8), 0o644),
                ], links: [(root + "/usr/local/bin/aws-iam-authenticator", "/usr/bin/nodeboot")])
        }
        #expect(try String(contentsOfFile: root + "/etc/a.conf", encoding: .utf8) == "old\n")
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: root + "/etc").sorted()
                == [".c.conf.nodeboot-\(me)", "a.conf"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: root).sorted() == ["etc"])
    }

    @Test("links go in the same batch: staged beside their target, renamed over the old link")
    func links() throws {
        let root = try Self.directory()
        try FileManager.default.createDirectory(atPath: root + "/bin", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: root + "/bin/helper", withDestinationPath: "/old/nodeboot")
        try NodeFileSystem.writeAll(
            [(root + "/etc/a.conf", Array("a\n".utf8), 0o644)],
            links: [(root + "/bin/helper", "/usr/bin/nodeboot"), (root + "/opt/cni/bin/nodeboot-cni", "/usr/bin/nodeboot-cni")])
        #expect(NodeFileSystem.linkTarget(root + "/bin/helper") == "/usr/bin/nodeboot")
        #expect(NodeFileSystem.linkTarget(root + "/opt/cni/bin/nodeboot-cni") == "/usr/bin/nodeboot-cni")
        #expect(try FileManager.default.contentsOfDirectory(atPath: root + "/bin") == ["helper"])
    }
}
