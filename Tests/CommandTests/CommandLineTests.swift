import Foundation
import TestSupport
import Testing

/// The agent's own command-line parser (no ArgumentParser): help, the option forms operators
/// and nodeadm's scripts use, and usage errors with exit status 2.
@Suite("nodeboot command line")
struct CommandLineTests {
    static func nodeboot(_ arguments: [String]) async throws -> ChildProcess.Result {
        try await ConfigCommandTests.nodeboot(arguments)
    }

    @Test("--help of every command lists each of its options; --version prints the version")
    func help() async throws {
        let expected: [[String]: [String]] = [
            []: ["init", "config", "token", "facts", "status", "--version"],
            ["init"]: [
                "-c, --config-source <uri>", "--strict", "--root <root>", "-s, --skip <skip>", "-d, --daemon <daemon>",
                "--config-cache", "--dry-run", "--token-helper", "-o, --output <output>", "--register-node",
                "--wait-ready", "--unit-timeout", "--register-timeout", "--imds-timeout",
            ],
            ["config"]: ["check", "dump"],
            ["config", "check"]: ["--config-source", "--strict", "--root", "--imds-timeout"],
            ["config", "dump"]: ["--config-source", "-o, --output"],
            ["token"]: ["--cluster-name", "--region", "--role-arn", "--session-name"],
            ["facts"]: ["--output", "--imds-timeout"],
            ["status"]: ["--output", "--root"],
        ]
        for (command, names) in expected {
            let result = try await Self.nodeboot(command + ["--help"])
            #expect(result.status == 0, "\(command)")
            #expect(result.stdout.hasPrefix("OVERVIEW: "), "\(command)")
            for name in names { #expect(result.stdout.contains(name), "\(command) --help lacks \(name)") }
            #expect(!result.stdout.contains("no-daemons"), "a hidden option is not listed")
        }
        let version = try await Self.nodeboot(["--version"])
        #expect(version.status == 0)
        #expect(version.stdout.range(of: #"^\d+\.\d+\.\d+\n$"#, options: .regularExpression) != nil)
    }

    @Test("usage errors name the option and the command's help, exit 2, nothing on stdout")
    func usageErrors() async throws {
        let cases: [([String], String)] = [
            (["init", "--bogus"], "Unknown option '--bogus'"),
            (["init", "-x"], "Unknown option '-x'"),
            (["init", "stray"], "Unexpected argument 'stray'"),
            (["init", "--root"], "Missing value for '--root <root>'"),
            (["init", "--dry-run=yes"], "The flag '--dry-run' does not take a value"),
            (["init", "--output", "yaml"], "The value 'yaml' is invalid for '--output <output>'"),
            (["init", "--unit-timeout", "0"], "--unit-timeout must be between 0 and 3600 seconds, not 0"),
            (["facts", "--imds-timeout", "soon"], "--imds-timeout must be between 0 and 3600 seconds, not soon"),
            (["token"], "Missing expected argument '--cluster-name <cluster-name>'"),
            (["frobnicate"], "Unexpected argument 'frobnicate'"),
        ]
        for (arguments, message) in cases {
            let result = try await Self.nodeboot(arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stderr.contains(message), "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains("See 'nodeboot"), "\(arguments)")
            #expect(result.stdout.isEmpty, "\(arguments)")
        }
    }

    @Test("option forms: --name=value, -o value, -ovalue, repeated options in order, --daemon= for none")
    func forms() async throws {
        let directory = try ConfigCommandTests.directory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let base = try ConfigCommandTests.write(ConfigCommandTests.rich, directory + "/a.yaml")
        let overlay = try ConfigCommandTests.write(
            """
            apiVersion: node.eks.aws/v1alpha1
            kind: NodeConfig
            spec:
              kubelet:
                config:
                  maxPods: 99
            """, directory + "/b.yaml")
        let reference = try await Self.nodeboot(["config", "dump", "-c", base, "-c", overlay, "--output", "yaml"])
        #expect(reference.status == 0, "\(reference.stderr)")
        for arguments in [
            ["--config-source=\(base)", "--config-source=\(overlay)", "--output=yaml"],
            ["-c", base, "-c", overlay, "-o", "yaml"], ["-c\(base)", "-c\(overlay)", "-oyaml"],
            ["-c", base, "-c", overlay, "-o", "json", "-o", "yaml"],
        ] {
            let result = try await Self.nodeboot(["config", "dump"] + arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            #expect(result.stdout == reference.stdout, "\(arguments)")
        }
        // The order of -c is the merge order: the other way round is a different config.
        let reversed = try await Self.nodeboot(["config", "dump", "-c", overlay, "-c", base, "-o", "yaml"])
        #expect(reference.stdout.contains("maxPods: 99"))
        #expect(reversed.stdout.contains("maxPods: 58"))
        // init: each form reaches the command's own checks (the option was parsed, not refused).
        for arguments in [["--skip=bogus"], ["-sbogus"], ["-s", "bogus"], ["--daemon=", "--skip", "bogus"]] {
            let result = try await Self.nodeboot(["init", "-c", base, "--root", directory] + arguments)
            #expect(result.status == 2, "\(arguments)")
            #expect(result.stderr.contains("--skip bogus: not a phase"), "\(arguments): \(result.stderr)")
        }
    }
}
