import Foundation
import TestSupport
import Testing

/// `nodeboot token` as the kubelet and kubectl run it: errors go to stderr with a non-zero
/// status and nothing on stdout (client-go would try to parse it).
@Suite("nodeboot token, the binary")
struct TokenCommandTests {
    static let binary = Paths.debugBinaries.appendingPathComponent("nodeboot").path

    @Test("no credentials anywhere: says where it looked, exit 1, nothing on stdout")
    func noCredentials() async throws {
        let port = try freeLoopbackPort()
        let result = try await ChildProcess.run(
            [Self.binary, "token", "--cluster-name", "my-cluster", "--region", "us-west-2"],
            environment: ["PATH": "/usr/bin:/bin", "AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(port)"])
        #expect(result.status == 1)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("AWS_ACCESS_KEY_ID"), "\(result.stderr)")
        #expect(result.stderr.contains("instance role"), "\(result.stderr)")
    }

    @Test("malformed KUBERNETES_EXEC_INFO: exit 2, nothing on stdout")
    func badExecInfo() async throws {
        let result = try await ChildProcess.run(
            [Self.binary, "token", "--cluster-name", "my-cluster"],
            environment: [
                "PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret",
                "AWS_REGION": "us-west-2", "KUBERNETES_EXEC_INFO": "{not json",
            ])
        #expect(result.status == 2)
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.contains("KUBERNETES_EXEC_INFO"))
    }

    @Test("the secret key and session token never reach stdout or stderr in clear beyond the token")
    func noSecrets() async throws {
        let result = try await ChildProcess.run(
            [Self.binary, "token", "--cluster-name", "my-cluster"],
            environment: [
                "PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "SECRET-MARKER",
                "AWS_REGION": "us-west-2",
            ])
        #expect(result.status == 0)
        #expect(!result.stdout.contains("SECRET-MARKER") && !result.stderr.contains("SECRET-MARKER"))
        #expect(result.stdout.hasPrefix("{\"kind\":\"ExecCredential\""))
    }

    @Test("invoked as aws-iam-authenticator: token -i NAME --region R")
    func authenticatorName() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("iam-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let link = directory.appendingPathComponent("aws-iam-authenticator").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: Self.binary)
        let result = try await ChildProcess.run(
            [link, "token", "-i", "my-cluster", "--region", "eu-west-1"],
            environment: ["PATH": "/usr/bin:/bin", "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret"])
        #expect(result.status == 0, "\(result.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any])
        let token = try #require((object["status"] as? [String: String])?["token"])
        var base64 = String(token.dropFirst("k8s-aws-v1.".count)).replacingOccurrences(of: "-", with: "+")
            .replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        let url = String(decoding: try #require(Data(base64Encoded: base64)), as: UTF8.self)
        #expect(url.hasPrefix("https://sts.eu-west-1.amazonaws.com/?Action=GetCallerIdentity"))
    }
}
