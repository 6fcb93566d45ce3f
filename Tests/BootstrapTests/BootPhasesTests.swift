import Bootstrap
import Foundation
import Logging
import NodeConfig
import TestSupport
import Testbed
import Testing

/// The image's two boot units (cloud-init/): `init --skip run` before cloud-init's network stage and `init --skip
/// config` after cloud-final, both with the user data, /etc/eks/nodeadm.d/ and the config cache. Under `--root` the run phase manages no service, so both halves run here against the testbed.
@Suite("the boot pair: config phase, user scripts, run phase", .serialized)
struct BootPhasesTests {
    static let cache = "/run/eks/nodeadm/config.json"
    static let dropIns = "/etc/eks/nodeadm.d"

    static func run(root: String, skip: Set<InitOptions.Phase>, dropIns: Bool, testbed: Testbed) async -> (
        report: InitReport?, error: NodeBootError?
    ) {
        var options = InitOptions()
        options.root = root
        options.skip = skip
        options.configCache = root + cache
        options.sources = [.imdsUserData] + (dropIns ? [.file(root + Self.dropIns + "/")] : [])
        let runner = NodeInit(
            options: options, environment: testbed.environment,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        do {
            return (try await runner.run(), nil)
        } catch {
            return (nil, error)
        }
    }

    /// Every regular file under ROOT (relative path → bytes), without /run (status, cache, marker) and reset's
    /// record, which names the `--config-cache` path as given (under each test's own root).
    static func files(_ root: String) throws -> [String: Data] {
        var found: [String: Data] = [:]
        let enumerator = try #require(FileManager.default.enumerator(atPath: root))
        for case let path as String in enumerator where !path.hasPrefix("run/") && path != "var/lib/nodeboot/installed.json" {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: root + "/" + path, isDirectory: &isDirectory), !isDirectory.boolValue {
                found[path] = FileManager.default.contents(atPath: root + "/" + path)
            }
        }
        return found
    }

    @Test("config phase then run phase leave the node one full run leaves (same files, same bytes)")
    func pairEqualsOneRun() async throws {
        let testbed = try await Testbed.start()
        let pair = try NodeFixture.root()
        let single = try NodeFixture.root()
        for root in [pair, single] {
            try FileManager.default.createDirectory(atPath: root + Self.dropIns, withIntermediateDirectories: true)
        }
        let config = await Self.run(root: pair, skip: [.run], dropIns: true, testbed: testbed)
        #expect(config.error == nil, "\(String(describing: config.error))")
        let run = await Self.run(root: pair, skip: [.config], dropIns: true, testbed: testbed)
        #expect(run.error == nil, "\(String(describing: run.error))")
        let full = await Self.run(root: single, skip: [], dropIns: true, testbed: testbed)
        #expect(full.error == nil, "\(String(describing: full.error))")
        try await testbed.shutdown()

        #expect(run.report?.configFromCache == true, "the run phase reuses the config phase's discovery")
        #expect(run.report?.files.isEmpty == true, "the run phase writes nothing: \(String(describing: run.report?.files))")
        let pairFiles = try Self.files(pair)
        let singleFiles = try Self.files(single)
        #expect(pairFiles.count > 5)
        #expect(Set(pairFiles.keys) == Set(singleFiles.keys))
        for (path, bytes) in pairFiles {
            #expect(singleFiles[path] == bytes, "\(path) differs between the pair and one run")
        }
    }

    @Test(
        "a NodeConfig dropped into nodeadm.d between the phases: the run phase writes the files it changes, a script's edit of another generated file stays"
    )
    func dropInKeepsScriptEdits() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        try FileManager.default.createDirectory(atPath: root + Self.dropIns, withIntermediateDirectories: true)
        let config = await Self.run(root: root, skip: [.run], dropIns: true, testbed: testbed)
        #expect(config.error == nil, "\(String(describing: config.error))")

        // What the example user data's script does (cloud-init/examples/mime-multipart.txt): edit a generated file,
        // drop a NodeConfig that changes the containerd configuration only.
        let kubelet = root + "/etc/kubernetes/kubelet/config.json"
        let generated = try #require(FileManager.default.contents(atPath: kubelet))
        let edited = generated + Data("\n".utf8)
        try edited.write(to: URL(fileURLWithPath: kubelet))
        let containerd = root + "/etc/containerd/config.toml"
        let containerdBefore = try #require(FileManager.default.contents(atPath: containerd))
        try Data(
            """
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            spec:
              containerd:
                config: |
                  [plugins."io.containerd.grpc.v1.cri".containerd]
                  discard_unpacked_layers = false

            """.utf8
        ).write(to: URL(fileURLWithPath: root + Self.dropIns + "/50-containerd.yaml"))

        await testbed.clearRequests()
        let run = await Self.run(root: root, skip: [.config], dropIns: true, testbed: testbed)
        #expect(run.error == nil, "\(String(describing: run.error))")
        // The drop-in changes nothing discovery reads: the config unit's discovery of this boot is reused.
        let runCalls = await testbed.requests().filter { $0.endpoint != "imds" }.map { $0.action ?? $0.path }
        #expect(runCalls.isEmpty, "the run phase called \(runCalls)")
        #expect(run.report?.configFromCache == false, "the config differs from the cache")

        #expect(FileManager.default.contents(atPath: kubelet) == edited, "the script's edit of config.json was reverted")
        let containerdAfter = try #require(FileManager.default.contents(atPath: containerd))
        #expect(containerdAfter != containerdBefore)
        #expect(String(decoding: containerdAfter, as: UTF8.self).contains("discard_unpacked_layers = false"))
        let written = (run.report?.files ?? []).filter { $0.action != .unchanged }.map(\.path)
        #expect(written.contains("/etc/containerd/config.toml"), "\(written)")
        #expect(!written.contains("/etc/kubernetes/kubelet/config.json"), "\(written)")
        #expect(run.report?.notes.contains { $0.contains("left as they are on the node") } == true)
        let cached = String(decoding: FileManager.default.contents(atPath: root + Self.cache) ?? Data(), as: UTF8.self)
        #expect(cached.contains("discard_unpacked_layers"), "the cache holds the run phase's config")

        // A reboot: /run is empty (no cache), the drop-in is still there, the script does not run again (cloud-init
        // runs user scripts once per instance). The config unit reads nodeadm.d too, so it renders what the run phase
        // wrote: only the script's edit is undone (the config phase writes every node file as rendered, as
        // nodeadm-config does at every boot); what must outlast a reboot belongs in a NodeConfig.
        try FileManager.default.removeItem(atPath: root + "/run")
        let reboot = await Self.run(root: root, skip: [.run], dropIns: true, testbed: testbed)
        try await testbed.shutdown()
        #expect(reboot.error == nil, "\(String(describing: reboot.error))")
        let rewritten = (reboot.report?.files ?? []).filter { $0.action != .unchanged }.map(\.path)
        #expect(rewritten == ["/etc/kubernetes/kubelet/config.json"], "after a reboot the config phase wrote \(rewritten)")
    }

    @Test(
        "a NodeConfig dropped into nodeadm.d that changes what discovery reads (a feature gate): the run phase discovers again"
    )
    func dropInRediscovers() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        try FileManager.default.createDirectory(atPath: root + Self.dropIns, withIntermediateDirectories: true)
        let config = await Self.run(root: root, skip: [.run], dropIns: true, testbed: testbed)
        #expect(config.error == nil, "\(String(describing: config.error))")
        try Data(
            """
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            spec:
              featureGates:
                InstanceIdNodeName: true

            """.utf8
        ).write(to: URL(fileURLWithPath: root + Self.dropIns + "/50-gates.yaml"))
        await testbed.clearRequests()
        let run = await Self.run(root: root, skip: [.config], dropIns: true, testbed: testbed)
        let imds = await testbed.requests().filter { $0.endpoint == "imds" }.map(\.path)
        try await testbed.shutdown()
        #expect(run.error == nil, "\(String(describing: run.error))")
        #expect(imds.contains { $0.contains("instance-identity/document") }, "no discovery in the run phase: \(imds)")
        #expect(run.report?.nodeName.hasPrefix("i-") == true, "\(String(describing: run.report?.nodeName))")
    }

    @Test(
        "AL2-style user data (a script calling /etc/eks/bootstrap.sh): the config phase with --defer-to-script does nothing and succeeds; without it, and with empty user data, it fails"
    )
    func scriptUserDataDefers() async throws {
        let script = "#!/bin/bash\nset -ex\n/etc/eks/bootstrap.sh my-cluster --kubelet-extra-args '--node-labels=al2=yes'\n"
        let mime =
            "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"B\"\n\n--B\nContent-Type: text/x-shellscript\n\n"
            + script + "\n--B--\n"
        for (userData, defers) in [(script, true), (mime, true), ("#cloud-config\nruncmd: [true]\n", true), ("hello\n", false)] {
            let testbed = try await Testbed.start(try TestbedConfiguration.bundled(userData: userData))
            let root = try NodeFixture.root()
            try FileManager.default.createDirectory(atPath: root + Self.dropIns, withIntermediateDirectories: true)
            var options = InitOptions()
            options.root = root
            options.skip = [.run]
            options.configCache = root + Self.cache
            options.sources = [.imdsUserData, .file(root + Self.dropIns + "/")]
            options.deferToScript = true
            let logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
            var deferred: InitReport?
            var failure: NodeBootError?
            do {
                deferred = try await NodeInit(options: options, environment: testbed.environment, logger: logger).run()
            } catch {
                failure = error
            }
            let awsCalls = await testbed.requests().filter { $0.endpoint != "imds" }
            options.deferToScript = false
            var plain: NodeBootError?
            do {
                _ = try await NodeInit(options: options, environment: testbed.environment, logger: logger).run()
            } catch {
                plain = error
            }
            try await testbed.shutdown()

            #expect(plain?.message.hasPrefix("no NodeConfig in any config source") == true, "\(String(describing: plain))")
            if defers {
                #expect(failure == nil, "\(userData): \(String(describing: failure))")
                #expect(deferred?.deferred?.contains("cloud-init runs later") == true, "\(String(describing: deferred))")
                #expect(deferred?.files.isEmpty == true)
                #expect(deferred?.phases.map(\.name) == [.source])
                #expect(awsCalls.isEmpty, "no AWS call: \(awsCalls)")
                #expect(
                    try Self.files(root).keys.sorted() == (try Self.files(try NodeFixture.root())).keys.sorted(),
                    "nothing written")
            } else {
                #expect(
                    failure?.message.hasPrefix("no NodeConfig in any config source") == true, "\(String(describing: failure))")
            }
        }
    }
}
