import YAML
import Yams

/// What Yams (libyaml) makes of a text, in `YAML`'s terms, and how the two readers' results compare.
enum Reference {
    /// The outcome of reading a text: the first document (or none), or an error's mark and words.
    enum Outcome: Equatable, CustomStringConvertible {
        case document(YAMLNode?)
        case failure(YAMLMark, String)

        var description: String {
            switch self {
            case .document(let node?): "document \(Reference.dump(node))"
            case .document(nil): "no document"
            case .failure(let mark, let message): "error at \(mark): \(message)"
            }
        }

        var isFailure: Bool {
            if case .failure = self { return true }
            return false
        }

        var mark: YAMLMark? {
            if case .failure(let mark, _) = self { return mark }
            return nil
        }
    }

    /// The first document as `YAML.compose` reads it.
    static func ours(_ text: String) -> Outcome {
        do {
            return .document(try YAML.compose(text))
        } catch {
            return .failure(error.mark, error.message)
        }
    }

    /// The first document as Yams reads it (`Parser.nextRoot`, which like `YAML.compose` ignores later documents).
    static func yams(_ text: String) -> Outcome {
        do {
            let parser = try Yams.Parser(yaml: text)
            return .document(try parser.nextRoot().map { convert($0, text: text) })
        } catch let error as YamlError {
            switch error {
            case .scanner(let context, let problem, let mark, _), .parser(let context, let problem, let mark, _),
                .composer(let context, let problem, let mark, _):
                let words = (context.map { "\($0.text) at \($0.mark): " } ?? "") + problem
                return .failure(YAMLMark(line: mark.line, column: mark.column), words)
            case .duplicatedKeysInMapping(let duplicates, let context):
                return .failure(
                    YAMLMark(line: context.mark.line, column: context.mark.column), "duplicated keys \(duplicates)")
            case .reader(let problem, let offset, _, _):
                return .failure(mark(ofCharacter: offset ?? 0, in: text), problem)
            default:
                return .failure(YAMLMark(line: 0, column: 0), "\(error)")
            }
        } catch {
            return .failure(YAMLMark(line: 0, column: 0), "\(error)")
        }
    }

    /// The mark of the `offset`th `Character` (Yams' reader errors count characters, libyaml's marks scalars).
    static func mark(ofCharacter offset: Int, in text: String) -> YAMLMark {
        var line = 1
        var column = 1
        for character in text.prefix(offset) {
            if character.isNewline {
                line += 1
                column = 1
            } else {
                column += character.unicodeScalars.count
            }
        }
        return YAMLMark(line: line, column: column)
    }

    /// A Yams node as a `YAMLNode`: same kinds, texts, styles and marks. A plain scalar tagged `!!str` is
    /// `.doubleQuoted`, as `YAML.compose` makes it.
    static func convert(_ node: Yams.Node, text: String, isKey: Bool = false) -> YAMLNode {
        let mark = node.mark.map { YAMLMark(line: $0.line, column: $0.column) } ?? YAMLMark(line: 0, column: 0)
        switch node {
        case .scalar(let scalar):
            let style: YAMLScalar.Style
            switch scalar.style {
            case .any, .plain:
                // Yams resolves the tags of keys when it checks for duplicates (and so of anchored nodes used in
                // keys too), so an untagged key may end up `str` as well: the text must show the tag. An empty value
                // may start where a `!!str` belonging to the next key is written: its tag must be `str` too.
                let tagged =
                    taggedString(at: mark, in: text)
                    && (isKey || scalar.tag.description == "tag:yaml.org,2002:str")
                style = tagged ? .doubleQuoted : .plain
            case .singleQuoted: style = .singleQuoted
            case .doubleQuoted: style = .doubleQuoted
            case .literal: style = .literal
            case .folded: style = .folded
            }
            return .scalar(YAMLScalar(string: scalar.string, style: style, mark: mark))
        case .mapping(let mapping):
            return .mapping(
                mapping.map { (convert($0.key, text: text, isKey: true), convert($0.value, text: text, isKey: isKey)) },
                mark)
        case .sequence(let sequence):
            return .sequence(sequence.map { convert($0, text: text, isKey: isKey) }, mark)
        case .alias:
            return .scalar(YAMLScalar(string: "<alias>", style: .plain, mark: mark))
        }
    }

    /// Whether the node at `mark` starts with a `!!str` tag (after an optional anchor).
    private static func taggedString(at mark: YAMLMark, in text: String) -> Bool {
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
        guard mark.line - 1 < lines.count else { return false }
        var rest = Substring(lines[mark.line - 1].unicodeScalars.dropFirst(mark.column - 1))
        if rest.hasPrefix("&") {
            rest = rest.drop { $0 != " " }.drop { $0 == " " }
        }
        for tag in ["!!str", "!<tag:yaml.org,2002:str>"] where rest.hasPrefix(tag) {
            let next = rest.dropFirst(tag.count).first
            return next == nil || next == " " || next == "\t" || next == ","
        }
        return false
    }

    /// A compact, deterministic rendering of a tree for failure messages.
    static func dump(_ node: YAMLNode) -> String {
        switch node {
        case .scalar(let scalar):
            return "\(scalar.style)\(scalar.mark)\(String(reflecting: scalar.string))"
        case .sequence(let items, let mark):
            return "seq\(mark)[" + items.map(dump).joined(separator: ", ") + "]"
        case .mapping(let pairs, let mark):
            return "map\(mark){" + pairs.map { dump($0.key) + ": " + dump($0.value) }.joined(separator: ", ") + "}"
        }
    }

    /// Where two trees first differ, or nil when they are equal.
    static func difference(_ ours: YAMLNode, _ theirs: YAMLNode, path: String = "$") -> String? {
        switch (ours, theirs) {
        case (.scalar(let left), .scalar(let right)):
            // Foundation's `String(bytes:encoding:)`, which Yams uses, drops a byte order mark that starts a value.
            let bomDropped = left.string.hasPrefix("\u{FEFF}") && String(left.string.dropFirst()) == right.string
            if left.string != right.string && !bomDropped {
                return "\(path): text \(String(reflecting: left.string)) vs \(String(reflecting: right.string))"
            }
            if left.style != right.style { return "\(path): style \(left.style) vs \(right.style)" }
            if left.mark != right.mark { return "\(path): mark \(left.mark) vs \(right.mark)" }
            return nil
        case (.sequence(let left, let leftMark), .sequence(let right, let rightMark)):
            if leftMark != rightMark { return "\(path): mark \(leftMark) vs \(rightMark)" }
            if left.count != right.count { return "\(path): \(left.count) items vs \(right.count)" }
            for (index, (item, other)) in zip(left, right).enumerated() {
                if let difference = difference(item, other, path: "\(path)[\(index)]") { return difference }
            }
            return nil
        case (.mapping(let left, let leftMark), .mapping(let right, let rightMark)):
            if leftMark != rightMark { return "\(path): mark \(leftMark) vs \(rightMark)" }
            if left.count != right.count { return "\(path): \(left.count) entries vs \(right.count)" }
            for (index, (pair, other)) in zip(left, right).enumerated() {
                let name = pair.key.string ?? "#\(index)"
                if let difference = difference(pair.key, other.key, path: "\(path).<key \(name)>") { return difference }
                if let difference = difference(pair.value, other.value, path: "\(path).\(name)") { return difference }
            }
            return nil
        default:
            return "\(path): \(dump(ours)) vs \(dump(theirs))"
        }
    }

    /// Why the two readers disagree on `text`, or nil when they agree (same tree, or errors at the same mark).
    static func disagreement(_ text: String, compareErrorMarks: Bool = true) -> String? {
        let mine = ours(text)
        let theirs = yams(text)
        switch (mine, theirs) {
        case (.document(let left?), .document(let right?)):
            return difference(left, right).map { "trees differ at \($0)" }
        case (.document(nil), .document(nil)):
            return nil
        case (.failure(let leftMark, _), .failure(let rightMark, _)):
            if !compareErrorMarks || leftMark == rightMark { return nil }
            return "error marks differ: ours \(mine), Yams \(theirs)"
        case (.document, .failure(_, let message)) where message.hasPrefix("duplicated keys") && text.contains("\u{FEFF}"):
            // Yams drops a byte order mark that starts a value, making `\u{FEFF}key` and `key` the same key.
            return nil
        default:
            return "ours: \(mine); Yams: \(theirs)"
        }
    }
}
