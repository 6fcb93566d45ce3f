import Bootstrap
import Foundation
import NodeRender
import Support
import TestSupport
import Testing

/// Issue 15: apply all or nothing on a full disk, one init at a time (the lock), and a report
/// that tells an interrupted run from a finished one. (Real processes killed at random moments:
/// scripts/kill-test.py.)
@Suite("interrupted runs: full disk, the init lock, status", .serialized)
struct InterruptedRunTests {
    static let root = geteuid() == 0
    static func shell(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw NodeBootError(.io, "\(arguments.joined(separator: " ")) exited \(process.terminationStatus)")
        }
    }

    /// Every regular file and directory under `top`: path → bytes (nil for a directory).
    static func tree(_ top: String) -> [String: Data?] {
        var result: [String: Data?] = [:]
        let enumerator = FileManager.default.enumerator(atPath: top)
        while let relative = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: top + "/" + relative, isDirectory: &isDirectory)
            result[relative] = isDirectory.boolValue ? nil : FileManager.default.contents(atPath: top + "/" + relative)
        }
        return result
    }

    static func files(_ version: String) -> [NodeFile] {
        let body = String(repeating: "\(version) line of configuration\n", count: 60)
        var files = [
            NodeFile("/etc/kubernetes/kubelet/config.json", body), NodeFile("/etc/eks/kubelet/environment", body),
            NodeFile("/etc/containerd/config.toml", body), NodeFile("/var/lib/kubelet/kubeconfig", body, mode: 0o600),
            NodeFile("/etc/kubernetes/pki/ca.crt", body),
        ]
        if version == "new" {  // in directories the old configuration does not have
            files.insert(NodeFile("/etc/systemd/system/kubelet.service.d/environment.conf", body), at: 2)
            files.insert(NodeFile("/etc/systemd/system/containerd.service.d/environment.conf", body), at: 4)
        }
        return files
    }

    @Test(
        "a full tmpfs: each apply is all new, or fails naming the file with every old file in place, nothing staged, no new directory",
        .enabled(if: root, "needs root: mount -t tmpfs"))
    func fullDisk() throws {
        let mount = FileManager.default.temporaryDirectory.appendingPathComponent("full-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: mount, withIntermediateDirectories: true)
        var outcomes: [String] = []
        for free in stride(from: 0, through: 48, by: 4) {
            try Self.shell(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", mount])
            defer { try? Self.shell(["umount", mount]) }
            let applier = Applier(paths: NodePaths(root: mount + "/root"))
            _ = try applier.apply(Self.files("old"))
            let old = Self.tree(mount + "/root")
            var info = statvfs()
            statvfs(mount, &info)
            let available = Int(info.f_bavail) * Int(info.f_frsize) / 1024
            try Data(count: max(0, available - free) * 1024).write(to: URL(fileURLWithPath: mount + "/filler"))
            do {
                let changes = try applier.apply(Self.files("new"))
                outcomes.append("\(free):new")
                #expect(changes.allSatisfy { $0.action != .unchanged })
                for file in Self.files("new") {
                    #expect(FileManager.default.contents(atPath: mount + "/root" + file.path) == Data(file.bytes))
                }
            } catch {
                outcomes.append("\(free):old")
                #expect(error.code == .io && error.message.contains("No space left on device"), "\(error)")
                #expect(error.hint?.contains("no file was changed") == true)
                #expect(Self.tree(mount + "/root") == old, "\(free) KiB free: the tree changed")
            }
        }
        // The sizes cover both outcomes, so failures came at different staged files.
        #expect(outcomes.contains { $0.hasSuffix(":old") } && outcomes.contains { $0.hasSuffix(":new") }, "\(outcomes)")
    }

    @Test("a second init waits for the lock, then refuses naming the holder; it wrote nothing, not even status.json")
    func lockRefuses() async throws {
        try await InitServiceTests.withNode { node in
            _ = try await node.run().get()
            let before = try InitServiceTests.snapshot(node.root)
            let report = FileManager.default.contents(atPath: node.root + NodePaths.statusFile)
            try node.write("  kubelet:\n    flags: [--v=4]\n")  // would change a file
            var held: InitLock? = try await InitLock.acquire(NodePaths(root: node.root), timeout: .seconds(1)) { _ in }
            var options = node.options()
            options.lockTimeout = .milliseconds(400)
            let started = ContinuousClock.now
            let result = await node.run(options)
            #expect(ContinuousClock.now - started >= .milliseconds(400))
            guard case .failure(let error) = result else {
                Issue.record("init ran while another held the lock")
                return
            }
            #expect(error.code == .io)
            #expect(error.message.contains("pid \(getpid())") && error.message.contains("still holds"), "\(error.message)")
            #expect(error.message.contains(node.root + "/run/nodeboot/init.lock"))
            #expect(try InitServiceTests.snapshot(node.root) == before)
            #expect(FileManager.default.contents(atPath: node.root + NodePaths.statusFile) == report)
            #expect(held != nil)
            held = nil  // released: the next run proceeds
            let again = try await node.run(options).get()
            #expect(again.files.contains { $0.path == "/etc/eks/kubelet/environment" && $0.action == .updated })
        }
    }

    @Test("a holder killed by SIGKILL releases the lock at once")
    func deadHolder() async throws {
        let root = try NodeFixture.root()
        let paths = NodePaths(root: root)
        try FileManager.default.createDirectory(atPath: root + "/run/nodeboot", withIntermediateDirectories: true)
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/bin/sh")
        holder.arguments = ["-c", "exec 9>\(root)/run/nodeboot/init.lock; flock 9; echo locked; exec sleep 60"]
        let out = Pipe()
        holder.standardOutput = out
        try holder.run()
        _ = out.fileHandleForReading.availableData  // "locked"
        await #expect(throws: NodeBootError.self) {
            _ = try await InitLock.acquire(paths, timeout: .milliseconds(300)) { _ in }
        }
        kill(holder.processIdentifier, SIGKILL)
        holder.waitUntilExit()
        let started = ContinuousClock.now
        let lock = try await InitLock.acquire(paths, timeout: .seconds(5)) { _ in }
        #expect(ContinuousClock.now - started < .milliseconds(500))
        #expect(InitLock.isHeld(paths, by: getpid()))
        _ = lock
    }

    @Test("status: a running report whose pid holds no lock reads as interrupted; one whose pid holds it, as running")
    func interruptedStatus() async throws {
        let root = try NodeFixture.root()
        let paths = NodePaths(root: root)
        try FileManager.default.createDirectory(atPath: root + "/run/nodeboot", withIntermediateDirectories: true)
        var running = StatusReport.running(startedAt: Date(), report: InitReport())
        #expect(running.result == .running && running.finishedAt == nil && running.pid == getpid())
        let file = URL(fileURLWithPath: root + NodePaths.statusFile)
        // No lock held by anyone.
        try Data(running.encoded()).write(to: file)
        let (bytes, read) = try StatusReport.read(paths)
        #expect(read.result == .interrupted)
        #expect(String(decoding: bytes, as: UTF8.self).contains("\"result\" : \"interrupted\""))
        #expect(read.text().hasPrefix("last init: INTERRUPTED (pid \(getpid()))"))
        #expect(read.text().contains("run `nodeboot init` again"))
        // This process holds the lock: still running.
        let lock = try await InitLock.acquire(paths, timeout: .seconds(1)) { _ in }
        #expect(try StatusReport.read(paths).1.result == .running)
        // Held, but by another pid than the report's: interrupted.
        running.pid = 1
        try Data(running.encoded()).write(to: file)
        #expect(try StatusReport.read(paths).1.result == .interrupted)
        _ = lock
    }
}
