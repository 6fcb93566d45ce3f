import AWS
import ArgumentParser
import Bootstrap
import FoundationEssentials
import Support

#if canImport(Glibc)
    import Glibc
#endif

@main
struct NodeBoot: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nodeboot",
        abstract: "Bootstrap an EC2 instance into an Amazon EKS node.",
        version: version,
        subcommands: [Init.self, Config.self, Token.self, Facts.self, Status.self])

    /// The agent's version (`nodeboot --version`).
    static let version = "0.11.0"
}

enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json
}

/// Options every command that talks to IMDS shares.
struct IMDSOptions: ParsableArguments {
    @Option(help: "Seconds to keep retrying the instance metadata service before giving up.")
    var imdsTimeout: Double = 60

    func validate() throws {
        guard imdsTimeout > 0, imdsTimeout <= 3600 else {
            throw ValidationError("--imds-timeout must be between 0 and 3600 seconds, not \(imdsTimeout)")
        }
    }

    var deadline: Duration { .milliseconds(Int64(imdsTimeout * 1000)) }
}

struct Facts: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "facts",
        abstract: "Discover and print what the agent sees on this instance (never secrets).")

    @Option(name: .shortAndLong, help: "Output format: text or json.")
    var output: OutputFormat = .text

    @OptionGroup var imds: IMDSOptions

    func run() async throws {
        let report: NodeFactsReport
        do {
            report = try await NodeFacts.gather(
                environment: ProcessInfo.processInfo.environment, imdsDeadline: imds.deadline)
        } catch {
            throw Failure(error)
        }
        print(output == .json ? NodeFacts.json(report) : NodeFacts.text(report), terminator: "")
        if !report.errors.isEmpty { throw ExitCode(1) }
    }
}

/// A `NodeBootError` on its way out: printed on stderr, exit status from its code.
struct Failure: Error {
    var error: NodeBootError
    init(_ error: NodeBootError) { self.error = error }
}

extension NodeBoot {
    /// Entry point: maps `Failure` to its message and exit status; the rest is ArgumentParser's.
    static func main() async {
        do {
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
            var command: any ParsableCommand
            do {
                command =
                    invokedAs == "aws-iam-authenticator"
                    ? try AuthenticatorCompatibility.parseAsRoot(arguments) : try parseAsRoot(arguments)
            } catch {
                if invokedAs == "aws-iam-authenticator" {
                    if AuthenticatorCompatibility.exitCode(for: error) == .validationFailure {
                        StandardStreams.error(AuthenticatorCompatibility.fullMessage(for: error) + "\n")
                        Glibc.exit(NodeBootError.Code.input.exitStatus)
                    }
                    AuthenticatorCompatibility.exit(withError: error)
                }
                throw error
            }
            if var command = command as? any AsyncParsableCommand {
                try await command.run()
            } else {
                try command.run()
            }
        } catch let failure as Failure {
            StandardStreams.error("nodeboot: error: \(failure.error)\n")
            Glibc.exit(failure.error.code.exitStatus)
        } catch {
            // A usage error is bad input: exit 2 (DESIGN), not ArgumentParser's 64.
            if exitCode(for: error) == .validationFailure {
                StandardStreams.error(fullMessage(for: error) + "\n")
                Glibc.exit(NodeBootError.Code.input.exitStatus)
            }
            exit(withError: error)
        }
    }
}
