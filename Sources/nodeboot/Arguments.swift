import Support

/// nodeboot's command line: each command is a table of options, parsed without reflection.
/// ArgumentParser built every command from Mirror reflection and dynamic casts, and each cast
/// scans the ~30,000 protocol conformances of the static binary: 2–2.5 ms of every run, a
/// sixth of `init` (perf, issue 11). The help and usage-error texts keep ArgumentParser's shape.

/// One option: `--long VALUE` (or `--long=VALUE`, `-s VALUE`), or a flag when `value` is nil.
struct Option: Sendable {
    var long: String
    var short: Character?
    /// The value's placeholder in help (`<uri>`); nil for a flag.
    var value: String?
    var help: String
    var hidden = false

    static func flag(_ long: String, _ help: String, hidden: Bool = false) -> Option {
        Option(long: long, short: nil, value: nil, help: help, hidden: hidden)
    }

    static func value(_ long: String, short: Character? = nil, _ placeholder: String, _ help: String) -> Option {
        Option(long: long, short: short, value: placeholder, help: help)
    }

    var synopsis: String {
        let names = (short.map { "-\($0), " } ?? "") + "--\(long)"
        return value.map { "\(names) <\($0)>" } ?? names
    }
}

/// A command (`init`, `config check`) or a group of commands (`nodeboot`, `config`).
struct Command: Sendable {
    var name: String
    var abstract: String
    var discussion: String?
    var options: [Option] = []
    var subcommands: [Command] = []
    /// Names from the root, for usage lines (`nodeboot config check`).
    var path: [String] = []

    init(
        _ name: String, abstract: String, discussion: String? = nil, options: [Option] = [],
        subcommands: [Command] = []
    ) {
        self.name = name
        self.abstract = abstract
        self.discussion = discussion
        self.options = options
        self.subcommands = subcommands
        self.path = [name]
        func rooted(_ command: Command, under path: [String]) -> Command {
            var command = command
            command.path = path + [command.name]
            command.subcommands = command.subcommands.map { rooted($0, under: command.path) }
            return command
        }
        self.subcommands = subcommands.map { rooted($0, under: [name]) }
    }

    var fullName: String { path.joined(separator: " ") }

    func option(named name: String) -> Option? {
        options.first { $0.long == name }
    }
}

/// What the command line asks for.
enum Invocation {
    case help(Command)
    case run(Command, Arguments)
}

/// A command line that does not parse: printed with the command's usage, exit status 2.
struct UsageError: Error {
    var message: String
    var command: Command

    var text: String {
        "Error: \(message)\nUsage: \(command.fullName) \(command.subcommands.isEmpty ? "<options>" : "<subcommand>")\n"
            + "  See '\(command.fullName) --help' for more information.\n"
    }
}

/// The parsed options of one command, read by long name.
struct Arguments {
    let command: Command
    private(set) var values: [String: [String]] = [:]

    init(command: Command) { self.command = command }

    mutating func add(_ option: Option, _ value: String) {
        values[option.long, default: []].append(value)
    }

    func flag(_ name: String) -> Bool { values[name] != nil }

    /// The last value given (an option given twice: the later wins, as in ArgumentParser).
    func string(_ name: String) -> String? { values[name]?.last }

    func strings(_ name: String) -> [String] { values[name] ?? [] }

    /// One of `T`'s raw values.
    func choice<T: RawRepresentable & CaseIterable>(_ name: String, default value: T) throws(UsageError) -> T
    where T.RawValue == String {
        guard let given = string(name) else { return value }
        guard let chosen = T(rawValue: given) else {
            let allowed = T.allCases.map { "'\($0.rawValue)'" }
            let list = allowed.dropLast().joined(separator: ", ") + " and " + (allowed.last ?? "")
            throw UsageError(
                message: "The value '\(given)' is invalid for '\(placeholder(name))': use one of \(list)",
                command: command)
        }
        return chosen
    }

    /// Seconds in (0, 3600].
    func seconds(_ name: String, default value: Double) throws(UsageError) -> Double {
        guard let given = string(name) else { return value }
        guard let seconds = Double(given), seconds > 0, seconds <= 3600 else {
            throw UsageError(
                message: "--\(name) must be between 0 and 3600 seconds, not \(given)", command: command)
        }
        return seconds
    }

    /// A value that must be given.
    func required(_ name: String) throws(UsageError) -> String {
        guard let value = string(name) else {
            throw UsageError(message: "Missing expected argument '\(placeholder(name))'", command: command)
        }
        return value
    }

    private func placeholder(_ name: String) -> String {
        command.option(named: name).map { "--\($0.long) <\($0.value ?? $0.long)>" } ?? "--\(name)"
    }
}

extension Command {
    /// Parses `arguments` (without the program name) against this command tree.
    func parse(_ arguments: [String]) throws(UsageError) -> Invocation {
        var command = self
        var rest = arguments[...]
        while !command.subcommands.isEmpty {
            guard let word = rest.first else { return .help(command) }
            if word == "-h" || word == "--help" || word == "help" { return .help(command) }
            guard let next = command.subcommands.first(where: { $0.name == word }) else {
                let message = word.hasPrefix("-") ? "Unknown option '\(word)'" : "Unexpected argument '\(word)'"
                throw UsageError(message: message, command: command)
            }
            command = next
            rest = rest.dropFirst()
        }
        var parsed = Arguments(command: command)
        while let word = rest.popFirst() {
            if word == "-h" || word == "--help" { return .help(command) }
            let name: Substring
            var inline: String?
            if word.hasPrefix("--") {
                let body = word.dropFirst(2)
                if let equals = body.firstIndex(of: "=") {
                    name = body[..<equals]
                    inline = String(body[body.index(after: equals)...])
                } else {
                    name = body
                }
            } else if word.hasPrefix("-") && word.count >= 2 {
                let letter = word[word.index(after: word.startIndex)]
                guard let option = command.options.first(where: { $0.short == letter }) else {
                    throw UsageError(message: "Unknown option '\(word)'", command: command)
                }
                name = Substring(option.long)
                let attached = word.dropFirst(2)
                if !attached.isEmpty { inline = String(attached.hasPrefix("=") ? attached.dropFirst() : attached) }
            } else {
                throw UsageError(message: "Unexpected argument '\(word)'", command: command)
            }
            guard let option = command.option(named: String(name)) else {
                throw UsageError(message: "Unknown option '\(word)'", command: command)
            }
            if option.value == nil {
                guard inline == nil else {
                    throw UsageError(message: "The flag '--\(option.long)' does not take a value", command: command)
                }
                parsed.add(option, "")
            } else if let inline {
                parsed.add(option, inline)
            } else {
                guard let value = rest.popFirst(), !value.hasPrefix("-") || value == "-" else {
                    throw UsageError(message: "Missing value for '\(option.synopsis)'", command: command)
                }
                parsed.add(option, value)
            }
        }
        return .run(command, parsed)
    }

    /// The help text: overview, usage, options (and subcommands of a group).
    var help: String {
        var text = "OVERVIEW: \(abstract)\n\n"
        if let discussion { text += discussion + "\n\n" }
        let column = 26
        func row(_ left: String, _ right: String) -> String {
            let start = "  " + left
            return start.count < column - 1
                ? start.padded(to: column) + right + "\n"
                : start + "\n" + String(repeating: " ", count: column) + right + "\n"
        }
        if subcommands.isEmpty {
            text += "USAGE: \(fullName) <options>\n\nOPTIONS:\n"
            for option in options where !option.hidden { text += row(option.synopsis, option.help) }
            text += row("-h, --help", "Show help information.")
        } else {
            text += "USAGE: \(fullName) <subcommand>\n\nOPTIONS:\n"
            if path.count == 1 { text += row("--version", "Show the version.") }
            text += row("-h, --help", "Show help information.") + "\nSUBCOMMANDS:\n"
            for subcommand in subcommands { text += row(subcommand.name, subcommand.abstract) }
            text += "\n  See '\(fullName) <subcommand> --help' for detailed help.\n"
        }
        return text
    }
}
