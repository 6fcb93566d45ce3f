import AWS
import Bootstrap
import FoundationEssentials
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// The agent's commands; each is a table of options (`Arguments.swift`) and a `run`.
@main
enum NodeBoot {
    /// The agent's version (`nodeboot --version`).
    static let version = "0.11.0"

    static let commands = Command(
        "nodeboot", abstract: "Bootstrap an EC2 instance into an Amazon EKS node.",
        subcommands: [
            Init.command, ConfigCommand.command, Token.command, Facts.command, Status.command, IPAMD.command,
            BootstrapSh.command, Reset.command,
        ])

    /// Maps `Failure` and usage errors to their message and exit status (DESIGN: 2 for bad input).
    static func main() async {
        let arguments = CommandLine.arguments.dropFirst().map { ["--daemon=", "-d="].contains($0) ? "--no-daemons" : $0 }
        // Invoked through a link named aws-iam-authenticator: that tool's command line.
        let invokedAs = CommandLine.arguments.first?.split(separator: "/").last.map(String.init) ?? ""
        if arguments == ["--version"] {
            StandardStreams.output(version + "\n")
            return
        }
        if let document = TokenCommand.fastPath(arguments, invokedAs: invokedAs) {
            StandardStreams.output(document)
            return
        }
        do {
            let root = invokedAs == "aws-iam-authenticator" ? AuthenticatorCompatibility.command : commands
            // bootstrap.sh's command line is not the table parser's (values starting with '-', a positional name).
            if invokedAs != "aws-iam-authenticator" && arguments.first == "bootstrap-sh" {
                return try await BootstrapSh.run(Array(arguments.dropFirst()))
            }
            switch try root.parse(arguments) {
            case .help(let command):
                StandardStreams.output(command.help)
            case .run(let command, let parsed):
                try await run(command, parsed)
            }
        } catch let failure as Failure {
            StandardStreams.error("nodeboot: error: \(failure.error)\n")
            exit(failure.error.code.exitStatus)
        } catch let usage as UsageError {
            StandardStreams.error(usage.text)
            exit(NodeBootError.Code.input.exitStatus)
        } catch let status as ExitStatus {
            exit(status.code)
        } catch {
            StandardStreams.error("nodeboot: error: \(error)\n")
            exit(1)
        }
    }

    static func run(_ command: Command, _ arguments: Arguments) async throws {
        switch command.fullName {
        case "nodeboot init": try await Init(arguments).run()
        case "nodeboot config check": try await ConfigCommand.check(arguments)
        case "nodeboot config dump": try await ConfigCommand.dump(arguments)
        case "nodeboot token": try await Token.run(arguments)
        case "aws-iam-authenticator token": try await AuthenticatorCompatibility.run(arguments)
        case "nodeboot facts": try await Facts.run(arguments)
        case "nodeboot status": try Status.run(arguments)
        case "nodeboot ipamd": try await IPAMD.run(arguments)
        case "nodeboot reset": try await Reset(arguments).run()
        default: throw UsageError(message: "Unexpected command '\(command.fullName)'", command: commands)
        }
    }
}

/// A command's exit status other than 0 without a message (the report said it all).
struct ExitStatus: Error {
    var code: Int32
}

enum OutputFormat: String, CaseIterable {
    case text, json

    static let option = Option.value("output", short: "o", "output", "Output format: text or json.")
}

/// Options every command that talks to IMDS shares.
enum IMDSOptions {
    static let options = [
        Option.value("imds-timeout", "imds-timeout", "Seconds to keep retrying the instance metadata service before giving up.")
    ]

    static func deadline(_ arguments: Arguments) throws(UsageError) -> Duration {
        .milliseconds(Int64(try arguments.seconds("imds-timeout", default: 60) * 1000))
    }
}

enum Facts {
    static let command = Command(
        "facts", abstract: "Discover and print what the agent sees on this instance (never secrets).",
        options: [OutputFormat.option] + IMDSOptions.options)

    static func run(_ arguments: Arguments) async throws {
        let output = try arguments.choice("output", default: OutputFormat.text)
        let deadline = try IMDSOptions.deadline(arguments)
        let report: NodeFactsReport
        do {
            report = try await NodeFacts.gather(environment: ProcessInfo.processInfo.environment, imdsDeadline: deadline)
        } catch {
            throw Failure(error)
        }
        StandardStreams.output(output == .json ? NodeFacts.json(report) : NodeFacts.text(report))
        if !report.errors.isEmpty { throw ExitStatus(code: 1) }
    }
}

/// A `NodeBootError` on its way out: printed on stderr, exit status from its code.
struct Failure: Error {
    var error: NodeBootError
    init(_ error: NodeBootError) { self.error = error }
}
