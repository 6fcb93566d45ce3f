import Bootstrap
import ExecCredential
import Foundation
import KubeAPI
import NodeConfig
import NodeRender
import SigV4
import Synchronization
import TestSupport
import Testbed
import Testing

/// The register phase end to end: a node root with the kubeconfig `init` writes (the real
/// renderer's, its exec plugin a script printing a real `k8s-aws-v1` token of the instance role),
/// against the testbed's API server.
@Suite("node registration against the testbed API server")
struct NodeRegistrationFlowTests {
    static let nodeName = "ip-172-16-34-43.us-west-2.compute.internal"
    static let providerID = "aws:///us-west-2f/i-1234567890abcdef0"
    static let helper = "/usr/local/bin/test-token-helper"

    /// A node root: CA, kubeconfig (as `init` renders it) and the token plugin, which records each
    /// run (arguments and `KUBERNETES_EXEC_INFO`) in `runs.log`.
    struct NodeRoot {
        var testbed: Testbed
        var root: String
        var runsFile: String { root + "/runs.log" }
        var caFile: String { root + KubeletConfig.caPath }

        func runs() -> [String] {
            // No file: the plugin never ran.
            ((try? String(contentsOfFile: runsFile, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
        }

        /// Renders the kubeconfig `init` writes, for `server` (the testbed's by default), its exec
        /// plugin `plugin` (the test's script by default).
        func writeKubeconfig(server: String? = nil, plugin: String? = nil) throws {
            var config = NodeConfig()
            config.spec.cluster.name = testbed.kubeClusterName
            config.spec.cluster.apiServerEndpoint = server ?? testbed.kubeEndpoint
            var context = RenderContext(
                config: config,
                instance: InstanceDetails(
                    id: "i-1234567890abcdef0", region: testbed.region, type: "m4.xlarge", availabilityZone: "us-west-2f",
                    mac: "0e:49:61:0f:c3:11", privateDnsName: NodeRegistrationFlowTests.nodeName, nodeIP: "172.16.34.43"),
                kubeletVersion: ComponentVersion(1, 31, 0), containerdVersion: ComponentVersion(1, 7, 27), maxPods: 58,
                onlineCPUs: 4)
            context.tokenHelper = .nodeboot
            context.nodebootPath = plugin ?? NodeRegistrationFlowTests.helper
            try Data(KubeletConfig.kubeconfig(context).utf8).write(
                to: URL(fileURLWithPath: root + KubeletConfig.kubeconfigPath))
        }

        /// Replaces the plugin: it prints `token` (a fresh instance-role token when nil) after
        /// `delay` seconds, or fails.
        /// - Parameter failRuns: the first runs exit 1 (stderr "IMDS did not answer in time"), later ones succeed.
        func writePlugin(
            token: String? = nil, exitStatus: Int = 0, stderr: String = "", delay: Int = 0, failRuns: Int = 0
        ) throws {
            let value =
                try token
                ?? ExecCredential.token(
                    clusterName: testbed.kubeClusterName, region: testbed.region, credentials: testbed.roleCredentials,
                    date: Date(), environment: [:])
            let document = ExecCredential.document(
                apiVersion: ExecCredential.v1beta1, token: value, expiration: Date().addingTimeInterval(14 * 60))
            var script = "#!/bin/sh\nprintf '%s|%s\\n' \"$*\" \"$KUBERNETES_EXEC_INFO\" >> '\(runsFile)'\n"
            if delay > 0 { script += "sleep \(delay)\n" }
            if failRuns > 0 {
                script +=
                    "if [ $(wc -l < '\(runsFile)') -le \(failRuns) ]; then echo 'IMDS did not answer in time' >&2; exit 1; fi\n"
            }
            if !stderr.isEmpty { script += "echo '\(stderr)' >&2\n" }
            if exitStatus != 0 {
                script += "exit \(exitStatus)\n"
            } else {
                script += "cat <<'EOF'\n\(document)EOF\n"
            }
            let path = root + NodeRegistrationFlowTests.helper
            try Data(script.utf8).write(to: URL(fileURLWithPath: path))
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        }

        func options(
            register: Bool = true, waitReady: Bool = false, flags: [String] = NodeRegistrationFlowTests.flags,
            timeout: Duration = .seconds(10), nodeName: String = NodeRegistrationFlowTests.nodeName
        ) -> RegistrationOptions {
            var options = RegistrationOptions(
                root: root, environment: ["PATH": "/usr/bin:/bin"], nodeName: nodeName,
                node: DesiredNode(
                    providerID: NodeRegistrationFlowTests.providerID, hostname: nodeName, region: "us-west-2",
                    zone: "us-west-2f", instanceType: "m4.xlarge", arch: "amd64", privateIPv4: "172.16.34.43",
                    privateDNSName: nodeName, maxPods: 58, cpus: 4, kubeletFlags: flags))
            options.register = register
            options.waitReady = waitReady
            options.timeout = timeout
            options.pollInterval = .milliseconds(50)
            options.progressInterval = .milliseconds(200)
            options.requestTimeout = .seconds(5)
            return options
        }

        /// A client with the static keys' token (kubernetes-admin), to look at what the node did.
        func adminClient() throws -> KubeClient {
            let token = try ExecCredential.token(
                clusterName: testbed.kubeClusterName, region: testbed.region,
                credentials: SigV4Credentials(accessKeyID: "testing", secretAccessKey: "testing"), date: Date(),
                environment: [:])
            return try KubeClient(
                endpoint: testbed.kubeEndpoint, caPEM: Array(testbed.kubeCACertificatePEM.utf8), token: { token },
                requestTimeout: .seconds(5))
        }

        /// Runs `body` with an admin client, shut down after in every case.
        func withAdmin<T>(_ body: (KubeClient) async throws -> T) async throws -> T {
            let client = try adminClient()
            do {
                let result = try await body(client)
                await client.shutdown()
                return result
            } catch {
                await client.shutdown()
                throw error
            }
        }

        func node() async throws -> Node? {
            try await withAdmin { try await $0.node(named: NodeRegistrationFlowTests.nodeName) }
        }
    }

    static let flags = [
        "--node-ip=172.16.34.43", "--cloud-provider=external", "--hostname-override=\(nodeName)",
        "--config=/etc/kubernetes/kubelet/config.json", "--kubeconfig=/var/lib/kubelet/kubeconfig",
        "--node-labels=team=infra,tier=system", "--register-with-taints", "dedicated=infra:NoSchedule,gpu:NoExecute",
    ]

    /// Starts a testbed and a node root for it; shuts the testbed down after `body`.
    static func withNode<T>(
        _ configuration: TestbedConfiguration = .default, _ body: (NodeRoot) async throws -> T
    ) async throws -> T {
        let testbed = try await Testbed.start(configuration)
        do {
            let root = FileManager.default.temporaryDirectory.appendingPathComponent("register-\(UUID().uuidString)").path
            for directory in ["/etc/kubernetes/pki", "/var/lib/kubelet", "/usr/local/bin"] {
                try FileManager.default.createDirectory(atPath: root + directory, withIntermediateDirectories: true)
            }
            try Data(testbed.kubeCACertificatePEM.utf8).write(to: URL(fileURLWithPath: root + KubeletConfig.caPath))
            let node = NodeRoot(testbed: testbed, root: root)
            try node.writeKubeconfig()
            try node.writePlugin()
            let result = try await body(node)
            try await testbed.shutdown()
            return result
        } catch {
            try await testbed.shutdown()
            throw error
        }
    }

    /// Collects progress lines.
    final class Lines: Sendable {
        let lines = Mutex<[String]>([])
        var all: [String] { lines.withLock { $0 } }
        var log: @Sendable (String) -> Void { { line in self.lines.withLock { $0.append(line) } } }

        /// Returns once a line contains `text` (at most 20 s).
        func wait(for text: String) async throws {
            let deadline = ContinuousClock.now + .seconds(20)
            while !all.contains(where: { $0.contains(text) }) {
                guard ContinuousClock.now < deadline else { throw TestSupportError("no line with '\(text)': \(all)") }
                try await Task.sleep(for: .milliseconds(10))
            }
        }
    }

    static func failure(_ body: () async throws -> Void) async -> NodeBootError? {
        do {
            try await body()
            return nil
        } catch {
            return error as? NodeBootError
        }
    }

    @Test("--register-node creates the Node as the kubelet would: providerID, labels, taints, addresses, capacity")
    func creates() async throws {
        try await Self.withNode { node in
            let lines = Lines()
            let result = try await NodeRegistration().confirm(options: node.options(), log: lines.log)
            #expect(result.action == .created)
            #expect(result.nodeName == Self.nodeName)
            #expect(result.serverVersion == "v1.31.0-eks-testbed")
            #expect(result.tokenExecutions == 1)
            #expect(!result.ready)
            // As the instance role (the node's user), not an admin.
            let kube = await node.testbed.requests().filter { $0.endpoint == "kube" }
            #expect(kube.allSatisfy { $0.username == "system:node:\(Self.nodeName)" })
            #expect(kube.map(\.action) == ["get", "get", "create"])
            let created = try #require(try await node.node())
            #expect(created.spec?.providerID == Self.providerID)
            #expect(
                created.metadata.labels == [
                    "kubernetes.io/hostname": Self.nodeName, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
                    "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64",
                    "node.kubernetes.io/instance-type": "m4.xlarge", "topology.kubernetes.io/region": "us-west-2",
                    "topology.kubernetes.io/zone": "us-west-2f", "team": "infra", "tier": "system",
                ])
            #expect(
                created.spec?.taints == [
                    .init(key: "dedicated", value: "infra", effect: "NoSchedule"), .init(key: "gpu", effect: "NoExecute"),
                    .init(key: "node.cloudprovider.kubernetes.io/uninitialized", value: "true", effect: "NoSchedule"),
                ])
            #expect(created.metadata.annotations?["alpha.kubernetes.io/provided-node-ip"] == "172.16.34.43")
            #expect(
                created.status?.addresses == [
                    .init(type: "InternalIP", address: "172.16.34.43"), .init(type: "InternalDNS", address: Self.nodeName),
                    .init(type: "Hostname", address: Self.nodeName),
                ])
            #expect(created.status?.capacity == ["pods": "58", "cpu": "4"])
            #expect(created.status?.allocatable?["pods"] == "58")
            #expect(created.status?.allocatable?["cpu"] == "3920m")  // 4 CPUs less nodeadm's 80m kubeReserved
            // The plugin ran once, as kubectl runs it.
            #expect(
                node.runs() == [
                    #"token --cluster-name my-cluster --region us-west-2|{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}"#
                ])
            #expect(lines.all.contains { $0.contains("created node \(Self.nodeName)") })
        }
    }

    @Test("a second run finds the node as desired: unchanged, nothing written, no duplicate")
    func idempotent() async throws {
        try await Self.withNode { node in
            _ = try await NodeRegistration().confirm(options: node.options(), log: { _ in })
            await node.testbed.clearRequests()
            let again = try await NodeRegistration().confirm(options: node.options(), log: { _ in })
            #expect(again.action == .unchanged)
            #expect(again.changes.isEmpty)
            #expect(await node.testbed.nodes().count == 1)
            let verbs = await node.testbed.requests().filter { $0.endpoint == "kube" }.map(\.action)
            #expect(verbs == ["get", "get"])
        }
    }

    @Test("a changed label, a new taint and a lost address are patched; what others set is kept")
    func reconciles() async throws {
        try await Self.withNode { node in
            _ = try await NodeRegistration().confirm(options: node.options(), log: { _ in })
            // The cloud controller initialized the node (its taint gone), someone labelled it.
            try await node.withAdmin { admin in
                _ = try await admin.patchNode(
                    Self.nodeName,
                    mergePatch: Array(
                        #"{"metadata":{"labels":{"owner":"ops"}},"spec":{"taints":[{"key":"dedicated","value":"infra","effect":"NoSchedule"},{"key":"gpu","effect":"NoExecute"}]}}"#
                            .utf8))
                _ = try await admin.patchNode(
                    Self.nodeName,
                    mergePatch: Array(#"{"status":{"addresses":[{"type":"InternalIP","address":"172.16.34.43"}]}}"#.utf8),
                    status: true)
            }
            var flags = Self.flags
            flags[5] = "--node-labels=team=platform,tier=system"
            flags[7] = "dedicated=infra:NoSchedule,gpu:NoExecute,spot:PreferNoSchedule"
            let lines = Lines()
            let result = try await NodeRegistration().confirm(options: node.options(flags: flags), log: lines.log)
            #expect(result.action == .reconciled)
            #expect(
                result.changes == [
                    "label team=platform", "taint spot:PreferNoSchedule", "address InternalDNS \(Self.nodeName)",
                    "address Hostname \(Self.nodeName)",
                ])
            let patched = try #require(try await node.node())
            #expect(patched.metadata.labels?["team"] == "platform")
            #expect(patched.metadata.labels?["owner"] == "ops")
            #expect(
                patched.spec?.taints?.map(\.description) == [
                    "dedicated=infra:NoSchedule", "gpu:NoExecute", "spot:PreferNoSchedule",
                ])
            #expect(patched.status?.addresses?.count == 3)
            #expect(lines.all.contains { $0.contains("reconciled node") })
            #expect(await node.testbed.nodes().count == 1)
        }
    }

    @Test("two 409 Conflicts on the patch, then success: reconciled, the diff checked again after the patch")
    func conflictsThenSuccess() async throws {
        try await Self.withNode { node in
            _ = try await NodeRegistration().confirm(options: node.options(), log: { _ in })
            var flags = Self.flags
            flags[5] = "--node-labels=team=platform,tier=system"
            let patchPath = "/api/v1/nodes/\(Self.nodeName)"
            await node.testbed.setFaults([.status(.kube, 409, path: patchPath, action: "patch", count: 2)])
            await node.testbed.clearRequests()
            let lines = Lines()
            let result = try await NodeRegistration().confirm(options: node.options(flags: flags), log: lines.log)
            #expect(result.action == .reconciled)
            #expect(result.changes == ["label team=platform"])
            #expect(lines.all.filter { $0.contains("changed while being reconciled") }.count == 2)
            let verbs = await node.testbed.requests().filter { $0.endpoint == "kube" }.map(\.action)
            // version, get, then per conflict a patch and a get, then the patch that passes.
            #expect(verbs == ["get", "get", "patch", "get", "patch", "get", "patch"])
            #expect(try await node.node()?.metadata.labels?["team"] == "platform")
        }
    }

    @Test("three 409 Conflicts in a row: the node kept changing")
    func conflictsGiveUp() async throws {
        try await Self.withNode { node in
            _ = try await NodeRegistration().confirm(options: node.options(), log: { _ in })
            var flags = Self.flags
            flags[5] = "--node-labels=team=platform,tier=system"
            await node.testbed.setFaults([
                .status(.kube, 409, path: "/api/v1/nodes/\(Self.nodeName)", action: "patch", count: 3)
            ])
            let error = await Self.failure {
                _ = try await NodeRegistration().confirm(options: node.options(flags: flags), log: { _ in })
            }
            let failure = try #require(error)
            #expect(failure.message == "node \(Self.nodeName) kept changing while it was being reconciled (3 conflicts)")
            #expect(failure.hint?.contains("another agent is updating this Node object") == true)
            #expect(try await node.node()?.metadata.labels?["team"] == "infra")
        }
    }

    @Test("a plugin slower than --register-timeout is killed at that deadline, not at its own 60 s")
    func pluginBoundByDeadline() async throws {
        try await Self.withNode { node in
            try node.writePlugin(delay: 30)
            let start = ContinuousClock.now
            let error = await Self.failure {
                _ = try await NodeRegistration().confirm(options: node.options(timeout: .seconds(1)), log: { _ in })
            }
            #expect(ContinuousClock.now - start < .seconds(4))
            let failure = try #require(error)
            #expect(failure.message.contains("did not finish within"), "\(failure.message)")
            #expect(failure.message.contains("(the rest of the registration timeout)"), "\(failure.message)")
        }
    }

    @Test("a create that races the kubelet (409 AlreadyExists) reconciles the node the kubelet made")
    func createRace() async throws {
        try await Self.withNode { node in
            // The GET says absent, then the kubelet's node appears before our POST.
            await node.testbed.setFaults([.status(.kube, 404, path: "/api/v1/nodes/\(Self.nodeName)", action: "get", count: 1)])
            _ = try await node.withAdmin {
                try await $0.createNode(Node(metadata: .init(name: Self.nodeName, labels: ["kubernetes.io/os": "linux"])))
            }
            let lines = Lines()
            let result = try await NodeRegistration().confirm(options: node.options(), log: lines.log)
            #expect(result.action == .reconciled)
            #expect(result.changes.contains("providerID \(Self.providerID)"))
            #expect(lines.all.contains { $0.contains("created meanwhile") })
            let reconciled = try #require(try await node.node())
            #expect(reconciled.spec?.providerID == Self.providerID)
            #expect(reconciled.metadata.labels?["team"] == "infra")
        }
    }

    @Test("--wait-ready returns once the kubelet reports Ready")
    func waitsForReady() async throws {
        try await Self.withNode { node in
            let testbed = node.testbed
            let lines = Lines()
            // The kubelet: Ready half a second after the agent started waiting for it.
            let marker = Task { () throws -> ContinuousClock.Instant in
                try await lines.wait(for: "to become Ready")
                try await Task.sleep(for: .milliseconds(500))
                try await testbed.setNodeReady(name: Self.nodeName)
                return ContinuousClock.now
            }
            let result = try await NodeRegistration().confirm(options: node.options(waitReady: true), log: lines.log)
            let returned = ContinuousClock.now
            let marked = try await marker.value
            #expect(result.ready)
            #expect(result.action == .created)
            #expect(returned >= marked)
            #expect(
                lines.all.contains { $0.contains("waiting for node \(Self.nodeName) to become Ready (no Ready condition yet") })
            #expect(lines.all.last?.contains("is Ready") == true)
        }
    }

    @Test("without --register-node it waits for the kubelet's node, then for Ready")
    func waitsForKubelet() async throws {
        try await Self.withNode { node in
            let testbed = node.testbed
            let lines = Lines()
            let kubelet = Task {
                try await lines.wait(for: "to register (")
                _ = try await node.withAdmin { try await $0.createNode(Node(metadata: .init(name: Self.nodeName))) }
                try await lines.wait(for: "to become Ready")
                try await testbed.setNodeReady(name: Self.nodeName)
            }
            let result = try await NodeRegistration().confirm(
                options: node.options(register: false, waitReady: true), log: lines.log)
            try await kubelet.value
            #expect(result.action == .found)
            #expect(result.ready)
            #expect(lines.all.contains { $0.contains("waiting for node \(Self.nodeName) to register (") })
            // Nothing was written by the agent.
            let writes = await testbed.requests().filter {
                $0.endpoint == "kube" && $0.username?.hasPrefix("system:node:") == true && $0.action != "get"
            }
            #expect(writes.isEmpty)
        }
    }

    @Test("without --register-node and no kubelet, the wait ends at the timeout with the kubelet hint")
    func timesOut() async throws {
        try await Self.withNode { node in
            let lines = Lines()
            let start = ContinuousClock.now
            let error = await Self.failure {
                _ = try await NodeRegistration().confirm(
                    options: node.options(register: false, timeout: .seconds(1)), log: lines.log)
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .seconds(1))
            #expect(elapsed < .seconds(4))
            let failure = try #require(error)
            #expect(failure.message.contains("node \(Self.nodeName) did not register with the API server"))
            #expect(failure.message.contains("within 1.0 s"))
            #expect(failure.hint?.contains("journalctl -u kubelet") == true)
            #expect(failure.code.exitStatus == 1)
            #expect(
                lines.all.contains { $0.contains("waiting for node \(Self.nodeName) to register (") && $0.contains(" of 1.0 s)") }
            )
        }
    }

    @Test("an unmapped node role is 401: the token is fetched again once, then the access-entry hint")
    func unmappedRole() async throws {
        var configuration = TestbedConfiguration.default
        configuration.kubeAPI.defaultMappings = false
        try await Self.withNode(configuration) { node in
            let error = await Self.failure {
                _ = try await NodeRegistration().confirm(options: node.options(), log: { _ in })
            }
            let failure = try #require(error)
            #expect(failure.message.contains("401 Unauthorized"))
            #expect(failure.hint?.contains("aws eks create-access-entry --cluster-name my-cluster") == true)
            #expect(failure.hint?.contains("--type EC2_LINUX") == true)
            #expect(failure.hint?.contains("aws-auth") == true)
            // One run for the first token, one after the 401.
            #expect(node.runs().count == 2)
            #expect(!failure.description.contains("k8s-aws-v1."))
        }
    }

    @Test("a token the server refuses once is replaced by a fresh one from the plugin")
    func refreshesAfter401() async throws {
        try await Self.withNode { node in
            await node.testbed.setFaults([.status(.kube, 401, path: "/api/v1/nodes", count: 1)])
            let result = try await NodeRegistration().confirm(options: node.options(), log: { _ in })
            #expect(result.action == .created)
            #expect(result.tokenExecutions == 2)
        }
    }

    @Test("a node may only register its own name: 403 with the server's message")
    func forbidden() async throws {
        try await Self.withNode { node in
            let other = "ip-10-0-0-9.us-west-2.compute.internal"
            let error = await Self.failure {
                _ = try await NodeRegistration().confirm(options: node.options(nodeName: other), log: { _ in })
            }
            let failure = try #require(error)
            #expect(failure.message.contains("403 Forbidden"))
            #expect(failure.message.contains("cannot create resource \"nodes\""), "\(failure.message)")
            #expect(failure.hint?.contains("EC2_LINUX") == true)
            // 403: the identity was accepted (mapped); only its permissions are wrong (fault matrix).
            #expect(failure.hint?.contains("not mapped") == false, "\(failure.hint ?? "")")
            #expect(failure.hint?.contains("knows this node's identity") == true)
        }
    }

    @Test("another cluster's CA: the hint names the CA file and its fingerprint, never the CA")
    func wrongCA() async throws {
        try await Self.withNode { node in
            let other = try await Testbed.start()
            let otherPEM = other.kubeCACertificatePEM
            try await other.shutdown()
            try Data(otherPEM.utf8).write(to: URL(fileURLWithPath: node.caFile))
            let error = await Self.failure {
                _ = try await NodeRegistration().confirm(options: node.options(), log: { _ in })
            }
            let failure = try #require(error)
            #expect(failure.message.contains("TLS with the API server"))
            let hint = try #require(failure.hint)
            #expect(hint.contains("the cluster CA in \(node.caFile)"))
            #expect(hint.contains("does not match the API server's certificate"))
            #expect(hint.contains("SHA-256 fingerprint"))
            let body = otherPEM.split(separator: "\n").dropFirst().first.map(String.init) ?? "-"
            #expect(!failure.description.contains(body))
            // openssl's fingerprint, when openssl is here to compare.
            if ChildProcess.exists("openssl") {
                let openssl = try await ChildProcess.run([
                    "openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", node.caFile,
                ])
                let expected = try #require(openssl.stdout.split(separator: "=", maxSplits: 1).last).trimmingCharacters(
                    in: .whitespacesAndNewlines)
                #expect(hint.contains(expected), "\(hint) vs \(expected)")
            }
        }
    }

    @Test("nothing listening at the endpoint: retried until the deadline, then the endpoint hint")
    func connectionRefused() async throws {
        try await Self.withNode { node in
            let port = try freeLoopbackPort()
            try node.writeKubeconfig(server: "https://127.0.0.1:\(port)")
            let lines = Lines()
            let start = ContinuousClock.now
            let error = await Self.failure {
                _ = try await NodeRegistration().confirm(options: node.options(timeout: .seconds(1)), log: lines.log)
            }
            #expect(ContinuousClock.now - start < .seconds(4))
            let failure = try #require(error)
            #expect(failure.message.contains("refused the connection (after "), "\(failure.message)")
            #expect(failure.hint?.contains("check the endpoint (spec.cluster.apiServerEndpoint") == true)
            #expect(lines.all.first?.contains("retrying") == true)
        }
    }

    @Test("an endpoint that does not resolve: the DNS hint")
    func unresolvable() async throws {
        try await Self.withNode { node in
            try node.writeKubeconfig(server: "https://nodeboot-test.invalid:443")
            let error = await Self.failure {
                _ = try await NodeRegistration().confirm(options: node.options(timeout: .milliseconds(500)), log: { _ in })
            }
            let failure = try #require(error)
            #expect(failure.message.contains("cannot resolve the API server host nodeboot-test.invalid"))
            #expect(
                failure.hint?.hasPrefix(
                    "cannot resolve nodeboot-test.invalid: check the endpoint (spec.cluster.apiServerEndpoint) and, for a private endpoint, that the VPC has DNS resolution and DNS hostnames enabled"
                ) == true)
        }
    }

    @Test("server errors are retried until they pass")
    func retriesTransient() async throws {
        try await Self.withNode { node in
            await node.testbed.setFaults([.status(.kube, 503, path: "/api/v1/nodes", count: 2)])
            let lines = Lines()
            let result = try await NodeRegistration().confirm(options: node.options(), log: lines.log)
            #expect(result.action == .created)
            #expect(result.attempts == 5)  // version, get ×3, create
            #expect(lines.all.contains { $0.contains("503") && $0.contains("retrying") })
        }
    }

    @Test("a failing plugin: its exit status and stderr in the message")
    func pluginFails() async throws {
        try await Self.withNode { node in
            try node.writePlugin(exitStatus: 3, stderr: "could not get credentials from IMDS")
            let error = await Self.failure {
                _ = try await NodeRegistration().confirm(options: node.options(), log: { _ in })
            }
            let failure = try #require(error)
            #expect(failure.message.contains("exited with status 3"))
            #expect(failure.message.contains("could not get credentials from IMDS"))
            // Run again (as the kubelet would), a bounded number of times.
            #expect(failure.message.contains("(4 runs in "))
            #expect(node.runs().count == 4)  // RegistrationRun.pluginRuns
            #expect(failure.message.contains("\(Self.helper) token --cluster-name my-cluster --region us-west-2"))
            #expect(await node.testbed.requests().filter { $0.endpoint == "kube" }.isEmpty)
        }
    }

    @Test("a plugin that fails while IMDS is slow is run again, and the node registers (fleet of 500)")
    func pluginRetried() async throws {
        try await Self.withNode { node in
            try node.writePlugin(failRuns: 2)
            let lines = Lines()
            let result = try await NodeRegistration().confirm(options: node.options(timeout: .seconds(30)), log: lines.log)
            #expect(result.action == .created)
            #expect(result.tokenExecutions == 3)
            #expect(lines.all.filter { $0.contains("IMDS did not answer in time — running it again") }.count == 2)
        }
    }

    @Test(
        "the real token helper: nodeboot token signs with the instance role from the testbed's IMDS",
        .enabled(
            if: FileManager.default.isExecutableFile(atPath: Paths.debugBinaries.appendingPathComponent("nodeboot").path),
            "nodeboot is not built"))
    func realTokenHelper() async throws {
        try await Self.withNode { node in
            try node.writeKubeconfig(plugin: Paths.debugBinaries.appendingPathComponent("nodeboot").path)
            var options = node.options(waitReady: false)
            options.environment["AWS_EC2_METADATA_SERVICE_ENDPOINT"] = node.testbed.imdsEndpoint
            let result = try await NodeRegistration().confirm(options: options, log: { _ in })
            #expect(result.action == .created)
            #expect(result.tokenExecutions == 1)
        }
    }
}
