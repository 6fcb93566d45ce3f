import Foundation
import TestSupport
import Testbed
import Testing

/// `nodeboot status` as an operator runs it, after real `nodeboot init` runs against the testbed.
@Suite("nodeboot status", .serialized)
struct StatusCommandTests {
    static let binary = Paths.debugBinaries.appendingPathComponent("nodeboot").path

    /// A status reply's body with every field the daemon reports (docs/ipamd.md §7).
    static let statusBody =
        #"{"ready":true,"mode":"ipv4-secondary","instance":"i-1234567890abcdef0","instanceType":"m5.large","#
        + #""limits":"m5.large allows 3 ENIs × 10 IPv4 addresses","maxPods":29,"total":18,"assigned":5,"cooling":2,"#
        + #""free":11,"target":"WARM_ENI_TARGET=1: 11 available, 9 wanted","enis":[{"id":"eni-0a1","device":0,"#
        + #""primary":true,"addresses":9,"assigned":5},{"id":"eni-0b2","device":1,"primary":false,"addresses":9,"#
        + #""assigned":0}],"errors":[{"at":1767000000123,"message":"EC2 AssignPrivateIpAddresses: UnauthorizedOperation","#
        + #""hint":"allow ec2:AssignPrivateIpAddresses for the node role","count":3}],"lastReconcile":1767000005000,"#
        + #""adds":12,"deletes":7}"#

    /// The section's lines after its first, for `statusBody`.
    static let statusLines = """
          state: ready
          mode: ipv4-secondary
          instance: i-1234567890abcdef0 (m5.large)
          limits: m5.large allows 3 ENIs × 10 IPv4 addresses
          max pods: 29
          pool: 18 addresses: 5 assigned, 2 cooling, 11 free
          target: WARM_ENI_TARGET=1: 11 available, 9 wanted
          eni eni-0a1: device 0 (primary), 9 addresses, 5 assigned
          eni eni-0b2: device 1, 9 addresses, 0 assigned
          last reconcile: 2025-12-29T09:20:05Z
          requests: 12 adds, 7 deletes
          error: 2025-12-29T09:20:00Z (3 times) EC2 AssignPrivateIpAddresses: UnauthorizedOperation
            hint: allow ec2:AssignPrivateIpAddresses for the node role

        """

    /// A fake ipamd: a Unix socket at `socket` answering each connection's one line with
    /// `reply` and a newline; it prints each request line it reads.
    static func fakeIPAMD(socket: String, reply: String) async throws -> (process: Process, lines: LineReader) {
        try FileManager.default.createDirectory(
            atPath: (socket as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let script = """
            import os, socket
            path = \(String(reflecting: socket))
            reply = \(String(reflecting: reply)).encode() + b"\\n"
            try: os.unlink(path)
            except FileNotFoundError: pass
            server = socket.socket(socket.AF_UNIX); server.bind(path); server.listen(8)
            print(0, flush=True)
            while True:
                conn, _ = server.accept()
                data = b""
                while b"\\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk: break
                    data += chunk
                print(data.split(b"\\n")[0].decode(), flush=True)
                conn.sendall(reply)
                conn.close()
            """
        let (process, lines, _) = try await PythonServer.start(script)
        return (process, lines)
    }

    static func status(_ arguments: [String]) async throws -> ChildProcess.Result {
        try await ChildProcess.run([binary, "status"] + arguments, environment: ChildProcess.cleanEnvironment([:]))
    }

    /// The pod-network line of a node without the conflist and the plugin link.
    static let podNetworkMissing =
        "  pod network: not ready: no /etc/cni/net.d/10-nodeboot.conflist yet (ipamd writes it once it has an address "
        + "to give); no /opt/cni/bin/nodeboot-cni (nodeboot init --daemon nodeboot-ipamd links it)\n"

    @Test("--ipamd: the live status request's reply as text, field by field; -o json prints its status object")
    func ipamdLive() async throws {
        let root = try NodeFixture.root()
        // The pod network is ready: the conflist ipamd writes, the plugin init links.
        for (directory, file) in [("/etc/cni/net.d", "10-nodeboot.conflist"), ("/opt/cni/bin", "nodeboot-cni")] {
            try FileManager.default.createDirectory(atPath: root + directory, withIntermediateDirectories: true)
            FileManager.default.createFile(atPath: root + directory + "/" + file, contents: Data())
        }
        let socket = root + "/run/nodeboot/ipamd.sock"
        let (server, requests) = try await Self.fakeIPAMD(
            socket: socket, reply: #"{"v":"1.0","ok":true,"status":"# + Self.statusBody + "}")
        defer { kill(server.processIdentifier, SIGKILL) }
        let text = try await Self.status(["--ipamd", "--root", root])
        let json = try await Self.status(["--ipamd", "--root", root, "-o", "json"])

        #expect(try await requests.next(timeout: 5) == #"{"v":"1.0","op":"status"}"#)
        #expect(text.status == 0, "stderr: \(text.stderr)")
        #expect(
            text.stdout
                == "ipamd: live (\(socket))\n"
                + "  pod network: ready (/etc/cni/net.d/10-nodeboot.conflist, /opt/cni/bin/nodeboot-cni)\n"
                + Self.statusLines)
        #expect(json.status == 0, "stderr: \(json.stderr)")
        #expect(json.stdout == Self.statusBody + "\n")
    }

    @Test("--ipamd: missing fields are left out, unknown scalar ones shown; a refused request is shown as its error")
    func ipamdPartial() async throws {
        let root = try NodeFixture.root()
        let socket = root + "/run/nodeboot/ipamd.sock"
        let (server, _) = try await Self.fakeIPAMD(
            socket: socket,
            reply: #"{"v":"1.2","ok":true,"status":{"mode":"ipv4-secondary","instance":"i-0abc","free":3,"#
                + #""enis":[{"id":"eni-0a1","device":0,"primary":true}],"later":"kept","nested":{"x":1}}}"#)
        let text = try await Self.status(["--ipamd", "--root", root])
        kill(server.processIdentifier, SIGKILL)
        #expect(text.status == 0, "stderr: \(text.stderr)")
        #expect(
            text.stdout
                == "ipamd: live (\(socket))\n" + Self.podNetworkMissing
                + "  mode: ipv4-secondary\n  instance: i-0abc\n  pool: 3 free\n"
                + "  eni eni-0a1: device 0 (primary)\n  later: kept\n")

        let (refusing, _) = try await Self.fakeIPAMD(
            socket: socket,
            reply: #"{"v":"1.0","ok":false,"error":{"code":"notReady","retry":true,"message":"reading IMDS"}}"#)
        defer { kill(refusing.processIdentifier, SIGKILL) }
        let refused = try await Self.status(["--ipamd", "--root", root])
        #expect(refused.stdout == "ipamd: live (\(socket))\n  error: notReady: reading IMDS\n")
    }

    @Test("--ipamd: no answer on the socket: the state the daemon last wrote, marked stale; a refusal line by line")
    func ipamdStale() async throws {
        let root = try NodeFixture.root()
        let file = root + "/run/nodeboot/ipamd/status.json"
        try FileManager.default.createDirectory(atPath: root + "/run/nodeboot/ipamd", withIntermediateDirectories: true)
        try Data((Self.statusBody + "\n").utf8).write(to: URL(fileURLWithPath: file))
        let stale = try await Self.status(["--ipamd", "--root", root])
        #expect(stale.status == 1)
        #expect(
            stale.stdout
                == "ipamd: STALE (no \(root)/run/nodeboot/ipamd.sock); last state from \(file)\n" + Self.podNetworkMissing
                + Self.statusLines)
        let json = try await Self.status(["--ipamd", "--root", root, "-o", "json"])
        #expect(json.status == 1)
        #expect(json.stdout.isEmpty)
        #expect(json.stderr.contains("ipamd did not answer a status request"), "\(json.stderr)")
        #expect(json.stderr.contains(file))

        let lines = [
            "ipamd: refused setting: WARM_IP_TARGET=lots: not a whole number of 0 or more; set it in spec.instance.environment.nodeboot-ipamd of the NodeConfig",
            "ipamd: refused setting: MAX_ENI=0: must be 1 or more; set it in spec.instance.environment.nodeboot-ipamd of the NodeConfig",
        ]
        let refusal = #"{"state":"refused","errors":["# + lines.map { "\"\($0)\"" }.joined(separator: ",") + "]}\n"
        try Data(refusal.utf8).write(to: URL(fileURLWithPath: file))
        let refused = try await Self.status(["--ipamd", "--root", root])
        #expect(
            refused.stdout
                == "ipamd: STALE (no \(root)/run/nodeboot/ipamd.sock); last state from \(file)\n  state: refused\n"
                + lines.map { "  error: \($0)\n" }.joined())

        // A socket nobody listens on (the daemon died without removing it): its error is the reason.
        let (server, _) = try await Self.fakeIPAMD(socket: root + "/run/nodeboot/ipamd.sock", reply: "{}")
        kill(server.processIdentifier, SIGKILL)
        try await Task.sleep(for: .milliseconds(200))
        let dead = try await Self.status(["--ipamd", "--root", root])
        #expect(
            dead.stdout.hasPrefix(
                "ipamd: STALE (cannot reach ipamd at \(root)/run/nodeboot/ipamd.sock: Connection refused"),
            "\(dead.stdout)")
    }

    @Test("--ipamd: neither a socket nor a status file: not running")
    func ipamdNotRunning() async throws {
        let root = try NodeFixture.root()
        let result = try await Self.status(["--ipamd", "--root", root])
        #expect(result.status == 1)
        #expect(
            result.stdout
                == "ipamd: not running (no \(root)/run/nodeboot/ipamd.sock; no \(root)/run/nodeboot/ipamd/status.json)\n")
    }

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
        let written = try String(contentsOfFile: root + "/run/nodeboot/status.json", encoding: .utf8)
        // ipamd answering: the text gains its live section; -o json is still the report's bytes.
        let socket = root + "/run/nodeboot/ipamd.sock"
        let (server, _) = try await Self.fakeIPAMD(
            socket: socket, reply: #"{"v":"1.0","ok":true,"status":"# + Self.statusBody + "}")
        let liveText = try await ChildProcess.run([Self.binary, "status", "--root", root], environment: environment)
        let liveJSON = try await ChildProcess.run(
            [Self.binary, "status", "--root", root, "-o", "json"], environment: environment)
        kill(server.processIdentifier, SIGKILL)
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
        #expect(
            text.stdout.hasSuffix(
                "\nipamd: not running (no \(socket); no \(root)/run/nodeboot/ipamd/status.json)\n"), "\(text.stdout)")
        #expect(json.stdout == written)
        #expect(liveText.status == 0, "stderr: \(liveText.stderr)")
        let section = "ipamd: live (\(socket))\n" + Self.podNetworkMissing + Self.statusLines
        #expect(liveText.stdout.hasSuffix("\n" + section), "\(liveText.stdout)")
        let notRunning = "ipamd: not running (no \(socket); no \(root)/run/nodeboot/ipamd/status.json)\n"
        #expect(liveText.stdout.dropLast(section.count) == text.stdout.dropLast(notRunning.count))
        #expect(liveJSON.stdout == written)
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
