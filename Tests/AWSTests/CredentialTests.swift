import AWS
import Foundation
import SigV4
import Support
import TestSupport
import Testbed
import Testing

@Suite("credentials and service-error hints")
struct CredentialTests {
    @Test("role credentials are cached, refreshed before expiry, with one refresh in flight")
    func refreshesOnce() async throws {
        var configuration = TestbedConfiguration.default
        configuration.role.expiresInSeconds = 6
        try await TestbedFlowTests.withSession(configuration) { testbed, session in
            let provider = try #require(try await InstanceRoleCredentialProvider.discover(imds: session.imds))
            func fetches() async -> Int {
                await testbed.requests().filter { $0.path == "/latest/meta-data/iam/security-credentials/baskinc-role" }.count
            }
            let first = try await provider.credentials()
            #expect(first.accessKeyID == testbed.roleCredentials.accessKeyID)
            try await withThrowingTaskGroup(of: SigV4Credentials.self) { group in
                for _ in 0..<5 { group.addTask { try await provider.credentials() } }
                for try await _ in group {}
            }
            #expect(await fetches() == 1)
            // Half of a 6 s lifetime later the credentials are due for renewal: many callers, one fetch.
            try await Task.sleep(for: .milliseconds(3500))
            try await withThrowingTaskGroup(of: SigV4Credentials.self) { group in
                for _ in 0..<10 { group.addTask { try await provider.credentials() } }
                for try await _ in group {}
            }
            #expect(await fetches() == 2)
        }
    }

    @Test("no credentials anywhere: the error lists every place it looked and what to do")
    func noCredentials() async throws {
        let port = try freeLoopbackPort()
        let transport = AsyncHTTPTransport(connectTimeout: .milliseconds(250))
        let imds = IMDSClient(
            endpoint: "http://127.0.0.1:\(port)", transport: transport,
            policy: RetryPolicy(
                maxAttempts: 3, baseDelay: .milliseconds(10), maxBackoff: .milliseconds(50), deadline: .seconds(2),
                attemptTimeout: .milliseconds(500)))
        await #expect {
            try await CredentialChain.resolve(environment: [:], imds: imds)
        } throws: { error in
            guard let error = error as? AWSError else { return false }
            return error.kind == .noCredentials && error.message.contains("AWS_ACCESS_KEY_ID")
                && error.message.contains("instance role") && error.hint?.contains("instance profile") == true
        }
        await transport.shutdown()
    }

    struct HintCase: Sendable, CustomTestStringConvertible {
        var code: String
        var status: Int
        var hint: String
        var testDescription: String { "\(code) -> \(hint)" }
    }

    @Test(
        "common AWS errors carry the request id and a hint",
        arguments: [
            HintCase(code: "UnauthorizedOperation", status: 403, hint: "lacks 'ec2:DescribeInstances'"),
            HintCase(code: "RequestExpired", status: 400, hint: "system clock"),
            HintCase(code: "AuthFailure", status: 401, hint: "access key id is not valid"),
        ])
    func hints(_ c: HintCase) async throws {
        var configuration = TestbedConfiguration.default
        configuration.faults = [FaultRule(endpoint: .ec2, action: "DescribeInstances", status: c.status, code: c.code)]
        try await TestbedFlowTests.withSession(configuration) { _, session in
            let client = try await session.client(region: "us-west-2")
            await #expect {
                try await client.describeInstance(id: "i-1234567890abcdef0")
            } throws: { error in
                guard let error = error as? AWSError else { return false }
                return error.code == c.code && error.status == c.status && error.requestID != nil
                    && error.hint?.contains(c.hint) == true
            }
        }
    }
}
