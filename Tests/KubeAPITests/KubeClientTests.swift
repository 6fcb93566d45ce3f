import ExecCredential
import Foundation
import SigV4
import TestSupport
import Testbed
import Testing
import WireJSON

@testable import KubeAPI

/// Tokens the testbed's API server accepts: presigned STS GetCallerIdentity URLs, as
/// `aws eks get-token` makes them (an empty token, which the server refuses, if the region is unknown).
enum Tokens {
    static func token(_ credentials: SigV4Credentials, region: String, cluster: String) -> String {
        // The production token maker (byte-identical to botocore's, tested in ExecCredentialTests).
        (try? ExecCredential.token(
            clusterName: cluster, region: region, credentials: credentials, date: Date(), environment: [:])) ?? ""
    }

    /// The static keys: `kubernetes-admin` in `system:masters`.
    static func admin(_ testbed: Testbed) -> String {
        token(
            SigV4Credentials(accessKeyID: "testing", secretAccessKey: "testing"), region: testbed.region,
            cluster: testbed.kubeClusterName)
    }

    /// The instance role: `system:node:<privateDnsName>`.
    static func node(_ testbed: Testbed) -> String {
        token(testbed.roleCredentials, region: testbed.region, cluster: testbed.kubeClusterName)
    }
}

@Suite("KubeClient against the testbed's API server")
struct KubeClientTests {
    static let nodeName = "ip-172-16-34-43.us-west-2.compute.internal"

    /// Runs `body` with a started testbed and a client trusting its CA, shutting both down after.
    static func withClient<T>(
        token: (@Sendable (Testbed) -> String)? = nil, requestTimeout: Duration = .seconds(10),
        _ body: (Testbed, KubeClient) async throws -> T
    ) async throws -> T {
        let testbed = try await Testbed.start()
        let bearer = token?(testbed) ?? Tokens.admin(testbed)
        let client: KubeClient
        do {
            client = try KubeClient(
                endpoint: testbed.kubeEndpoint, caPEM: Array(testbed.kubeCACertificatePEM.utf8), token: { bearer },
                requestTimeout: requestTimeout)
        } catch {
            try await testbed.shutdown()
            throw error
        }
        do {
            let result = try await body(testbed, client)
            await client.shutdown()
            try await testbed.shutdown()
            return result
        } catch {
            await client.shutdown()
            try await testbed.shutdown()
            throw error
        }
    }

    /// The error `body` throws, which must be a `KubeError`.
    static func kubeError(_ body: () async throws -> Void) async -> KubeError? {
        do {
            try await body()
            return nil
        } catch {
            return error as? KubeError
        }
    }

    @Test("version reports the server's gitVersion")
    func version() async throws {
        try await Self.withClient { _, client in
            let version = try await client.version()
            #expect(version == "v1.31.0-eks-testbed")
        }
    }

    @Test("get, create, patch and status patch of a Node")
    func nodeLifecycle() async throws {
        try await Self.withClient { testbed, client in
            let absent = try await client.node(named: Self.nodeName)
            #expect(absent == nil)
            let created = try await client.createNode(
                Node(
                    metadata: .init(name: Self.nodeName, labels: ["kubernetes.io/os": "linux"]),
                    spec: .init(
                        providerID: "aws:///us-west-2f/i-1234567890abcdef0",
                        taints: [.init(key: "dedicated", value: "infra", effect: "NoSchedule")]),
                    status: .init(capacity: ["pods": "58"])))
            #expect(created.metadata.uid?.isEmpty == false)
            #expect(created.metadata.creationTimestamp?.isEmpty == false)
            #expect(created.metadata.resourceVersion?.isEmpty == false)
            #expect(created.spec?.taints == [.init(key: "dedicated", value: "infra", effect: "NoSchedule")])
            let fetched = try #require(try await client.node(named: Self.nodeName))
            #expect(fetched.metadata.labels == ["kubernetes.io/os": "linux"])
            #expect(fetched.spec?.providerID == "aws:///us-west-2f/i-1234567890abcdef0")
            #expect(fetched.status?.capacity == ["pods": "58"])

            let patch = Node(
                apiVersion: nil, kind: nil, metadata: .init(name: Self.nodeName, labels: ["team": "a"]))
            let patched = try await client.patchNode(Self.nodeName, mergePatch: patch)
            #expect(patched.metadata.labels == ["kubernetes.io/os": "linux", "team": "a"])

            let addresses = Node.Status(addresses: [.init(type: "InternalIP", address: "172.16.34.43")])
            let statusPatch = try await client.patchNode(
                Self.nodeName,
                mergePatch: Array(#"{"status":{"addresses":[{"type":"InternalIP","address":"172.16.34.43"}]}}"#.utf8),
                status: true)
            #expect(statusPatch.status?.addresses == addresses.addresses)
            #expect(statusPatch.status?.capacity == ["pods": "58"])
            #expect(statusPatch.metadata.labels?["team"] == "a")

            try await testbed.setNodeReady(name: Self.nodeName)
            let ready = try #require(try await client.node(named: Self.nodeName))
            #expect(ready.isReady)
            #expect(ready.condition("Ready")?.reason == "KubeletReady")
            // What the server stores is what the client read.
            let stored = await testbed.nodes()
            #expect(stored.count == 1)
        }
    }

    @Test("create of an existing node is AlreadyExists")
    func alreadyExists() async throws {
        try await Self.withClient { _, client in
            _ = try await client.createNode(Node(metadata: .init(name: Self.nodeName)))
            let error = await Self.kubeError { _ = try await client.createNode(Node(metadata: .init(name: Self.nodeName))) }
            #expect(error?.kind == .alreadyExists)
            #expect(error?.status == 409)
            #expect(error?.message == "nodes \"\(Self.nodeName)\" already exists")
        }
    }

    @Test("a stale resourceVersion in a patch is Conflict")
    func conflict() async throws {
        try await Self.withClient { _, client in
            _ = try await client.createNode(Node(metadata: .init(name: Self.nodeName)))
            let patch = Node(
                apiVersion: nil, kind: nil, metadata: .init(name: Self.nodeName, labels: ["a": "b"], resourceVersion: "1"))
            let error = await Self.kubeError { _ = try await client.patchNode(Self.nodeName, mergePatch: patch) }
            #expect(error?.kind == .conflict)
            #expect(error?.reason == "Conflict")
        }
    }

    @Test("a node may not create another node: forbidden with the server's message")
    func forbiddenByRBAC() async throws {
        try await Self.withClient(token: Tokens.node) { _, client in
            let error = await Self.kubeError {
                _ = try await client.createNode(Node(metadata: .init(name: "ip-10-0-0-1.ec2.internal")))
            }
            #expect(error?.kind == .forbidden)
            #expect(error?.message.contains("cannot create resource \"nodes\"") == true, "\(String(describing: error))")
            #expect(error?.reason == "Forbidden")
            // Its own node it may create.
            _ = try await client.createNode(Node(metadata: .init(name: Self.nodeName)))
        }
    }

    @Test("a garbage token is 401 Unauthorized, and the token appears nowhere in the error")
    func unauthorized() async throws {
        let garbage = "k8s-aws-v1.not-a-real-token-\(UUID().uuidString)"
        try await Self.withClient(token: { _ in garbage }) { _, client in
            let error = await Self.kubeError { _ = try await client.version() }
            #expect(error?.kind == .unauthorized)
            #expect(error?.message == "Unauthorized")
            #expect(error.map { "\($0)".contains(garbage) } == false)
            #expect(error.map { "\($0)".contains("not-a-real-token") } == false)
        }
    }

    @Test("a token provider that fails is a credentials error")
    func tokenProviderFails() async throws {
        struct NoToken: Error, CustomStringConvertible { var description: String { "exec plugin exited 1" } }
        let testbed = try await Testbed.start()
        let client = try KubeClient(
            endpoint: testbed.kubeEndpoint, caPEM: Array(testbed.kubeCACertificatePEM.utf8), token: { throw NoToken() },
            requestTimeout: .seconds(5))
        let error = await Self.kubeError { _ = try await client.version() }
        await client.shutdown()
        try await testbed.shutdown()
        #expect(error?.kind == .credentials)
        #expect(error?.message.contains("exec plugin exited 1") == true)
    }

    @Test("another CA than the server's fails TLS verification")
    func wrongCA() async throws {
        let testbed = try await Testbed.start()
        let other = try await Testbed.start()
        let client = try KubeClient(
            endpoint: testbed.kubeEndpoint, caPEM: Array(other.kubeCACertificatePEM.utf8), token: { Tokens.admin(testbed) },
            requestTimeout: .seconds(5))
        let error = await Self.kubeError { _ = try await client.version() }
        await client.shutdown()
        try await testbed.shutdown()
        try await other.shutdown()
        #expect(error?.kind == .tls, "\(String(describing: error))")
        #expect(error?.message.contains("CERTIFICATE_VERIFY_FAILED") == true, "\(String(describing: error))")
    }

    @Test("the server's certificate is checked against the host name, not only the CA")
    func hostnameVerified() async throws {
        // Bound on every address: the certificate names localhost, 127.0.0.1 and 0.0.0.0, not 127.0.0.2
        // (loopback too, so the same server answers there).
        let testbed = try await Testbed.start(host: "0.0.0.0")
        let port = try #require(URL(string: testbed.kubeEndpoint)?.port)
        let ca = Array(testbed.kubeCACertificatePEM.utf8)
        let token = Tokens.admin(testbed)
        let byName = try KubeClient(
            endpoint: "https://localhost:\(port)", caPEM: ca, token: { token }, requestTimeout: .seconds(5))
        let version = await Self.kubeError { _ = try await byName.version() }
        await byName.shutdown()
        let byOtherAddress = try KubeClient(
            endpoint: "https://127.0.0.2:\(port)", caPEM: ca, token: { token }, requestTimeout: .seconds(5))
        let error = await Self.kubeError { _ = try await byOtherAddress.version() }
        await byOtherAddress.shutdown()
        try await testbed.shutdown()
        #expect(version == nil)
        #expect(error?.kind == .tls, "\(String(describing: error))")
    }

    @Test("a closed port is unreachable: connection refused")
    func connectionRefused() async throws {
        let port = try freeLoopbackPort()
        let client = try KubeClient(
            endpoint: "https://127.0.0.1:\(port)", caPEM: nil, token: { "unused" }, requestTimeout: .seconds(5))
        let error = await Self.kubeError { _ = try await client.node(named: "x") }
        await client.shutdown()
        #expect(error?.kind == .unreachable(.connectionRefused), "\(String(describing: error))")
        #expect(error?.isTransient == true)
    }

    @Test("an unresolvable host is unreachable: DNS")
    func unresolvable() async throws {
        let client = try KubeClient(
            endpoint: "https://nodeboot-test.invalid:443", caPEM: nil, token: { "unused" }, requestTimeout: .seconds(10))
        let error = await Self.kubeError { _ = try await client.version() }
        await client.shutdown()
        #expect(error?.kind == .unreachable(.dns), "\(String(describing: error))")
        #expect(error?.message.contains("nodeboot-test.invalid") == true)
    }

    @Test("a server that never answers is a timeout within the request timeout")
    func blackholed() async throws {
        try await Self.withClient(requestTimeout: .milliseconds(500)) { testbed, client in
            await testbed.setFaults([.blackhole(.kube, path: "/version")])
            let start = ContinuousClock.now
            let error = await Self.kubeError { _ = try await client.version() }
            #expect(error?.kind == .unreachable(.timeout), "\(String(describing: error))")
            #expect(ContinuousClock.now - start < .seconds(5))
            // Shutting down does not wait for the silent server's TLS close_notify.
            let closing = ContinuousClock.now
            await client.shutdown()
            #expect(ContinuousClock.now - closing < .seconds(2))
        }
    }

    @Test(
        "a server that sends the head, then stalls the body, is a timeout within the request timeout",
        .timeLimit(.minutes(1)))
    func stalledBody() async throws {
        try await Self.withClient(requestTimeout: .milliseconds(500)) { _, client in
            // A watch of an empty node list: the testbed sends the head at once, then a line per
            // event, and there is none.
            let start = ContinuousClock.now
            let error = await Self.kubeError {
                _ = try await client.get("/api/v1/nodes?watch=true&timeoutSeconds=600")
            }
            let elapsed = ContinuousClock.now - start
            #expect(error?.kind == .unreachable(.timeout), "\(String(describing: error))")
            #expect(error?.message.contains("the answer's body did not arrive in time") == true, "\(String(describing: error))")
            #expect(error?.isTransient == true)
            #expect(elapsed >= .milliseconds(500))
            #expect(elapsed < .seconds(3))
        }
    }

    @Test("a node name that is not a DNS-1123 subdomain is refused before anything is sent")
    func invalidNodeName() async throws {
        try await Self.withClient { testbed, client in
            for name in ["../version", "ip-10-0-0-1.ec2.internal/status", "IP-10-0-0-1", ""] {
                let error = await Self.kubeError { _ = try await client.node(named: name) }
                #expect(error?.kind == .invalidName, "\(name): \(String(describing: error))")
                #expect(error?.message.contains("is not a valid node name") == true)
            }
            #expect(await testbed.requests().filter { $0.endpoint == "kube" }.isEmpty)
        }
    }

    @Test(
        "injected faults become the matching error kinds",
        arguments: [
            (403, KubeError.Kind.forbidden, "forbidden (injected by the testbed)", false),
            (500, .http(500), "Internal error occurred: injected by the testbed", true),
            (503, .http(503), "the server is currently unable to handle the request", true),
            (404, .notFound, "the server could not find the requested resource", false),
        ])
    func faults(status: Int, kind: KubeError.Kind, message: String, transient: Bool) async throws {
        try await Self.withClient { testbed, client in
            await testbed.setFaults([.status(.kube, status, path: "/version")])
            let error = await Self.kubeError { _ = try await client.version() }
            #expect(error?.kind == kind)
            #expect(error?.message == message)
            #expect(error?.isTransient == transient)
        }
    }

    @Test("throttling is a transient 429; a garbage body is an invalid response")
    func throttledAndGarbage() async throws {
        try await Self.withClient { testbed, client in
            await testbed.setFaults([.throttle(.kube, action: "get", count: 1)])
            let throttled = await Self.kubeError { _ = try await client.node(named: Self.nodeName) }
            #expect(throttled?.kind == .http(429))
            #expect(throttled?.isTransient == true)
            await testbed.setFaults([.garbage(.kube, path: "/version")])
            let garbage = await Self.kubeError { _ = try await client.version() }
            #expect(garbage?.kind == .invalidResponse, "\(String(describing: garbage))")
        }
    }

    @Test("the endpoint must be https and the CA a PEM certificate")
    func configuration() {
        #expect(throws: KubeError.self) {
            try KubeClient(endpoint: "http://127.0.0.1:6443", caPEM: nil, token: { "" }, requestTimeout: .seconds(1))
        }
        do {
            let client = try KubeClient(
                endpoint: "https://127.0.0.1:6443", caPEM: Array("not a certificate".utf8), token: { "" },
                requestTimeout: .seconds(1))
            Issue.record("accepted a CA that is not PEM: \(client.endpoint)")
        } catch {
            #expect(error.kind == .configuration)
        }
    }
}

@Suite("Node JSON")
struct NodeJSONTests {
    @Test("unknown fields are ignored on decode; nil fields are left out on encode")
    func roundTrip() throws {
        let json = #"""
            {"kind":"Node","apiVersion":"v1","metadata":{"name":"n1","uid":"u","resourceVersion":"7","managedFields":[{}],
            "labels":{"a":"b"}},"spec":{"podCIDR":"10.0.0.0/24","providerID":"aws:///z/i-1",
            "taints":[{"key":"k","effect":"NoSchedule","timeAdded":null}]},"status":{"nodeInfo":{"kubeletVersion":"v1.31.0"},
            "conditions":[{"type":"Ready","status":"False","reason":"KubeletNotReady","lastHeartbeatTime":"2024-01-01T00:00:00Z"}],
            "addresses":[{"type":"InternalIP","address":"10.0.0.5"}],"capacity":{"pods":"110","cpu":"2"}}}
            """#
        let node = try Node(json: JSONObject(parsing: json.utf8))
        #expect(node.metadata.name == "n1")
        #expect(node.metadata.labels == ["a": "b"])
        #expect(node.spec?.taints == [.init(key: "k", effect: "NoSchedule")])
        #expect(node.condition("Ready")?.reason == "KubeletNotReady")
        #expect(!node.isReady)
        #expect(node.status?.capacity?["pods"] == "110")

        let patch = Node(apiVersion: nil, kind: nil, metadata: .init(name: "n1", labels: ["x": "y"]))
        #expect(patch.json.sortedKeys.text == #"{"metadata":{"labels":{"x":"y"},"name":"n1"}}"#)
        #expect(try Node(json: JSONObject(patch.json)) == patch)
        #expect(throws: JSONShapeError(path: "spec.taints[0].effect", expected: "a string")) {
            try Node(json: JSONObject(parsing: #"{"metadata":{"name":"n"},"spec":{"taints":[{"key":"k"}]}}"#.utf8))
        }
    }

    @Test(
        "node names: DNS-1123 subdomains as the API server validates them",
        arguments: [
            ("ip-172-16-34-43.us-west-2.compute.internal", true), ("i-1234567890abcdef0", true), ("a", true),
            ("0.1-x", true), (String(repeating: "a", count: 253), true), (String(repeating: "a", count: 254), false),
            ("", false), ("Ip-10-0-0-1", false), ("-a", false), ("a-", false), ("a..b", false), (".a", false),
            ("a.", false), ("a_b", false), ("a/b", false), ("a b", false), ("é", false),
        ])
    func nodeNames(name: String, valid: Bool) {
        #expect(Node.isValidName(name) == valid)
    }

    @Test("taints print as key=value:Effect and match with an empty value as absent")
    func taints() {
        #expect("\(Node.Taint(key: "a", value: "b", effect: "NoExecute"))" == "a=b:NoExecute")
        #expect("\(Node.Taint(key: "a", effect: "NoSchedule"))" == "a:NoSchedule")
        #expect(Node.Taint(key: "a", value: "", effect: "NoSchedule").matches(.init(key: "a", effect: "NoSchedule")))
        #expect(!Node.Taint(key: "a", value: "x", effect: "NoSchedule").matches(.init(key: "a", effect: "NoSchedule")))
    }
}
