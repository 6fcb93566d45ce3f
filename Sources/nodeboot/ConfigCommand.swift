import Bootstrap
import FoundationEssentials
import Support

/// `nodeboot config check|dump`.
enum ConfigCommand {
    static let command = Command(
        "config", abstract: "Check or print the NodeConfig the config sources give.",
        subcommands: [
            Command(
                "check", abstract: "Decode, merge and validate the config sources; exit 0 or print every problem.",
                options: SourceOptions.options + IMDSOptions.options),
            Command(
                "dump", abstract: "Print the merged NodeConfig (JSON or YAML).",
                options: SourceOptions.options + IMDSOptions.options + [
                    .value("output", short: "o", "output", "json or yaml.")
                ]),
        ])

    enum DumpFormat: String, CaseIterable { case json, yaml }

    static func check(_ arguments: Arguments) async throws {
        _ = try await result(arguments)
        StandardStreams.output("Configuration is valid\n")
    }

    static func dump(_ arguments: Arguments) async throws {
        let format = try arguments.choice("output", default: DumpFormat.json)
        let result = try await result(arguments)
        StandardStreams.output(ConfigCheck.dump(result.located, format: format == .json ? .json : .yaml) + "\n")
    }

    static func result(_ arguments: Arguments) async throws -> ConfigCheck.Result {
        let check = ConfigCheck(
            sources: try SourceOptions.sources(arguments).nonEmpty ?? ConfigSource.default,
            strict: arguments.flag("strict"), environment: ProcessInfo.processInfo.environment,
            imdsDeadline: try IMDSOptions.deadline(arguments))
        do {
            let result = try await check.run()
            for message in result.messages { StandardStreams.error("\(message)\n") }
            return result
        } catch {
            throw Failure(error)
        }
    }
}

/// The `-c/--config-source`, `--strict` and `--root` options shared by init and config.
enum SourceOptions {
    static let options: [Option] = [
        .value(
            "config-source", short: "c", "uri",
            "Config source URI, repeatable, in order: imds://user-data (default) or file://PATH."),
        .flag("strict", "Treat warnings (unknown fields, a CA that is not PEM) as errors."),
        .value("root", "root", "Node root: every node path under this directory (paths given with -c are used as given)."),
    ]

    static func sources(_ arguments: Arguments) throws -> [ConfigSource] {
        do {
            return try arguments.strings("config-source").map { uri throws(NodeBootError) in try ConfigSource(uri: uri) }
        } catch {
            throw Failure(error)
        }
    }
}

extension Array {
    /// nil when empty: `-c` not given means the default sources.
    var nonEmpty: Self? { isEmpty ? nil : self }
}
