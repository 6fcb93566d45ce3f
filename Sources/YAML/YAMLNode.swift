/// A place in a YAML document: 1-based line and column, columns counted in Unicode scalars (as libyaml and Yams
/// count them).
public struct Mark: Sendable, Equatable, CustomStringConvertible {
    /// The 1-based line.
    public var line: Int
    /// The 1-based column, in Unicode scalars.
    public var column: Int

    /// A mark at this line and column (both 1-based).
    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }

    /// `line:column`.
    public var description: String { "\(line):\(column)" }
}

/// A scalar of a YAML document: its text after unescaping and folding, how it was written, and where.
public struct YAMLScalar: Sendable, Equatable {
    /// How a scalar was written. Only plain scalars are typed (`true`, `42`, `null`); the others are strings.
    public enum Style: Sendable {
        /// Unquoted: `value`.
        case plain
        /// `'value'`.
        case singleQuoted
        /// `"value"`, or a plain scalar tagged `!!str`.
        case doubleQuoted
        /// A `|` block.
        case literal
        /// A `>` block.
        case folded
    }

    /// The text, with escapes resolved and lines folded.
    public var string: String
    /// How it was written.
    public var style: Style
    /// Where its content starts: the first character, the opening quote, the `|` or `>` indicator, or the anchor or
    /// tag written before it.
    public var mark: Mark

    /// A scalar with this text, style and place.
    public init(string: String, style: Style, mark: Mark) {
        self.string = string
        self.style = style
        self.mark = mark
    }
}

/// A node of a composed YAML document. Aliases are already replaced by (copies of) the nodes they name.
///
/// Two nodes are equal when they have the same kind, scalar texts and styles, keys in the same order, and marks.
public indirect enum YAMLNode: Sendable, Equatable {
    /// A scalar.
    case scalar(YAMLScalar)
    /// A mapping, its entries in document order (duplicate keys are rejected by `YAML.compose`), and where its first
    /// key (or its `{`, anchor or tag) starts.
    case mapping([(key: YAMLNode, value: YAMLNode)], Mark)
    /// A sequence and where its first `-` (or its `[`, anchor or tag) starts.
    case sequence([YAMLNode], Mark)

    /// Where the node starts.
    public var mark: Mark {
        switch self {
        case .scalar(let scalar): scalar.mark
        case .mapping(_, let mark): mark
        case .sequence(_, let mark): mark
        }
    }

    /// The scalar's text; `nil` for a mapping or a sequence.
    public var string: String? {
        if case .scalar(let scalar) = self { return scalar.string }
        return nil
    }

    /// Kind, content, styles and marks all equal.
    public static func == (lhs: YAMLNode, rhs: YAMLNode) -> Bool {
        switch (lhs, rhs) {
        case (.scalar(let left), .scalar(let right)):
            return left == right
        case (.sequence(let left, let leftMark), .sequence(let right, let rightMark)):
            return leftMark == rightMark && left == right
        case (.mapping(let left, let leftMark), .mapping(let right, let rightMark)):
            guard leftMark == rightMark, left.count == right.count else { return false }
            for (leftPair, rightPair) in zip(left, right)
            where leftPair.key != rightPair.key || leftPair.value != rightPair.value {
                return false
            }
            return true
        default:
            return false
        }
    }
}
