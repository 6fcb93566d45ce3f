import Foundation
import SigV4
import TestSupport
import Testbed
import Testing

/// `nodeboot facts` as an operator runs it: the real binary against the testbed.
@Suite("nodeboot facts")
struct FactsCommandTests {
    static let binary = Paths.debugBinaries.appendingPathComponent("nodeboot").path

    @Test("prints the instance, interfaces, region, credential source and private DNS name; never a secret")
    func printsFacts() async throws {
        let testbed = try await Testbed.start()
        let environment = ChildProcess.cleanEnvironment(testbed.environment)
        let json = try await ChildProcess.run([Self.binary, "facts", "--output", "json"], environment: environment)
        let text = try await ChildProcess.run([Self.binary, "facts"], environment: environment)
        try await testbed.shutdown()

        #expect(json.status == 0, "stderr: \(json.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect(object["privateDnsName"] as? String == testbed.configuration.privateDnsName)
        let instance = try #require(object["instance"] as? [String: Any])
        let identity = try #require(instance["identity"] as? [String: Any])
        #expect(identity["instanceId"] as? String == "i-1234567890abcdef0")
        #expect((instance["interfaces"] as? [Any])?.count == 1)
        #expect((object["region"] as? [String: Any])?["name"] as? String == "us-west-2")
        #expect(((object["credentials"] as? [String: Any])?["source"] as? String)?.contains("baskinc-role") == true)

        #expect(text.status == 0)
        #expect(text.stdout.contains("i-1234567890abcdef0"))
        #expect(text.stdout.contains("us-west-2 (from IMDS identity document)"))
        for secret in [testbed.roleCredentials.secretAccessKey, testbed.roleCredentials.sessionToken ?? "-"] {
            #expect(!json.stdout.contains(secret) && !text.stdout.contains(secret))
            #expect(!json.stderr.contains(secret) && !text.stderr.contains(secret))
        }
    }

    @Test("without IMDS it exits 1 with an error naming the endpoint")
    func noIMDS() async throws {
        let port = try freeLoopbackPort()
        let result = try await ChildProcess.run(
            [Self.binary, "facts", "--imds-timeout", "2"],
            environment: ChildProcess.cleanEnvironment(["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://127.0.0.1:\(port)"]))
        #expect(result.status == 1)
        #expect(result.stdout.contains("127.0.0.1:\(port)"))
    }

    @Test("a malformed IMDS endpoint is bad input: exit 2")
    func badEndpoint() async throws {
        let result = try await ChildProcess.run(
            [Self.binary, "facts"],
            environment: ChildProcess.cleanEnvironment(["AWS_EC2_METADATA_SERVICE_ENDPOINT": "ftp://nope"]))
        #expect(result.status == 2)
        #expect(result.stderr.contains("AWS_EC2_METADATA_SERVICE_ENDPOINT"))
    }
}
