import ArgumentParser
import Bootstrap
import FoundationEssentials
import Support

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Check or print the NodeConfig the config sources give.", subcommands: [Check.self, Dump.self])

    static func check(_ source: SourceOptions, _ imds: IMDSOptions) async throws -> ConfigCheck.Result {
        let check = ConfigCheck(
            sources: try source.sources().nonEmpty ?? ConfigSource.default, strict: source.strict,
            environment: ProcessInfo.processInfo.environment, imdsDeadline: imds.deadline)
        do {
            let result = try await check.run()
            for message in result.messages { StandardStreams.error("\(message)\n") }
            return result
        } catch {
            throw Failure(error)
        }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Decode, merge and validate the config sources; exit 0 or print every problem.")

        @OptionGroup var source: SourceOptions

        @OptionGroup var imds: IMDSOptions

        func run() async throws {
            _ = try await Config.check(source, imds)
            print("Configuration is valid")
        }
    }

    struct Dump: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "dump", abstract: "Print the merged NodeConfig (JSON or YAML).")

        @OptionGroup var source: SourceOptions

        @OptionGroup var imds: IMDSOptions

        enum Format: String, ExpressibleByArgument { case json, yaml }

        @Option(name: .shortAndLong, help: "json or yaml.")
        var output: Format = .json

        func run() async throws {
            let result = try await Config.check(source, imds)
            print(ConfigCheck.dump(result.located, format: output == .json ? .json : .yaml))
        }
    }
}

extension Array {
    /// nil when empty: `-c` not given means the default sources.
    var nonEmpty: Self? { isEmpty ? nil : self }
}
