import AWS
import ArgumentParser
import Bootstrap
import FoundationEssentials
import NodeConfig
import NodeRender
import Support

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check or print the NodeConfig the config sources give.", subcommands: [Check.self, Dump.self])

    /// Loads and merges the sources (user data from IMDS when asked), collecting every problem.
    static func load(_ source: SourceOptions) async throws -> (LocatedConfig, NodeConfigValidation.Result, [String]) {
        let session: AWSSession
        do {
            session = try AWSSession(environment: ProcessInfo.processInfo.environment)
        } catch {
            throw Failure(NodeBootError(.input, "\(error)"))
        }
        let chain = ConfigChain(sources: try source.sources(), imds: session.imds)
        let loaded: ConfigChain.Result
        do {
            loaded = try await chain.load()
        } catch {
            await session.shutdown()
            throw Failure(error)
        }
        await session.shutdown()
        var problems = loaded.diagnostics
        guard let located = loaded.config else {
            if problems.contains(where: { $0.severity == .error }) { throw report(problems, strict: source.strict) }
            let why = loaded.notes.isEmpty ? "" : " (\(loaded.notes.joined(separator: "; ")))"
            throw Failure(NodeBootError(.input, "no NodeConfig in any config source\(why)"))
        }
        let validation = NodeConfigValidation.validate(located)
        problems += validation.diagnostics
        if problems.contains(where: { $0.severity == .error || source.strict }) {
            throw report(problems, strict: source.strict)
        }
        if !located.config.spec.kubelet.maxPodsExpression.isEmpty {
            do {
                _ = try MaxPodsExpression(located.config.spec.kubelet.maxPodsExpression)
            } catch {
                let place = located.location(of: "spec.kubelet.maxPodsExpression")
                throw Failure(NodeBootError(.input, "\(place): spec.kubelet.maxPodsExpression: \(error)"))
            }
        }
        return (located, validation, problems.map { "warning: \($0)" } + loaded.notes.map { "note: \($0)" })
    }

    static func report(_ problems: [ConfigDiagnostic], strict: Bool) -> Failure {
        Failure(ConfigChain.failure(problems, strict: strict) ?? NodeBootError(.internal, "no problem to report"))
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Decode, merge and validate the config sources; exit 0 or print every problem.")

        @OptionGroup var source: SourceOptions

        func run() async throws {
            let (_, validation, messages) = try await Config.load(source)
            for message in messages { StandardStreams.error("\(message)\n") }
            if !validation.missingClusterFields.isEmpty {
                StandardStreams.error(
                    "note: spec.cluster.\(validation.missingClusterFields.joined(separator: ", ")) not given: init reads them with one DescribeCluster\n"
                )
            }
            print("Configuration is valid")
        }
    }

    struct Dump: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print the merged NodeConfig (JSON or YAML).")

        enum Format: String, ExpressibleByArgument { case json, yaml }

        @OptionGroup var source: SourceOptions

        @Option(name: .shortAndLong, help: "json or yaml.")
        var output: Format = .json

        func run() async throws {
            let (located, _, messages) = try await Config.load(source)
            for message in messages { StandardStreams.error("\(message)\n") }
            let json = JSONText.object([
                ("apiVersion", .string(NodeConfig.apiVersion)), ("kind", .string(NodeConfig.kind)),
                ("spec", ConfigCache.specJSON(located.config.spec)),
            ])
            print(output == .json ? json.rendered(indent: 2) : YAMLText.render(json))
        }
    }
}

/// JSON as block YAML (strings always double-quoted, so nothing is re-typed).
enum YAMLText {
    static func render(_ value: JSONText, indent: Int = 0) -> String {
        var out = ""
        write(value, indent: indent, into: &out)
        return out.hasSuffix("\n") ? String(out.dropLast()) : out
    }

    static func write(_ value: JSONText, indent: Int, into out: inout String) {
        let pad = String(repeating: "  ", count: indent)
        switch value {
        case .object(let members):
            for (key, member) in members {
                switch member {
                case .object(let inner) where !inner.isEmpty:
                    out += "\(pad)\(key):\n"
                    write(member, indent: indent + 1, into: &out)
                case .array(let items) where !items.isEmpty:
                    out += "\(pad)\(key):\n"
                    write(member, indent: indent + 1, into: &out)
                default:
                    out += "\(pad)\(key): \(member.rendered(indent: 0))\n"
                }
            }
        case .array(let items):
            for item in items {
                switch item {
                case .object(let inner) where !inner.isEmpty:
                    var nested = ""
                    write(item, indent: indent + 1, into: &nested)
                    out += "\(pad)- " + nested.dropFirst(pad.count + 2)
                default:
                    out += "\(pad)- \(item.rendered(indent: 0))\n"
                }
            }
        default:
            out += "\(pad)\(value.rendered(indent: 0))\n"
        }
    }
}
