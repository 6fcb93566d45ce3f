import Foundation
import SigV4
import TestSupport
import Testbed
import Testing

@Suite("nodeboot-testbed executable")
struct ExecutableTests {
    /// The built `nodeboot-testbed` next to the test bundle, if `swift build` made it.
    static let binary: String? = {
        var candidates: [URL] = []
        if let executable = Bundle.main.executableURL {
            candidates.append(executable.deletingLastPathComponent().appendingPathComponent("nodeboot-testbed"))
        }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        candidates.append(root.appendingPathComponent(".build/debug/nodeboot-testbed"))
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.path) }?.path
    }()

    // Skipped (with this reason printed) when the executable was not built next to the tests.
    @Test(
        "serve prints its endpoints, serves IMDS, and exits 0 on SIGTERM",
        .enabled(if: binary != nil, "nodeboot-testbed not built (run swift build first)"))
    func serve() async throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(ExecutableTests.binary))
        process.arguments = ["serve"]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reader = LineReader(stdout.fileHandleForReading)
        defer { if process.isRunning { process.terminate() } }

        var imds: String?
        var aws: String?
        var kube: String?
        var kubeCA: String?
        for _ in 0..<100 where imds == nil || aws == nil || kube == nil || kubeCA == nil {
            try await Task.sleep(for: .milliseconds(100))
            for line in reader.lines {
                if line.hasPrefix("imds: ") { imds = String(line.dropFirst(6)) }
                if line.hasPrefix("aws: ") { aws = String(line.dropFirst(5)) }
                if line.hasPrefix("kube: ") { kube = String(line.dropFirst(6)) }
                if line.hasPrefix("kube-ca: ") { kubeCA = String(line.dropFirst(9)) }
            }
        }
        let imdsEndpoint = try #require(imds)
        #expect(aws?.hasPrefix("http://127.0.0.1:") == true)
        let kubeEndpoint = try #require(kube)
        let caPath = try #require(kubeCA)
        #expect(kubeEndpoint.hasPrefix("https://127.0.0.1:"))
        #expect(try String(contentsOfFile: caPath, encoding: .utf8).hasPrefix("-----BEGIN CERTIFICATE-----"))
        if ChildProcess.exists("curl") {
            // The CA file is the one the server's certificate chains to; no token: 401.
            let version = try await ChildProcess.run([
                "curl", "-sS", "--max-time", "10", "--cacert", caPath, "-o", "/dev/null", "-w", "%{http_code}",
                kubeEndpoint + "/version",
            ])
            #expect(version.stdout == "401", "\(version.stderr)")
        }
        #expect(reader.lines.contains("export AWS_EC2_METADATA_SERVICE_ENDPOINT=\(imdsEndpoint)"))
        #expect(reader.lines.contains { $0.hasPrefix("export AWS_ENDPOINT_URL=http://127.0.0.1:") })

        let token = try await HTTP.send(
            imdsEndpoint + "/latest/api/token", method: "PUT", headers: ["X-aws-ec2-metadata-token-ttl-seconds": "60"])
        #expect(token.status == 200)
        let document = try await HTTP.send(
            imdsEndpoint + "/latest/dynamic/instance-identity/document",
            headers: ["X-aws-ec2-metadata-token": token.text])
        #expect(document.status == 200)
        #expect(document.text.contains(#""region" : "us-west-2""#))

        process.terminate()  // SIGTERM
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(!process.isRunning)
        #expect(process.terminationReason == .exit)
        #expect(process.terminationStatus == 0)
        // The default CA file lived in a temporary directory of its own, removed on exit.
        #expect(!FileManager.default.fileExists(atPath: caPath))
    }

    @Test(
        "serve --kube-port and --kube-ca-out put the API server and its CA where asked",
        .enabled(if: binary != nil, "nodeboot-testbed not built (run swift build first)"))
    func kubeOptions() async throws {
        let port = try freeLoopbackPort()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("testbed-exe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let caPath = directory.appendingPathComponent("ca.pem").path
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(ExecutableTests.binary))
        process.arguments = ["serve", "--kube-port", String(port), "--kube-ca-out", caPath]
        let stdout = Pipe()
        process.standardOutput = stdout
        process.standardError = FileHandle.nullDevice
        try process.run()
        let reader = LineReader(stdout.fileHandleForReading)
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        var lines: [String] = []
        for _ in 0..<100 where !lines.contains(where: { $0.hasPrefix("kube-ca: ") }) {
            try await Task.sleep(for: .milliseconds(100))
            lines = reader.lines
        }
        #expect(lines.contains("kube: https://127.0.0.1:\(port)"))
        #expect(lines.contains("kube-ca: \(caPath)"))
        #expect(try String(contentsOfFile: caPath, encoding: .utf8).hasPrefix("-----BEGIN CERTIFICATE-----"))
        process.terminate()
        let deadline = ContinuousClock.now + .seconds(10)
        while process.isRunning && ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(process.terminationStatus == 0)
        #expect(FileManager.default.fileExists(atPath: caPath))  // a file asked for is left in place
    }

    @Test(
        "a bad configuration file exits 2 with an error naming the file and field",
        .enabled(if: binary != nil, "nodeboot-testbed not built (run swift build first)"))
    func badConfig() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("testbed-exe-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let file = directory.appendingPathComponent("bad.json")
        try Data(#"{"clusters": [{"serviceIpv4Cidr": "nope"}]}"#.utf8).write(to: file)
        let output = try await ChildProcess.run(
            [try #require(ExecutableTests.binary), "serve", "--config", file.path], environment: [:])
        #expect(output.status == 2)
        #expect(output.stderr.contains(file.path))
        #expect(output.stderr.contains("clusters[0].serviceIpv4Cidr"))
    }
}
