import Foundation

/// A `moto_server` on a free loopback port, for the EC2/EKS call flow against a real mock.
public final class MotoServer: @unchecked Sendable {
    public let endpoint: String
    let process: Process

    public static var isAvailable: Bool { ChildProcess.exists("moto_server") }

    /// Starts `moto_server` and waits until it answers.
    public static func start() async throws -> MotoServer {
        let server = try MotoServer()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            let probe = try await ChildProcess.run([
                "python3", "-c", "import urllib.request; urllib.request.urlopen('\(server.endpoint)/moto-api/')",
            ])
            if probe.status == 0 { return server }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestSupportError("moto_server did not answer on \(server.endpoint) within 30 s")
    }

    init() throws {
        let port = try freeLoopbackPort()
        endpoint = "http://127.0.0.1:\(port)"
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["moto_server", "-H", "127.0.0.1", "-p", String(port)]
        process.environment = ChildProcess.cleanEnvironment()
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
    }

    /// Runs a boto3 snippet against this server (credentials `testing`, region us-west-2) and returns its stdout.
    public func boto3(_ script: String) async throws -> String {
        let result = try await ChildProcess.run(
            ["python3", "-c", "import boto3\nkw=dict(endpoint_url='\(endpoint)', region_name='us-west-2')\n" + script],
            environment: ChildProcess.cleanEnvironment([
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            ]))
        guard result.status == 0 else { throw TestSupportError("boto3 against moto failed: \(result.stderr)") }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    deinit {
        // SIGKILL: test children may inherit SIGTERM ignored, and a mock needs no graceful stop.
        // No waitUntilExit: it spins a run loop on a cooperative thread. Foundation reaps the child.
        if process.processIdentifier > 0 { kill(process.processIdentifier, SIGKILL) }
    }
}
