import Bootstrap
import Foundation
import Logging
import NodeConfig
import NodeRender
import Systemd
import TestSupport
import Testbed
import Testing

/// The run phase's service work through a recording service manager: what is reloaded, started
/// and restarted for each kind of change, the order, failures with journal lines, status.json,
/// and that a repeated run touches nothing. (The same against a real systemd: scripts/systemd-test.py.)
@Suite("init run phase: services", .serialized)
struct InitServiceTests {
    struct Node {
        var root: String
        var config: String
        var testbed: Testbed
        var manager = RecordingServiceManager()

        func options(daemons: Set<Daemon>? = nil) -> InitOptions {
            var options = InitOptions()
            options.root = root
            options.sources = [.file(config)]
            options.manageServices = true
            options.daemons = daemons
            options.unitTimeout = .seconds(5)
            return options
        }

        /// One init; `path` replaces the environment's PATH (a test's own tools first).
        func run(_ options: InitOptions? = nil, path: String? = nil) async -> Result<InitReport, NodeBootError> {
            let manager = self.manager
            var environment = testbed.environment
            if let path { environment["PATH"] = path }
            let runner = NodeInit(
                options: options ?? self.options(), environment: environment,
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                serviceManager: { () throws(SystemdError) -> any ServiceManager in manager })
            do throws(NodeBootError) {
                return .success(try await runner.run())
            } catch {
                return .failure(error)
            }
        }

        /// InitBehaviourTests' NodeConfig plus `spec` (lines under `spec:`).
        func write(_ spec: String) throws {
            try Data((NodeFixture.config + "\n" + spec).utf8).write(to: URL(fileURLWithPath: config))
        }

        func status() throws -> StatusReport {
            try StatusReport.decode(Array(try Data(contentsOf: URL(fileURLWithPath: root + NodePaths.statusFile))))
        }
    }

    static func withNode(_ body: (Node) async throws -> Void) async throws {
        let testbed = try await Testbed.start()
        do {
            let root = try NodeFixture.root()
            let node = Node(root: root, config: root + "-config.yaml", testbed: testbed)
            try node.write("")
            try await body(node)
        } catch {
            try await testbed.shutdown()
            throw error
        }
        try await testbed.shutdown()
    }

    /// inode, mtime and bytes of every regular file under the root, except the status report.
    static func snapshot(_ root: String) throws -> [String: String] {
        var result: [String: String] = [:]
        let enumerator = FileManager.default.enumerator(atPath: root)
        while let relative = enumerator?.nextObject() as? String {
            // The report is rewritten by every run, by design.
            guard relative != "run/nodeboot/status.json" else { continue }
            let path = root + "/" + relative
            let attributes = try FileManager.default.attributesOfItem(atPath: path)
            guard attributes[.type] as? FileAttributeType == .typeRegular else { continue }
            let inode = try #require(attributes[.systemFileNumber].map { "\($0)" })
            let modified = try #require((attributes[.modificationDate] as? Date)?.timeIntervalSince1970)
            let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
            result[relative] = "\(inode) \(modified) \(bytes.base64EncodedString())"
        }
        return result
    }

    @Test("first run starts containerd then the kubelet; a second run changes no file and touches no unit")
    func firstRunThenRepair() async throws {
        try await Self.withNode { node in
            let first = try await node.run().get()
            #expect(node.manager.actions == ["start containerd.service", "start kubelet.service"])
            #expect(first.services.managed)
            #expect(first.services.reloaded == false)
            #expect(first.phases.map(\.name) == [.source, .validate, .discover, .render, .apply, .run])
            let status = try node.status()
            #expect(status.result == .ok)
            #expect(status.units.actions.map(\.action) == [.start, .start])
            #expect(status.node.registration == .notChecked)
            #expect(status.text().contains(": not checked ("), "\(status.text())")

            let before = try Self.snapshot(node.root)
            node.manager.clearCalls()
            let second = try await node.run().get()
            #expect(node.manager.actions == [])
            #expect(second.services.actions.map(\.action) == [.none, .none])
            #expect(second.files.allSatisfy { $0.action == .unchanged })
            #expect(try Self.snapshot(node.root) == before)
            #expect(try node.status().units.restarted == [])
        }
    }

    @Test("a kubelet setting changes: only the kubelet restarts")
    func kubeletChange() async throws {
        try await Self.withNode { node in
            _ = try await node.run().get()
            try node.write("  kubelet:\n    flags: [--v=4]")
            node.manager.clearCalls()
            let report = try await node.run().get()
            #expect(node.manager.actions == ["restart kubelet.service"])
            #expect(report.services.actions.first { $0.unit == "kubelet.service" }?.reason == "configuration changed")
        }
    }

    @Test("--dry-run says which units the change would restart, and asks nothing of systemd")
    func dryRunNamesUnits() async throws {
        try await Self.withNode { node in
            _ = try await node.run().get()
            try node.write("  kubelet:\n    flags: [--v=4]")
            node.manager.clearCalls()
            var options = node.options()
            options.dryRun = true
            let report = try await node.run(options).get()
            #expect(node.manager.calls.isEmpty)
            #expect(report.notes.contains { $0.hasPrefix("the run phase would restart kubelet.service") })
            #expect(!report.notes.contains { $0.contains("containerd.service") || $0.contains("daemon-reload") })
        }
    }

    @Test("a containerd setting changes: only containerd restarts")
    func containerdChange() async throws {
        try await Self.withNode { node in
            _ = try await node.run().get()
            try node.write(
                "  containerd:\n    config: |\n      [plugins.\"io.containerd.grpc.v1.cri\"]\n      max_concurrent_downloads = 5")
            node.manager.clearCalls()
            _ = try await node.run().get()
            #expect(node.manager.actions == ["restart containerd.service"])
        }
    }

    @Test("the manager's default environment changes: daemon-reload, then containerd and the kubelet restart")
    func defaultEnvironment() async throws {
        try await Self.withNode { node in
            _ = try await node.run().get()
            try node.write("  instance:\n    environment:\n      default:\n        NO_PROXY: localhost")
            node.manager.clearCalls()
            let report = try await node.run().get()
            #expect(
                node.manager.actions == ["daemon-reload", "restart containerd.service", "restart kubelet.service"])
            #expect(report.services.reloaded)
            node.manager.clearCalls()
            _ = try await node.run().get()
            #expect(node.manager.actions == [])
        }
    }

    @Test("a unit that crashed since the last run is started again; the other is left alone")
    func crashedUnitIsStarted() async throws {
        try await Self.withNode { node in
            _ = try await node.run().get()
            node.manager.set(
                "containerd.service",
                UnitState(loadState: "loaded", activeState: "failed", subState: "failed", result: "signal"))
            node.manager.clearCalls()
            let report = try await node.run().get()
            #expect(node.manager.actions == ["start containerd.service"])
            #expect(report.services.actions.first?.reason == "not running (failed)")
        }
    }

    @Test("--daemon containerd: only containerd is started and registration is not checked")
    func daemonFilter() async throws {
        try await Self.withNode { node in
            let report = try await node.run(node.options(daemons: [.containerd])).get()
            #expect(node.manager.actions == ["start containerd.service"])
            #expect(report.node.registration == .notChecked)
        }
    }

    @Test("--daemon nodeboot-ipamd: started between containerd and the kubelet; its NodeConfig environment restarts only it")
    func ipamd() async throws {
        try await Self.withNode { node in
            let options = node.options(daemons: [.containerd, .ipamd, .kubelet])
            _ = try await node.run(options).get()
            #expect(
                node.manager.actions == ["start containerd.service", "start nodeboot-ipamd.service", "start kubelet.service"])
            try node.write("  instance:\n    environment:\n      nodeboot-ipamd:\n        WARM_IP_TARGET: \"5\"")
            node.manager.clearCalls()
            _ = try await node.run(options).get()
            #expect(node.manager.actions == ["daemon-reload", "restart nodeboot-ipamd.service"])
            let dropIn = try String(
                contentsOfFile: node.root + "/etc/systemd/system/nodeboot-ipamd.service.d/environment.conf", encoding: .utf8)
            #expect(dropIn == "[Service]\nEnvironment=\"WARM_IP_TARGET=5\"\n")
            // Without --daemon it is nodeadm's two: ipamd is opt-in until it grows the pool through EC2.
            node.manager.clearCalls()
            _ = try await node.run().get()
            #expect(!node.manager.actions.contains { $0.contains("ipamd") })
        }
    }

    @Test("a unit that fails: the error names it and carries its journal lines; the kubelet is not started")
    func failingUnit() async throws {
        try await Self.withNode { node in
            node.manager.fail(
                "containerd.service",
                journal: [
                    "containerd: failed to load TOML: /etc/containerd/config.toml: (3, 3): Can't convert 5(int64) to string",
                    "containerd.service: Main process exited, code=exited, status=1/FAILURE",
                ])
            let result = await node.run()
            guard case .failure(let error) = result else {
                Issue.record("init succeeded with a failing containerd")
                return
            }
            #expect(error.code.exitStatus == 1)
            #expect(error.message.contains("containerd.service"))
            #expect(error.message.contains("Can't convert 5(int64) to string"))
            #expect(error.hint?.contains("journalctl -u containerd.service") == true)
            #expect(node.manager.actions == ["start containerd.service"])
            let status = try node.status()
            #expect(status.result == .failed)
            #expect(status.phases.last?.name == .run)
            #expect(status.phases.last?.result == .failed)
            #expect(status.error?.message.contains("Main process exited") == true)
            #expect(status.units.managed)
            #expect(status.units.actions.map(\.unit) == ["containerd.service"])
            #expect(status.units.actions.first?.result == .failed)

            // Repair: the next run retries containerd (its configuration was never confirmed), then the kubelet.
            node.manager.clearCalls()
            _ = try await node.run().get()
            #expect(node.manager.actions == ["start containerd.service", "start kubelet.service"])
        }
    }

    @Test("the kubelet fails after containerd started: status.json keeps containerd's start and the kubelet's failure")
    func partialRunIsReported() async throws {
        try await Self.withNode { node in
            node.manager.fail("kubelet.service", journal: ["kubelet: failed to run Kubelet: invalid configuration"])
            guard case .failure(let error) = await node.run() else {
                Issue.record("init succeeded with a failing kubelet")
                return
            }
            #expect(error.message.contains("kubelet.service"))
            let status = try node.status()
            #expect(status.units.actions.map(\.unit) == ["containerd.service", "kubelet.service"])
            #expect(status.units.actions.map(\.result) == [.ok, .failed])
            #expect(status.units.restarted == ["containerd.service"])
            #expect(status.node.registration == .notChecked)
        }
    }

    @Test("the configuration changes while a unit is still activating: it is restarted, not merged into the old start")
    func activatingUnitIsRestarted() async throws {
        try await Self.withNode { node in
            _ = try await node.run().get()
            node.manager.set(
                "containerd.service", UnitState(loadState: "loaded", activeState: "activating", subState: "start"))
            try node.write(
                "  containerd:\n    config: |\n      [plugins.\"io.containerd.grpc.v1.cri\"]\n      max_concurrent_downloads = 5")
            node.manager.clearCalls()
            _ = try await node.run().get()
            #expect(node.manager.actions == ["restart containerd.service"])
        }
    }

    @Test("the kubelet crashes after systemd called it started: the register wait ends at once with its journal lines")
    func kubeletCrashEndsTheWait() async throws {
        try await Self.withNode { node in
            // No endpoint or CA: DescribeCluster names the testbed's API server, which the token helper can reach.
            try Data("apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: my-cluster\n".utf8)
                .write(to: URL(fileURLWithPath: node.config))
            node.manager.crash("kubelet.service", after: 2, journal: ["kubelet: unknown flag: --bogus"])
            var options = node.options()
            options.waitReady = true
            options.registerTimeout = .seconds(60)
            options.nodebootPath = Paths.debugBinaries.appendingPathComponent("nodeboot").path
            let start = ContinuousClock.now
            guard case .failure(let error) = await node.run(options) else {
                Issue.record("init succeeded although the kubelet crashed")
                return
            }
            #expect(ContinuousClock.now - start < .seconds(20))
            #expect(error.message.contains("kubelet.service keeps failing"))
            #expect(error.message.contains("unknown flag: --bogus"))
            #expect(error.hint?.contains("journalctl -u kubelet.service") == true)
            let status = try node.status()
            #expect(status.node.registration == .failed)
            #expect(status.phases.last?.name == .register)
        }
    }

    @Test("kubelet.service missing from the image: a clear error naming the unit and the fix")
    func missingUnit() async throws {
        try await Self.withNode { node in
            let bare = RecordingServiceManager(installed: ["containerd.service"])
            var copy = node
            copy.manager = bare
            guard case .failure(let error) = await copy.run() else {
                Issue.record("init succeeded without kubelet.service")
                return
            }
            #expect(error.message.contains("kubelet.service is not installed"))
            #expect(error.hint?.contains("units/kubelet.service") == true)
        }
    }

    @Test("no systemd: the run phase says so and how to proceed; the config phase's files are written")
    func noSystemd() async throws {
        try await Self.withNode { (node: Node) async throws -> Void in
            let runner = NodeInit(
                options: node.options(), environment: node.testbed.environment,
                logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }),
                serviceManager: { () throws(SystemdError) -> any ServiceManager in
                    throw SystemdError(
                        .unavailable, "cannot connect to systemd's D-Bus (sd_bus_open_system: No such file or directory)")
                })
            do throws(NodeBootError) {
                _ = try await runner.run()
                Issue.record("init succeeded without a service manager")
            } catch {
                #expect(error.message.contains("cannot manage containerd and the kubelet"))
                #expect(error.hint?.contains("--skip run") == true)
                #expect(error.code == .systemd)
            }
            #expect(FileManager.default.fileExists(atPath: node.root + "/etc/containerd/config.toml"))
            let status = try node.status()
            #expect(status.result == .failed)
            #expect(status.error?.code == "systemd")
            // Nothing was asked of systemd: the units are reported as not managed, as before the run phase.
            #expect(!status.units.managed)
            #expect(status.text().contains("units: not managed (run phase skipped)"), "\(status.text())")
        }
    }

    @Test("under --root without a fake manager, services are not managed and nothing is asked of systemd")
    func rootDoesNotManage() async throws {
        try await Self.withNode { node in
            var options = node.options()
            options.manageServices = nil
            let report = try await node.run(options).get()
            #expect(node.manager.calls.isEmpty)
            #expect(report.services.managed == false)
        }
    }

    /// A node of `cpus` CPUs and `gibibytes` of online memory (128 MiB blocks), a `ctr` that logs
    /// its arguments and the kubelet's state at that moment to `ctr.log`, and `/etc/eks/pause.tar`.
    static func sociNode(_ node: Node, cpus: Int, gibibytes: Int) throws {
        let fm = FileManager.default
        for cpu in 0..<cpus {
            try fm.createDirectory(atPath: node.root + "/sys/devices/system/cpu/cpu\(cpu)", withIntermediateDirectories: true)
        }
        try Data("0-\(cpus - 1)\n".utf8).write(to: URL(fileURLWithPath: node.root + "/sys/devices/system/cpu/online"))
        let memory = node.root + "/sys/devices/system/memory"
        try fm.createDirectory(atPath: memory, withIntermediateDirectories: true)
        try Data("8000000\n".utf8).write(to: URL(fileURLWithPath: memory + "/block_size_bytes"))
        for block in 0..<(gibibytes * 8) {
            try fm.createDirectory(atPath: memory + "/memory\(block)", withIntermediateDirectories: true)
            try Data("1\n".utf8).write(to: URL(fileURLWithPath: memory + "/memory\(block)/online"))
        }
        try fm.createDirectory(atPath: node.root + "/usr/bin", withIntermediateDirectories: true)
        let ctr = node.root + "/usr/bin/ctr"
        try Data("#!/bin/sh\necho \"$*\" >> \"$(dirname \"$0\")/ctr.log\"\n".utf8).write(to: URL(fileURLWithPath: ctr))
        try fm.setAttributes([.posixPermissions: 0o755], ofItemAtPath: ctr)
        try Data("pause".utf8).write(to: URL(fileURLWithPath: node.root + "/etc/eks/pause.tar"))
    }

    @Test("FastImagePull on a 4-CPU, 8 GiB node: SOCI files, a daemon-reload, the pause image imported after containerd")
    func fastImagePull() async throws {
        try await Self.withNode { node in
            try Self.sociNode(node, cpus: 4, gibibytes: 8)
            try node.write("  featureGates:\n    FastImagePull: true")
            let report = try await node.run().get()
            #expect(report.services.reloaded)
            #expect(node.manager.actions == ["daemon-reload", "start containerd.service", "start kubelet.service"])
            let log = try String(contentsOfFile: node.root + "/usr/bin/ctr.log", encoding: .utf8)
            #expect(
                log
                    == "--namespace k8s.io images import --snapshotter soci --discard-unpacked-layers=false --local /etc/eks/pause.tar\n"
            )
            #expect(FileManager.default.fileExists(atPath: node.root + SOCISnapshotter.configPath))
            #expect(FileManager.default.fileExists(atPath: node.root + SOCISnapshotter.dropInPath))
            #expect(!report.warnings.contains { $0.contains("FastImagePull") })
        }
    }

    @Test("FastImagePull on a 2-CPU node: a warning saying why, no SOCI file, no import")
    func fastImagePullTooSmall() async throws {
        try await Self.withNode { node in
            try Self.sociNode(node, cpus: 2, gibibytes: 8)
            try node.write("  featureGates:\n    FastImagePull: true")
            let report = try await node.run().get()
            #expect(
                report.warnings.contains {
                    $0.contains("FastImagePull needs ≥ 4 online CPUs") && $0.contains("has 2 and 8.0 GiB")
                })
            #expect(!FileManager.default.fileExists(atPath: node.root + SOCISnapshotter.configPath))
            #expect(!FileManager.default.fileExists(atPath: node.root + "/usr/bin/ctr.log"))
        }
    }
}
