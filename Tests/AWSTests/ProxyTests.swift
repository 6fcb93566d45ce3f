import AWS
import Foundation
import TestSupport
import Testbed
import Testing

/// HTTP(S)_PROXY honoured for AWS calls, through a real CONNECT proxy; NO_PROXY exempts.
@Suite("AWS calls through an HTTP proxy", .enabled(if: ChildProcess.exists("python3"), "python3 is not installed"))
struct ProxyTests {
    @Test("EC2 calls go through HTTP_PROXY; IMDS and NO_PROXY hosts do not")
    func throughProxy() async throws {
        let (process, lines, port) = try await ConnectProxy.start()
        defer { kill(process.processIdentifier, SIGKILL) }

        try await TestbedFlowTests.withSession(environment: ["HTTP_PROXY": "http://127.0.0.1:\(port)"]) { testbed, session in
            let client = try await session.client(region: "us-west-2")
            let instance = try await client.describeInstance(id: "i-1234567890abcdef0")
            #expect(!instance.privateDnsName.isEmpty)
            let tunnel = try await lines.next(timeout: 10)
            let awsHost = try #require(URL(string: testbed.awsEndpoint)).port.map { "127.0.0.1:\($0)" }
            #expect(tunnel == "CONNECT \(awsHost ?? "?") HTTP/1.1")
        }
        try await TestbedFlowTests.withSession(environment: [
            "HTTP_PROXY": "http://127.0.0.1:\(port)", "NO_PROXY": "127.0.0.1",
        ]) { _, session in
            let client = try await session.client(region: "us-west-2")
            _ = try await client.describeInstance(id: "i-1234567890abcdef0")
        }
        // Neither IMDS (never proxied) nor the NO_PROXY run opened another tunnel.
        #expect(lines.unread.isEmpty)
    }
}
