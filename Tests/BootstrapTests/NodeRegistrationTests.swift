import Foundation
import KubeAPI
import NodeConfig
import NodeRender
import Testing

@testable import Bootstrap

@Suite("node registration: kubelet flags, kubeconfig, the desired node, the exec plugin")
struct NodeRegistrationTests {
    static let nodeName = "ip-10-0-1-2.us-west-2.compute.internal"

    static func desired(flags: [String] = [], cpus: Int? = 2) -> DesiredNode {
        DesiredNode(
            providerID: "aws:///us-west-2a/i-0abc", hostname: nodeName, region: "us-west-2", zone: "us-west-2a",
            instanceType: "m5.large", arch: "arm64", privateIPv4: "10.0.1.2", privateDNSName: nodeName, maxPods: 29,
            cpus: cpus, kubeletFlags: flags)
    }

    // MARK: Flags

    @Test("--node-labels in both spellings, repeated flags accumulate, later keys win")
    func nodeLabels() throws {
        let flags = KubeletFlags([
            "--node-ip=10.0.1.2", "--node-labels=a=1,b=2", "--node-labels", "b=3,c=", "--max-pods 29 --node-labels=d=x=y",
        ])
        #expect(try flags.nodeLabels() == ["a": "1", "b": "3", "c": "", "d": "x=y"])
        #expect(flags.last("--node-ip") == "10.0.1.2")
        #expect(flags.last("--max-pods") == "29")
        #expect(try KubeletFlags(["--node-ip=1.2.3.4"]).nodeLabels() == [:])
    }

    @Test("--register-with-taints: key=value:Effect and key:Effect; the last flag wins")
    func taints() throws {
        let flags = KubeletFlags([
            "--register-with-taints=old:NoSchedule", "--register-with-taints", "a=b:NoSchedule,c:NoExecute,d=:PreferNoSchedule",
        ])
        #expect(
            try flags.taints() == [
                Node.Taint(key: "a", value: "b", effect: "NoSchedule"), Node.Taint(key: "c", effect: "NoExecute"),
                Node.Taint(key: "d", value: "", effect: "PreferNoSchedule"),
            ])
    }

    @Test(
        "a malformed label or taint is bad input naming the flag",
        arguments: [
            ["--node-labels=novalue"], ["--register-with-taints=a=b"], ["--register-with-taints=a=b:Sometimes"],
            ["--register-with-taints==b:NoSchedule"],
        ])
    func malformed(flags: [String]) {
        do {
            _ = try RegistrationPlan(Self.desired(flags: flags))
            Issue.record("accepted \(flags)")
        } catch {
            #expect(error.code == .input)
            #expect(error.message.hasPrefix("kubelet flag --"))
        }
    }

    @Test("uname machine names map to Kubernetes architectures")
    func architectures() {
        #expect(DesiredNode.architecture(machine: "x86_64") == "amd64")
        #expect(DesiredNode.architecture(machine: "aarch64") == "arm64")
        #expect(["amd64", "arm64"].contains(DesiredNode.hostArchitecture))
    }

    // MARK: Plan

    @Test("the created node: default labels, flag labels over them, creation taint, addresses, capacity")
    func createdNode() throws {
        let plan = try RegistrationPlan(
            Self.desired(flags: [
                "--node-ip=10.0.1.2", "--cloud-provider=external", "--node-labels=topology.kubernetes.io/zone=custom,x=y",
                "--register-with-taints=a=b:NoSchedule",
            ]))
        let node = plan.node(named: Self.nodeName)
        #expect(node.metadata.labels?["kubernetes.io/arch"] == "arm64")
        #expect(node.metadata.labels?["beta.kubernetes.io/arch"] == "arm64")
        #expect(node.metadata.labels?["topology.kubernetes.io/zone"] == "custom")
        #expect(node.metadata.labels?["x"] == "y")
        #expect(node.metadata.labels?.count == 9)
        #expect(
            node.spec?.taints?.map(\.description) == [
                "a=b:NoSchedule", "node.cloudprovider.kubernetes.io/uninitialized=true:NoSchedule",
            ])
        #expect(node.metadata.annotations?["alpha.kubernetes.io/provided-node-ip"] == "10.0.1.2")
        #expect(node.status?.addresses?.map(\.type) == ["InternalIP", "InternalDNS", "Hostname"])
        #expect(node.status?.capacity == ["cpu": "2", "pods": "29"])
        #expect(node.status?.allocatable == ["cpu": "1930m", "pods": "29"])
        // Without an external cloud provider, no uninitialized taint and no provided-node-ip.
        let plain = try RegistrationPlan(Self.desired(cpus: nil)).node(named: Self.nodeName)
        #expect(plain.spec?.taints == [])
        #expect(plain.metadata.annotations?["alpha.kubernetes.io/provided-node-ip"] == nil)
        #expect(plain.status?.capacity == ["pods": "29"])
    }

    @Test("a node as desired differs in nothing; the kubelet's extra status and the cloud taint's removal do not count")
    func noDifference() throws {
        let plan = try RegistrationPlan(
            Self.desired(flags: ["--cloud-provider=external", "--register-with-taints=a:NoSchedule"]))
        var node = plan.node(named: Self.nodeName)
        node.spec?.taints = [Node.Taint(key: "a", value: "", effect: "NoSchedule")]
        node.metadata.labels?["extra"] = "kept"
        node.status?.capacity?["memory"] = "8000000Ki"
        node.status?.allocatable?["cpu"] = "1900m"
        node.status?.addresses?.insert(.init(type: "ExternalIP", address: "54.1.2.3"), at: 0)
        #expect(plan.difference(from: node).isEmpty)
    }

    @Test("differences become a metadata/spec patch (with resourceVersion for taints) and a status patch")
    func differences() throws {
        let plan = try RegistrationPlan(Self.desired(flags: ["--register-with-taints=a=new:NoSchedule"]))
        var node = plan.node(named: Self.nodeName)
        node.metadata.resourceVersion = "41"
        node.metadata.labels?["kubernetes.io/arch"] = "amd64"
        node.spec = .init(
            providerID: nil, taints: [.init(key: "a", value: "old", effect: "NoSchedule"), .init(key: "b", effect: "NoExecute")])
        node.status?.capacity?["pods"] = "110"
        let diff = plan.difference(from: node)
        #expect(
            diff.changes == [
                "label kubernetes.io/arch=arm64", "providerID aws:///us-west-2a/i-0abc", "taint a=new:NoSchedule",
                "capacity pods=29",
            ])
        let object = try #require(diff.objectPatch)
        #expect(object.metadata.labels == ["kubernetes.io/arch": "arm64"])
        #expect(object.metadata.resourceVersion == "41")
        #expect(object.spec?.taints?.map(\.description) == ["b:NoExecute", "a=new:NoSchedule"])
        #expect(object.status == nil)
        let status = try #require(diff.statusPatch)
        #expect(status.status == Node.Status(capacity: ["pods": "29"]))
        #expect(status.spec == nil)
        // Labels only: no resourceVersion, so a concurrent change of other fields cannot conflict.
        var labelsOnly = plan.node(named: Self.nodeName)
        labelsOnly.metadata.resourceVersion = "7"
        labelsOnly.metadata.labels?["topology.kubernetes.io/zone"] = "other"
        #expect(plan.difference(from: labelsOnly).objectPatch?.metadata.resourceVersion == nil)
    }

    // MARK: Kubeconfig

    /// The kubeconfig `init` writes, from the real renderer.
    static func renderedKubeconfig(_ helper: TokenHelper) -> String {
        var config = NodeConfig()
        config.spec.cluster.name = "my-cluster"
        config.spec.cluster.apiServerEndpoint = "https://ABC.gr7.us-west-2.eks.amazonaws.com"
        var context = RenderContext(
            config: config,
            instance: InstanceDetails(
                id: "i-0abc", region: "us-west-2", type: "m5.large", availabilityZone: "us-west-2a",
                mac: "0e:49:61:0f:c3:11", privateDnsName: nodeName, nodeIP: "10.0.1.2"),
            kubeletVersion: ComponentVersion(1, 31, 0), containerdVersion: ComponentVersion(1, 7, 27), maxPods: 29,
            onlineCPUs: 2)
        context.tokenHelper = helper
        context.nodebootPath = "/opt/bin/nodeboot"
        return KubeletConfig.kubeconfig(context)
    }

    @Test(
        "the kubeconfig init writes: server, CA path, exec command and args",
        arguments: [(TokenHelper.aws, "aws", "eks get-token"), (.nodeboot, "/opt/bin/nodeboot", "token")])
    func parsesRenderedKubeconfig(helper: TokenHelper, command: String, verb: String) throws {
        let config = try Kubeconfig.parse(Self.renderedKubeconfig(helper), source: "k")
        #expect(config.server == "https://ABC.gr7.us-west-2.eks.amazonaws.com")
        #expect(config.certificateAuthority == KubeletConfig.caPath)
        #expect(config.certificateAuthorityData == nil)
        #expect(config.token == nil)
        let exec = try #require(config.exec)
        #expect(exec.command == command)
        #expect(
            exec.args
                == verb.split(separator: " ").map(String.init) + ["--cluster-name", "my-cluster", "--region", "us-west-2"])
        #expect(exec.apiVersion == "client.authentication.k8s.io/v1beta1")
        #expect(exec.env.isEmpty)
        #expect(config.clusterName == "my-cluster")
    }

    @Test("the current context decides cluster and user; CA data and env are read")
    func currentContext() throws {
        let text = """
            clusters:
            - name: other
              cluster: {server: "https://other:443"}
            - name: mine
              cluster:
                server: https://mine:6443
                certificate-authority-data: \(Data("pem".utf8).base64EncodedString())
            contexts:
            - {name: a, context: {cluster: other, user: u1}}
            - {name: b, context: {cluster: mine, user: u2}}
            current-context: b
            users:
            - {name: u1, user: {token: abc}}
            - name: u2
              user:
                exec:
                  command: ./helper
                  apiVersion: client.authentication.k8s.io/v1
                  args: [token, -i, c1]
                  env: [{name: A, value: "1"}, {name: B, value: "2"}]
            """
        let config = try Kubeconfig.parse(text, source: "k")
        #expect(config.server == "https://mine:6443")
        #expect(config.certificateAuthorityData == Array("pem".utf8))
        #expect(config.exec?.env == [.init(name: "A", value: "1"), .init(name: "B", value: "2")])
        #expect(config.exec?.apiVersion == "client.authentication.k8s.io/v1")
        #expect(config.clusterName == "c1")
        #expect(config.token == nil)
    }

    @Test(
        "a kubeconfig without what registration needs is bad input naming the file",
        arguments: [
            "", "[]", "clusters: []\nusers: []", "clusters:\n- name: a\n  cluster: {certificate-authority: x}",
            "clusters:\n- {name: a, cluster: {server: 'https://x'}}\nusers:\n- {name: u, user: {}}",
            "current-context: gone\ncontexts: []\nclusters:\n- {name: a, cluster: {server: 'https://x'}}",
        ])
    func invalidKubeconfig(text: String) {
        do {
            _ = try Kubeconfig.parse(text, source: "/root/var/lib/kubelet/kubeconfig")
            Issue.record("accepted: \(text)")
        } catch {
            #expect(error.code == .input)
            #expect(error.message.hasPrefix("kubeconfig /root/var/lib/kubelet/kubeconfig: "))
        }
    }

    // MARK: Exec plugin

    static func directory() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("exec-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    static func script(_ directory: String, _ name: String, _ body: String) throws -> String {
        let path = directory + "/" + name
        try Data("#!/bin/sh\n\(body)\n".utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: path)
        return path
    }

    static let credential =
        #"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","status":{"token":"k8s-aws-v1.abc"}}"#

    @Test("the plugin's stdout alone is the credential (stderr is not mixed in); the token is reused until invalidated")
    func execToken() async throws {
        let directory = try Self.directory()
        let path = try Self.script(
            directory, "helper",
            "echo \"$*|$KUBERNETES_EXEC_INFO|$A|$KEEP\" >> \(directory)/runs\necho 'warning: something' >&2\necho '\(Self.credential)'"
        )
        let exec = Kubeconfig.Exec(
            command: path, args: ["token", "-i", "c"], env: [.init(name: "A", value: "from-kubeconfig")],
            apiVersion: "client.authentication.k8s.io/v1beta1")
        let source = ExecTokenSource(
            exec: exec, kubeconfigPath: directory + "/kubeconfig", paths: NodePaths(root: nil),
            environment: ["KEEP": "inherited", "A": "overridden", "PATH": "/usr/bin:/bin"])
        #expect(try await source.token() == "k8s-aws-v1.abc")
        #expect(try await source.token() == "k8s-aws-v1.abc")
        #expect(await source.executions == 1)
        await source.invalidate()
        _ = try await source.token()
        #expect(await source.executions == 2)
        let runs = try String(contentsOfFile: directory + "/runs", encoding: .utf8).split(separator: "\n")
        #expect(
            runs.first
                == #"token -i c|{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{"interactive":false}}|from-kubeconfig|inherited"#
        )
    }

    @Test("a plugin that leaves a process behind holding its stdout is done when it exits")
    func leftBehind() async throws {
        let directory = try Self.directory()
        let path = try Self.script(directory, "helper", "sleep 5 &\necho '\(Self.credential)'")
        let source = ExecTokenSource(
            exec: .init(command: path, args: [], env: [], apiVersion: "client.authentication.k8s.io/v1beta1"),
            kubeconfigPath: directory + "/k", paths: NodePaths(root: nil), environment: ["PATH": "/usr/bin:/bin"])
        let start = ContinuousClock.now
        #expect(try await source.token() == "k8s-aws-v1.abc")
        #expect(ContinuousClock.now - start < .seconds(3))
    }

    @Test("a bare command is looked up on PATH, a relative one next to the kubeconfig, an absolute one under the root")
    func commandResolution() throws {
        let directory = try Self.directory()
        let bin = directory + "/bin"
        try FileManager.default.createDirectory(atPath: bin, withIntermediateDirectories: true)
        let helper = try Self.script(bin, "helper", "true")
        let root = NodePaths(root: directory)
        #expect(
            ExecTokenSource.resolve(
                "helper", kubeconfigPath: "/k", paths: NodePaths(root: nil), environment: ["PATH": "/nope:\(bin)"])
                == helper)
        #expect(
            ExecTokenSource.resolve("bin/helper", kubeconfigPath: directory + "/kubeconfig", paths: root, environment: [:])
                == directory + "/bin/helper")
        #expect(ExecTokenSource.resolve("/bin/helper", kubeconfigPath: "/k", paths: root, environment: [:]) == helper)
        // Not under the root: the path as written (the host's program).
        #expect(ExecTokenSource.resolve("/bin/sh", kubeconfigPath: "/k", paths: root, environment: [:]) == "/bin/sh")
    }

    @Test(
        "a failing plugin is an error with its exit status and stderr",
        arguments: [
            ("echo 'no credentials' >&2; exit 2", "exited with status 2: no credentials"),
            ("echo 'not json'", "printed no ExecCredential JSON"),
            (
                #"echo '{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","status":{"token":"t"}}'"#,
                "answered apiVersion client.authentication.k8s.io/v1"
            ),
            (#"echo '{"kind":"ExecCredential","status":{}}'"#, "without status.token"),
        ])
    func execFailures(body: String, expected: String) async throws {
        let directory = try Self.directory()
        let path = try Self.script(directory, "helper", body)
        let source = ExecTokenSource(
            exec: .init(command: path, args: [], env: [], apiVersion: "client.authentication.k8s.io/v1beta1"),
            kubeconfigPath: directory + "/k", paths: NodePaths(root: nil), environment: [:])
        do {
            _ = try await source.token()
            Issue.record("no error")
        } catch {
            #expect(error.message.contains(expected), "\(error.message)")
            #expect(error.hint?.contains("run '\(path)' on the node") == true || expected.hasPrefix("answered"))
        }
    }

    @Test("a plugin that hangs is killed at the time limit; a missing one says so")
    func execTimeoutAndMissing() async throws {
        let directory = try Self.directory()
        let path = try Self.script(directory, "helper", "sleep 30")
        let source = ExecTokenSource(
            exec: .init(command: path, args: [], env: [], apiVersion: "client.authentication.k8s.io/v1beta1"),
            kubeconfigPath: directory + "/k", paths: NodePaths(root: nil), environment: [:], timeout: .milliseconds(300))
        let start = ContinuousClock.now
        do {
            _ = try await source.token()
            Issue.record("no error")
        } catch {
            #expect(error.message.contains("did not finish within"))
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        let missing = ExecTokenSource(
            exec: .init(command: "aws", args: ["eks", "get-token"], env: [], apiVersion: "client.authentication.k8s.io/v1beta1"),
            kubeconfigPath: directory + "/k", paths: NodePaths(root: nil), environment: ["PATH": directory])
        do {
            _ = try await missing.token()
            Issue.record("no error")
        } catch {
            #expect(error.message.contains("cannot run the kubeconfig's exec plugin 'aws eks get-token'"))
            #expect(error.hint?.contains("install the AWS CLI") == true)
        }
    }

    @Test("the plugin is killed at the caller's deadline when that comes before its own time limit")
    func execDeadline() async throws {
        let directory = try Self.directory()
        let path = try Self.script(directory, "helper", "sleep 30")
        let source = ExecTokenSource(
            exec: .init(command: path, args: [], env: [], apiVersion: "client.authentication.k8s.io/v1beta1"),
            kubeconfigPath: directory + "/k", paths: NodePaths(root: nil), environment: [:],
            deadline: ContinuousClock.now + .milliseconds(300))
        let start = ContinuousClock.now
        do {
            _ = try await source.token()
            Issue.record("no error")
        } catch {
            #expect(error.message.contains("did not finish within 0.3 s (the rest of the registration timeout)"), "\(error)")
        }
        #expect(ContinuousClock.now - start < .seconds(5))
        // Past the deadline the plugin is not started at all.
        do {
            _ = try await source.token()
            Issue.record("no error")
        } catch {
            #expect(error.message.contains("no time left to run the kubeconfig's exec plugin"), "\(error)")
            #expect(error.hint == "raise --register-timeout")
        }
        #expect(await source.executions == 1)
    }

    @Test(
        "expirationTimestamp: RFC 3339 with or without fractions; anything else is no expiration",
        arguments: [
            ("2024-01-01T00:14:00Z", 1_704_068_040.0), ("2024-01-01T00:14:00.250Z", 1_704_068_040.25),
            ("2024-01-01T01:14:00+01:00", 1_704_068_040.0), ("tomorrow", nil), ("", nil),
        ])
    func expirationTimestamp(text: String, seconds: Double?) {
        #expect(ExecTokenSource.timestamp(text)?.timeIntervalSince1970 == seconds)
    }

    @Test("a node name the API server would refuse is bad input before anything is read")
    func invalidNodeName() {
        let options = RegistrationOptions(
            root: "/nonexistent", environment: [:], nodeName: "IP-10-0-1-2.EC2.internal", node: Self.desired())
        do {
            _ = try RegistrationRun(options: options)
            Issue.record("accepted")
        } catch {
            #expect(error.code == .input)
            #expect(error.message.contains("node name 'IP-10-0-1-2.EC2.internal' is not a valid Kubernetes node name"))
        }
    }

    @Test("the CA fingerprint is openssl's: SHA-256 of the DER, uppercase pairs joined by colons")
    func fingerprint() throws {
        let der: [UInt8] = Array("not really DER".utf8)
        let pem = "-----BEGIN CERTIFICATE-----\n\(Data(der).base64EncodedString())\n-----END CERTIFICATE-----\n"
        let fingerprint = try #require(ClusterAccess.fingerprint(pem: Array(pem.utf8)))
        // `printf 'not really DER' | sha256sum`: 4765b990…9cc6.
        #expect(
            fingerprint
                == "47:65:B9:90:E2:73:23:6D:89:41:86:64:D5:18:37:B9:F0:D0:76:6B:7B:A1:29:C6:98:A3:CB:22:25:EB:9C:C6")
        #expect(ClusterAccess.fingerprint(pem: Array("no certificate".utf8)) == nil)
    }
}
