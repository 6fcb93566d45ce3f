import Foundation
import SigV4
import Support
import TestSupport
import Testbed
import Testing

/// What curl saw of one request to the kube API server.
struct KubeResult: Sendable {
    var status: Int
    var contentType: String
    var body: String
    /// curl's exit status (0, or 60 for an untrusted certificate, 7 refused, 28 timeout).
    var curlStatus: Int32
    var curlError: String

    /// The body as a JSON object (Foundation's view), or nil.
    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]  // not JSON: nil
    }
}

/// A client for the testbed's kube API server: curl over HTTPS, trusting only a given CA.
enum Kube {
    // Checked once: each check runs a program synchronously, on a thread of the cooperative pool.
    static let curlAvailable = ChildProcess.exists("curl")
    static let botocoreAvailable = ChildProcess.pythonHas("botocore")
    static let opensslAvailable = ChildProcess.exists("openssl")

    /// A fresh directory for one test's files.
    static func directory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("testbed-kube-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// The testbed's CA certificate in a file, for `--cacert` and kubeconfigs: one file per CA.
    static func caFile(_ testbed: Testbed) throws -> String {
        let pem = testbed.kubeCACertificatePEM
        let name = "testbed-kube-ca-\(Hex.sha256(Array(pem.utf8)).prefix(16)).crt"
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        if !FileManager.default.fileExists(atPath: url.path) {
            try Data(pem.utf8).write(to: url, options: .atomic)
        }
        return url.path
    }

    /// A GET.
    static func call(
        _ testbed: Testbed, _ path: String, token: String?, headers: [String: String] = [:], ca: String? = nil,
        timeout: Int = 10
    ) async throws -> KubeResult {
        try await call(testbed, "GET", path, token: token, headers: headers, ca: ca, timeout: timeout)
    }

    static func call(
        _ testbed: Testbed, _ method: String, _ path: String, token: String?, body: String? = nil,
        contentType: String = "application/json", headers: [String: String] = [:], ca: String? = nil,
        timeout: Int = 10
    ) async throws -> KubeResult {
        var arguments = [
            "curl", "-sS", "--max-time", String(timeout), "--cacert", try ca ?? caFile(testbed), "-X", method,
            "-w", "\n%{http_code} %{content_type}",
        ]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { arguments += ["-H", "\(name): \(value)"] }
        if body != nil { arguments += ["-H", "Content-Type: \(contentType)", "--data-binary", "@-"] }
        arguments.append(testbed.kubeEndpoint + path)
        let output = try await ChildProcess.run(arguments, environment: ChildProcess.cleanEnvironment(), stdin: body)
        var text = output.stdout
        var status = 0
        var type = ""
        if let newline = text.lastIndex(of: "\n") {
            let trailer = text[text.index(after: newline)...].split(separator: " ", maxSplits: 1)
            status = trailer.first.flatMap { Int($0) } ?? 0
            type = trailer.count > 1 ? String(trailer[1]) : ""
            text = String(text[..<newline])
        }
        // The API server ends each JSON body with a newline.
        if text.hasSuffix("\n") { text.removeLast() }
        return KubeResult(
            status: status, contentType: type, body: text, curlStatus: output.status, curlError: output.stderr)
    }

    // MARK: Tokens

    /// A `k8s-aws-v1` token signed by the project's own SigV4 signer (as botocore would make it).
    static func token(
        _ credentials: SigV4Credentials, region: String = "us-west-2", cluster: String = "my-cluster",
        date: Date = Date()
    ) -> String {
        let host = "sts.\(region).amazonaws.com"
        let request = SigV4Request(
            method: "GET", path: "/",
            query: [(name: "Action", value: "GetCallerIdentity"), (name: "Version", value: "2011-06-15")],
            headers: [(name: "Host", value: host), (name: "x-k8s-aws-id", value: cluster)])
        let query = SigV4Signer(credentials: credentials, region: region, service: "sts").presignedQuery(
            request, date: date, expires: 60)
        return tokenFor(url: "https://\(host)/?\(query)")
    }

    /// `k8s-aws-v1.` + unpadded base64url of a URL.
    static func tokenFor(url: String) -> String {
        "k8s-aws-v1."
            + Data(url.utf8).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }

    /// The static keys' token: `kubernetes-admin` in `system:masters`.
    static func adminToken(_ testbed: Testbed) -> String {
        token(SigV4Credentials(accessKeyID: "testing", secretAccessKey: "testing"), region: testbed.region)
    }

    /// The instance role's token: `system:node:<privateDnsName>`.
    static func nodeToken(_ testbed: Testbed) -> String {
        token(testbed.roleCredentials, region: testbed.region)
    }

    /// What to make a botocore token from.
    struct BotocoreSpec: Encodable {
        var accessKeyId: String
        var secretAccessKey: String
        var sessionToken: String?
        var region: String
        var cluster: String
        /// Freeze botocore's signing clock this many seconds in the past.
        var ageSeconds: Int?
        /// Change the last character of X-Amz-Signature.
        var tamper = false
        /// Keep base64's '=' padding.
        var padded = false
    }

    /// Tokens made by botocore as `aws eks get-token` makes them: an STS client with regional
    /// endpoints, `x-k8s-aws-id` injected before signing, a presigned GetCallerIdentity URL.
    static func botocoreTokens(_ specs: [BotocoreSpec]) async throws -> [String] {
        let script = try directory().appendingPathComponent("make_k8s_token.py")
        try Data(botocoreScript.utf8).write(to: script)
        let input = String(decoding: try JSONEncoder().encode(specs), as: UTF8.self)
        let output = try await ChildProcess.run(
            ["python3", script.path],
            environment: ChildProcess.cleanEnvironment([
                "AWS_STS_REGIONAL_ENDPOINTS": "regional", "AWS_EC2_METADATA_DISABLED": "true",
            ]), stdin: input, timeout: 60)
        guard output.status == 0,
            let tokens = try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String]
        else {
            throw TestFailure("botocore token script failed (\(output.status)): \(output.stderr)")
        }
        return tokens
    }

    static func botocoreSpec(_ credentials: SigV4Credentials, region: String, cluster: String = "my-cluster")
        -> BotocoreSpec
    {
        BotocoreSpec(
            accessKeyId: credentials.accessKeyID, secretAccessKey: credentials.secretAccessKey,
            sessionToken: credentials.sessionToken, region: region, cluster: cluster)
    }

    static let botocoreScript = """
        import base64, datetime, json, sys
        import botocore.auth
        import botocore.session

        real_clock = botocore.auth.get_current_datetime


        def presigned_url(spec):
            if spec.get("ageSeconds") is not None:
                now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
                frozen = now - datetime.timedelta(seconds=spec["ageSeconds"])
                botocore.auth.get_current_datetime = lambda: frozen
            else:
                botocore.auth.get_current_datetime = real_clock
            client = botocore.session.get_session().create_client(
                "sts", region_name=spec["region"], aws_access_key_id=spec["accessKeyId"],
                aws_secret_access_key=spec["secretAccessKey"], aws_session_token=spec.get("sessionToken"))
            cluster = spec["cluster"]

            def with_cluster_header(request, **kwargs):
                request.headers["x-k8s-aws-id"] = cluster

            client.meta.events.register("before-sign.sts.GetCallerIdentity", with_cluster_header)
            return client.generate_presigned_url("get_caller_identity", ExpiresIn=60, HttpMethod="GET")


        tokens = []
        for spec in json.load(sys.stdin):
            url = presigned_url(spec)
            if spec.get("tamper"):
                url = url[:-1] + ("1" if url[-1] == "0" else "0")
            encoded = base64.urlsafe_b64encode(url.encode()).decode()
            if spec.get("padded"):
                encoded = encoded if encoded.endswith("=") else encoded + "=="
            else:
                encoded = encoded.rstrip("=")
            tokens.append("k8s-aws-v1." + encoded)
        json.dump(tokens, sys.stdout)
        """
}

/// A child that runs until killed (curl watching), its stdout read line by line; it never
/// inherits the test runner's stdout or stderr.
final class LongLivedChild: @unchecked Sendable {  // Process is only started, read and killed
    let process: Process
    let reader: LineReader

    init(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        process.environment = ChildProcess.cleanEnvironment()
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
        self.process = process
        self.reader = LineReader(stdout.fileHandleForReading)
    }

    var isRunning: Bool { process.isRunning }

    /// Waits (without blocking a thread) until the child exits; false on timeout.
    func waitForExit(timeout: Duration) async throws -> Bool {
        let deadline = ContinuousClock.now + timeout
        while process.isRunning {
            if ContinuousClock.now >= deadline { return false }
            try await Task.sleep(for: .milliseconds(20))
        }
        return true
    }

    func kill() {
        // SIGKILL: test children may inherit SIGTERM ignored. Foundation reaps the child.
        if process.isRunning { Foundation.kill(process.processIdentifier, SIGKILL) }
    }

    deinit { kill() }
}
