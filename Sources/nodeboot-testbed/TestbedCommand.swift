import ArgumentParser
import Foundation
import Logging
import Testbed

/// `nodeboot-testbed`: the testbed as a process, for the demo and manual runs.
@main
struct TestbedCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodeboot-testbed",
        abstract:
            "A loopback EC2 instance (IMDSv2), AWS endpoint (EC2, EKS, STS) and Kubernetes API server, with fault injection.",
        subcommands: [Serve.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start the testbed, print its endpoints and environment, run until SIGINT or SIGTERM.")

    @Option(name: .long, help: "Testbed configuration file (JSON, see docs/testbed.md).")
    var config: String?

    @Option(name: .long, help: "Address to listen on.")
    var host: String = "127.0.0.1"

    @Option(name: .customLong("imds-port"), help: "IMDS port (0 = ephemeral).")
    var imdsPort: Int = 0

    @Option(name: .customLong("aws-port"), help: "AWS (EC2, EKS, STS) port (0 = ephemeral).")
    var awsPort: Int = 0

    @Option(name: .customLong("kube-port"), help: "Kubernetes API server (HTTPS) port (0 = ephemeral).")
    var kubePort: Int = 0

    @Option(
        name: .customLong("kube-ca-out"),
        help: "Where to write the Kubernetes API server's CA certificate (PEM); default: a file in a new temporary directory."
    )
    var kubeCAOut: String?

    @Option(
        name: .customLong("advertise-kube"),
        help: ArgumentHelp(
            "The API server's URL as clients reach it (https://HOST[:PORT], e.g. through a VM's port forward): what DescribeCluster reports; HOST joins the certificate's names. Overrides kubeAPI.advertiseEndpoint.",
            valueName: "url"))
    var advertiseKube: String?

    func validate() throws {
        for (name, port) in [("--imds-port", imdsPort), ("--aws-port", awsPort), ("--kube-port", kubePort)]
        where !(0...65535).contains(port) {
            throw ValidationError("\(name) \(port) is not a port number (0-65535)")
        }
        if let kubeCAOut, kubeCAOut.isEmpty { throw ValidationError("--kube-ca-out needs a file path") }
    }

    func run() async throws {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = .info
            return handler
        }
        let logger = Logger(label: "nodeboot.testbed")
        let configuration: TestbedConfiguration
        do {
            var loaded = try config.map(TestbedConfiguration.load(from:)) ?? .default
            if let advertiseKube { loaded.kubeAPI.advertiseEndpoint = advertiseKube }
            configuration = loaded
        } catch {
            FileHandle.standardError.write(Data("nodeboot-testbed: \(error)\n".utf8))
            throw ExitCode(2)
        }
        let testbed: Testbed
        do {
            testbed = try await Testbed.start(
                configuration, host: host, imdsPort: imdsPort, awsPort: awsPort, kubePort: kubePort, logger: logger)
        } catch let error as TestbedError where error.code == .configuration {
            FileHandle.standardError.write(Data("nodeboot-testbed: \(error)\n".utf8))
            throw ExitCode(2)
        } catch {
            FileHandle.standardError.write(Data("nodeboot-testbed: \(error)\n".utf8))
            throw ExitCode(1)
        }
        let caFile: KubeCAFile
        do {
            caFile = try KubeCAFile.write(testbed.kubeCACertificatePEM, to: kubeCAOut)
        } catch {
            FileHandle.standardError.write(Data("nodeboot-testbed: \(error)\n".utf8))
            try await testbed.shutdown()
            throw ExitCode(1)
        }
        var lines = [
            "imds: \(testbed.imdsEndpoint)",
            "aws: \(testbed.awsEndpoint)",
            "kube: \(testbed.kubeEndpoint)",
            "kube-ca: \(caFile.path)",
        ]
        if testbed.advertisedKubeEndpoint != testbed.kubeEndpoint {
            lines.append("kube-advertised: \(testbed.advertisedKubeEndpoint)")
        }
        for (name, value) in testbed.environment.sorted(by: { $0.key < $1.key }) {
            lines.append("export \(name)=\(value)")
        }
        // FileHandle writes are unbuffered: a reader of the pipe sees the lines at once.
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))

        let signal = await Signals.wait(for: [SIGINT, SIGTERM])
        logger.info("testbed stopping on signal \(signal)")
        try await testbed.shutdown()
        caFile.removeTemporaryDirectory()
    }
}

/// The CA certificate written for kubeconfigs: at the path given, or in a new temporary
/// directory that is removed again when the testbed stops.
struct KubeCAFile {
    var path: String
    var temporaryDirectory: URL?

    static func write(_ pem: String, to path: String?) throws -> KubeCAFile {
        var file = KubeCAFile(path: path ?? "", temporaryDirectory: nil)
        if path == nil {
            let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
                "nodeboot-testbed-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            file.temporaryDirectory = directory
            file.path = directory.appendingPathComponent("kube-ca.crt").path
        }
        do {
            try Data(pem.utf8).write(to: URL(fileURLWithPath: file.path), options: .atomic)
        } catch {
            throw TestbedError(
                .configuration, "--kube-ca-out \(file.path): cannot write the CA certificate: \(error.localizedDescription)")
        }
        return file
    }

    func removeTemporaryDirectory() {
        guard let temporaryDirectory else { return }
        // Best effort: a leftover certificate in a temporary directory is harmless.
        try? FileManager.default.removeItem(at: temporaryDirectory)
    }
}

/// Waits for the first of some signals, with their default action turned off.
enum Signals {
    static func wait(for signals: [Int32]) async -> Int32 {
        let (stream, continuation) = AsyncStream.makeStream(of: Int32.self)
        var sources: [any DispatchSourceSignal] = []
        for number in signals {
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { continuation.yield(number) }
            source.resume()
            sources.append(source)
        }
        var received: Int32 = 0
        for await number in stream {
            received = number
            break
        }
        for source in sources { source.cancel() }
        return received
    }
}
