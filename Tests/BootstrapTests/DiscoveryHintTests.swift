import Foundation
import Logging
import NodeConfig
import Support
import Systemd
import TestSupport
import Testbed
import Testing

@testable import AWS
@testable import Bootstrap

/// The hint of a failed discovery call follows the failure (issue 15's fault matrix): a network
/// or proxy failure is never reported as a missing permission.
@Suite("discovery errors: hints that match the failure")
struct DiscoveryHintTests {
    static let endpoint = "http://127.0.0.1:1"

    static func unreachable(proxy: String?) -> AWSError {
        let transport = TransportError(
            .connection, url: endpoint + "/", detail: "DNS error: Name or service not known for host proxy.invalid",
            proxy: proxy)
        let final = AWSError.final(transport, operation: "EC2 DescribeInstances", endpoint: endpoint, unreachableHint: "NETWORK")
        return final as! AWSError
    }

    static func service(code: String?, status: Int, hint: String? = nil) -> AWSError {
        AWSError(
            code == nil ? .malformedResponse : .service, operation: "EC2 DescribeInstances", endpoint: endpoint,
            message: "m", code: code, status: status,
            hint: code.flatMap { AWSError.hint(code: $0, action: "ec2:DescribeInstances", context: nil) })
    }

    @Test(
        "each kind of failure gets its own hint, never a permission hint unless access was denied",
        arguments: [
            (unreachable(proxy: "proxy.invalid:3128"), "HTTP proxy proxy.invalid:3128", "lacks"),
            (unreachable(proxy: nil), "NETWORK", "lacks"),
            (service(code: "UnauthorizedOperation", status: 403), "lacks 'ec2:DescribeInstances'", "proxy"),
            (service(code: "RequestLimitExceeded", status: 503), "throttling", "lacks"),
            (service(code: "InternalError", status: 500), "failed on the service's side (HTTP 500)", "lacks"),
            (service(code: nil, status: 200), "not EC2 DescribeInstances's answer", "lacks"),
        ])
    func hintFollowsFailure(error: AWSError, expected: String, never: String) throws {
        let failure = Discoverer.failure(error, operation: "EC2 DescribeInstances", otherwise: Discoverer.nameAlternative)
        let hint = try #require(failure.hint)
        #expect(hint.contains(expected), "\(hint)")
        #expect(!hint.contains(never), "\(hint)")
        #expect(hint.hasSuffix(Discoverer.nameAlternative))
        // The hint is said once, on its own line, not inside the message too.
        #expect(!failure.message.contains("Hint:"), "\(failure.message)")
    }

    static func imds(_ kind: AWSError.Kind, status: Int?, hint: String? = nil) -> AWSError {
        AWSError(
            kind, operation: "IMDS GET /latest/user-data", endpoint: "http://169.254.169.254", message: "m",
            status: status, hint: hint)
    }

    @Test(
        "an IMDS failure's hint says what happened: no answer, an error status through every retry, IMDSv2 refused",
        arguments: [
            (imds(.unreachable, status: nil), "no answer from the instance metadata service at http://169.254.169.254"),
            (imds(.service, status: 500), "answered HTTP 500 through every retry until --imds-timeout"),
            (imds(.service, status: 429), "answered HTTP 429"),
            (imds(.service, status: 403, hint: "nodeboot uses IMDSv2 only"), "nodeboot uses IMDSv2 only"),
        ])
    func imdsHintFollowsFailure(error: AWSError, expected: String) throws {
        let failure = Discoverer.imdsFailure(error, reading: "the user data")
        #expect(failure.hint?.contains(expected) == true, "\(failure.hint ?? "")")
        #expect(failure.message.hasPrefix("could not read the user data from IMDS: IMDS GET /latest/user-data"))
        #expect(!failure.message.contains("Hint:"), "\(failure.message)")
    }

    @Test("an unresolvable HTTP_PROXY host from spec.instance.environment.default is reported as the proxy, not IAM")
    func unresolvableProxy() async throws {
        let testbed = try await Testbed.start()
        let root = try NodeFixture.root()
        let config =
            NodeFixture.config + """

                  instance:
                    environment:
                      default:
                        HTTP_PROXY: http://proxy.invalid:3128
                        HTTPS_PROXY: http://proxy.invalid:3128
                """
        let file = root + "/user-data.yaml"
        try Data(config.utf8).write(to: URL(fileURLWithPath: file))
        var options = InitOptions()
        options.root = root
        options.skip = [.run]
        options.sources = [.file(file)]
        var environment = testbed.environment
        environment["AWS_MAX_ATTEMPTS"] = "1"
        let runner = NodeInit(
            options: options, environment: environment,
            logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        let start = ContinuousClock.now
        var caught: NodeBootError?
        do {
            _ = try await runner.run()
        } catch {
            caught = error
        }
        try await testbed.shutdown()
        let error = try #require(caught)
        let hint = try #require(error.hint)
        #expect(error.code == .aws)
        #expect(error.message.contains("through the proxy proxy.invalid:3128"), "\(error.message)")
        #expect(hint.contains("HTTP proxy proxy.invalid:3128"), "\(hint)")
        #expect(!hint.contains("ec2:DescribeInstances"), "\(hint)")
        #expect(ContinuousClock.now - start < .seconds(30))
    }
}

/// A node file that cannot be written because its filesystem is read-only or full says so.
@Suite("disk errors: hints that match the failure")
struct DiskErrorHintTests {
    @Test(
        "EROFS and ENOSPC are named; other errors keep the caller's hint",
        arguments: [(EROFS, "is read-only"), (ENOSPC, "is full"), (EACCES, "FALLBACK")])
    func hintFollowsErrno(errno: Int32, expected: String) {
        let failure = NodeFileSystem.Failure(path: "/root/run", operation: "mkdir", errno: errno)
        let hint = DiskErrorHint.hint(for: failure, fallback: "FALLBACK")
        #expect(hint.contains(expected), "\(hint)")
        #expect(errno == EACCES || hint.contains("/root/run"))
    }
}

/// A unit that times out is reported as a timeout naming --unit-timeout (the fault matrix's
/// "systemd unit timing out" row; the bound itself: SystemdTests/UnitJobTests 'a job that never
/// finishes is .timeout within its bound').
@Suite("unit errors: hints that match the failure")
struct UnitErrorHintTests {
    @Test("a timed-out start names the limit and --unit-timeout; a failed one names the journal")
    func timeoutAndFailure() {
        let timedOut = ServiceRun.failure(
            "kubelet.service", SystemdError(.timeout, unit: "kubelet.service", "the start job did not finish within 2.0 s"),
            timeout: .seconds(2))
        #expect(timedOut.hint?.contains("did not become active within 2.0 s") == true, "\(timedOut.hint ?? "")")
        #expect(timedOut.hint?.contains("--unit-timeout") == true)
        #expect(timedOut.code == .systemd)
        let failed = ServiceRun.failure(
            "kubelet.service",
            SystemdError(.unitFailed, unit: "kubelet.service", "kubelet.service failed", journal: ["bad flag"]),
            timeout: .seconds(2))
        #expect(failed.hint?.contains("--unit-timeout") == false)
        #expect(failed.hint?.contains("journal") == true)
    }
}
