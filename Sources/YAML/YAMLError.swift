/// Why a YAML document could not be read, and where.
///
/// `description` reads like `line 4, column 3: mapping values are not allowed here; quote the value if it contains
/// ': '`. The mark is the one libyaml (and so Yams) reports for the same problem, except where `YAML.compose`
/// documents otherwise.
public struct YAMLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// Where the problem was found.
    public var mark: Mark
    /// What is wrong, in words a person can act on.
    public var message: String
    /// Where the construct at fault began, when that is not `mark` (the opening quote of an
    /// unterminated string, the key that lacks its ':'): the line a person should look at.
    public var context: Mark?

    /// An error at this mark.
    public init(mark: Mark, message: String, context: Mark? = nil) {
        self.mark = mark
        self.message = message
        self.context = context
    }

    /// `line L, column C: message`.
    public var description: String { "line \(mark.line), column \(mark.column): \(message)" }
}

/// A position while reading: byte offset, character index, and 0-based line and column (as `yaml_mark_t`).
struct Position: Sendable {
    /// UTF-8 offset into the input.
    var offset = 0
    /// Characters (Unicode scalars) read so far; a CR LF pair counts two.
    var index = 0
    /// 0-based line.
    var line = 0
    /// 0-based column in Unicode scalars.
    var column = 0

    /// The 1-based public mark.
    var mark: Mark { Mark(line: line + 1, column: column + 1) }

    /// `line L, column C`, for messages that point at a second place.
    var text: String { "line \(line + 1), column \(column + 1)" }
}

extension YAMLError {
    /// An error at an internal position.
    init(_ position: Position, _ message: String, context: Position? = nil) {
        self.init(mark: position.mark, message: message, context: context?.mark)
    }
}
