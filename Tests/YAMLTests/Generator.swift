import TestSupport

/// A random document tree, before it is written as text.
indirect enum Tree {
    case scalar(String)
    case sequence([Tree])
    case mapping([(String, Tree)])
}

/// Random trees and a YAML writer with many styles (block and flow collections, every scalar style, indentless
/// sequences, compact nesting, comments, anchors and aliases). The writer aims at valid YAML, but the tests only need
/// both readers to agree on whatever it writes.
struct DocumentGenerator {
    var random: SeededGenerator
    private var anchors: [String] = []
    private var anchorCount = 0

    init(seed: UInt64) { random = SeededGenerator(seed: seed) }

    // MARK: - Trees

    mutating func tree(depth: Int = 0) -> Tree {
        let roll = Int.random(in: 0..<100, using: &random)
        if depth >= 4 || (depth > 0 && roll < 40) { return .scalar(text()) }
        if roll < 70 {
            var keys = Set<String>()
            var pairs: [(String, Tree)] = []
            for _ in 0..<Int.random(in: 1...5, using: &random) {
                let key = self.key()
                if keys.insert(key).inserted { pairs.append((key, tree(depth: depth + 1))) }
            }
            return .mapping(pairs)
        }
        return .sequence((0..<Int.random(in: 1...4, using: &random)).map { _ in tree(depth: depth + 1) })
    }

    private static let words = [
        "name", "cluster", "maxPods", "value", "kubelet", "config", "a", "b", "x", "flags", "cidr", "node-labels",
        "10.100.0.0/16", "https://example.com", "true", "no", "42", "3.14", "null", "~", "0x1F", "1:30", "on", "",
    ]
    private static let unicode: [String] = [
        "é", "ß", "名前", "クラスター", "😀", "𝔘", "ключ", "\u{00A0}", "e\u{0301}", "中文", "🇫🇷", "Ω", "\u{2028}", "\u{85}",
    ]
    private static let punctuation: [String] = [
        ":", ": ", " #", "#", "-", "- ", "?", "'", "\"", "\\", ",", "[", "]", "{", "}", "&", "*", "!", "|", ">", "%",
        "@", "`", "\t", " ", "  ", "\n", "\n\n", "/", "=",
    ]

    /// A key: mostly identifiers, sometimes unicode or punctuation.
    mutating func key() -> String {
        switch Int.random(in: 0..<10, using: &random) {
        case 0: return random.pick(Self.unicode) + random.pick(Self.words)
        case 1: return random.pick(Self.words) + random.pick([" ", "-", ".", "/", ":", "_"]) + random.pick(Self.words)
        default:
            let word = random.pick(Self.words)
            return word.isEmpty ? "k" : word
        }
    }

    /// A scalar's text: words, unicode and punctuation.
    mutating func text() -> String {
        var text = ""
        for _ in 0..<Int.random(in: 0...5, using: &random) {
            switch Int.random(in: 0..<10, using: &random) {
            case 0...4: text += random.pick(Self.words)
            case 5, 6: text += " "
            case 7: text += random.pick(Self.unicode)
            default: text += random.pick(Self.punctuation)
            }
        }
        return text
    }

    // MARK: - Writing

    /// The whole document.
    mutating func document(_ tree: Tree) -> String {
        anchors = []
        var out = ""
        if random.chance(10) { out += "# generated\n" }
        if random.chance(10) { out += random.pick(["---\n", "--- # start\n", "%YAML 1.2\n---\n"]) }
        let indent = random.pick([1, 2, 2, 4])
        switch tree {
        case .scalar(let text):
            out += scalar(text, inFlow: false, indent: 0) + "\n"
        case .sequence, .mapping:
            if random.chance(15) {
                out += flow(tree, indent: 0) + "\n"
            } else {
                block(tree, indent: 0, step: indent, into: &out)
            }
        }
        if random.chance(10) { out += random.pick(["...\n", "# end\n", "\n\n", "---\nsecond: document\n"]) }
        return out
    }

    private mutating func properties() -> String {
        if random.chance(6) {
            anchorCount += 1
            let name = "a\(anchorCount)"
            anchors.append(name)
            return "&\(name) "
        }
        if random.chance(3) { return random.pick(["!!str ", "!custom ", "!<tag:example.com,2000:x> "]) }
        return ""
    }

    private mutating func comment() -> String {
        random.chance(8) ? random.pick([" # comment", "  #: odd comment", "\t# tab comment"]) : ""
    }

    /// A block collection at `indent`, each line written whole.
    private mutating func block(_ tree: Tree, indent: Int, step: Int, into out: inout String) {
        let pad = String(repeating: " ", count: indent)
        switch tree {
        case .scalar(let text):
            out += pad + scalar(text, inFlow: false, indent: indent) + "\n"
        case .mapping(let pairs):
            for (key, item) in pairs {
                if random.chance(5) { out += pad + "# between\n" }
                out += pad + scalar(key, inFlow: false, indent: indent, isKey: true) + ":"
                self.value(item, indent: indent, step: step, inMapping: true, into: &out)
            }
        case .sequence(let items):
            for item in items {
                out += pad + "-"
                self.value(item, indent: indent, step: step, inMapping: false, into: &out)
            }
        }
    }

    /// What follows `key:` or `-`: a scalar or flow collection on the same line, or a block collection below (or,
    /// for `-`, compact on the same line).
    private mutating func value(_ tree: Tree, indent: Int, step: Int, inMapping: Bool, into out: inout String) {
        if !anchors.isEmpty && random.chance(5) {
            out += " *" + random.pick(anchors) + comment() + "\n"
            return
        }
        switch tree {
        case .scalar(let text):
            let written = scalar(text, inFlow: false, indent: indent)
            out += (written.isEmpty ? "" : " " + properties() + written) + comment() + "\n"
        case .mapping(let pairs) where !pairs.isEmpty:
            if random.chance(15) {
                out += " " + properties() + flow(tree, indent: indent + step) + comment() + "\n"
            } else if !inMapping && random.chance(50) {
                // Compact: `- key: value` with the rest aligned under the key.
                out += " "
                var nested = ""
                block(tree, indent: indent + 2, step: step, into: &nested)
                out += String(nested.dropFirst(indent + 2))
            } else {
                out += (random.chance(20) ? " " + properties().dropLast() : "") + comment() + "\n"
                block(tree, indent: indent + step, step: step, into: &out)
            }
        case .sequence(let items) where !items.isEmpty:
            if random.chance(15) {
                out += " " + properties() + flow(tree, indent: indent + step) + comment() + "\n"
            } else if !inMapping && random.chance(40) {
                // Compact: `- - item`.
                out += " "
                var nested = ""
                block(tree, indent: indent + 2, step: step, into: &nested)
                out += String(nested.dropFirst(indent + 2))
            } else {
                out += comment() + "\n"
                // A sequence under a key may sit at the key's own indentation.
                let nestedIndent = inMapping && random.chance(40) ? indent : indent + step
                block(tree, indent: nestedIndent, step: step, into: &out)
            }
        case .mapping, .sequence:
            out += " " + (random.chance(50) ? "{}" : "[]") + "\n"
        }
    }

    /// A flow collection, on one line or spread over several (with trailing commas).
    private mutating func flow(_ tree: Tree, indent: Int) -> String {
        let multiline = random.chance(20)
        let separator = multiline ? ",\n" + String(repeating: " ", count: indent + 1) : random.pick([", ", ",", " , "])
        switch tree {
        case .scalar(let text):
            return scalar(text, inFlow: true, indent: indent)
        case .sequence(let items):
            let body = items.map { flow($0, indent: indent + 1) }.joined(separator: separator)
            return "[" + body + (multiline && random.chance(50) ? ",\n" + String(repeating: " ", count: indent) : "") + "]"
        case .mapping(let pairs):
            let body = pairs.map {
                scalar($0.0, inFlow: true, indent: indent, isKey: true) + ": " + flow($0.1, indent: indent + 1)
            }
            .joined(separator: separator)
            return "{" + body + (multiline && random.chance(50) ? "," : "") + "}"
        }
    }

    /// A scalar in a style that can hold `text` (plain only when it looks safe; block styles outside flow and keys).
    private mutating func scalar(_ text: String, inFlow: Bool, indent: Int, isKey: Bool = false) -> String {
        var styles = ["single", "double", "double"]
        if Self.looksPlain(text) || random.chance(5) { styles += ["plain", "plain", "plain"] }
        if !inFlow && !isKey { styles += ["literal", "folded"] }
        switch random.pick(styles) {
        case "plain":
            return text
        case "single":
            return "'" + text.replacing("'", with: "''") + "'"
        case "literal", "folded":
            return blockScalar(text, literal: random.chance(50), indent: indent)
        default:
            return doubleQuoted(text)
        }
    }

    static func looksPlain(_ text: String) -> Bool {
        guard let first = text.unicodeScalars.first, let last = text.unicodeScalars.last else { return false }
        if "-?:,[]{}#&*!|>'\"%@` \t".unicodeScalars.contains(first) || last == " " || last == "\t" { return false }
        return !text.contains(": ") && !text.contains(" #") && !text.contains("\n") && !text.hasSuffix(":")
            && !text.contains(",") && !text.contains("[") && !text.contains("]") && !text.contains("{")
            && !text.contains("}") && !text.contains("\u{2028}") && !text.contains("\u{85}") && !text.contains("\t")
    }

    private mutating func doubleQuoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += random.pick(["\\n", "\\n", "\\\n" + "  \\n"])
            case "\t": out += random.pick(["\\t", "\t", "\\\t"])
            case " " where random.chance(10): out += "\\ "
            case "\u{85}": out += "\\N"
            case "\u{A0}": out += random.pick(["\\_", "\u{A0}"])
            case "\u{2028}": out += "\\L"
            default:
                if scalar.value > 0x7F && random.chance(30) {
                    let hex = String(scalar.value, radix: 16)
                    if scalar.value <= 0xFF {
                        out += "\\x" + String(repeating: "0", count: 2 - hex.count) + hex
                    } else if scalar.value <= 0xFFFF {
                        out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex.uppercased()
                    } else {
                        out += "\\U" + String(repeating: "0", count: 8 - hex.count) + hex
                    }
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    /// `|` or `>` with a chomping indicator that keeps the text's trailing line breaks, sometimes an indentation
    /// indicator, and the lines indented below.
    private mutating func blockScalar(_ text: String, literal: Bool, indent: Int) -> String {
        let trailing = text.reversed().prefix { $0 == "\n" }.count
        let chomping = trailing == 0 ? "-" : trailing == 1 ? random.pick(["", "+"]) : "+"
        let body = trailing == 0 ? text : String(text.dropLast(trailing))
        let explicit = random.chance(20) || body.hasPrefix(" ")
        let step = explicit ? Int.random(in: 1...3, using: &random) : 2
        let pad = String(repeating: " ", count: max(indent, 0) + step)
        var out = (literal ? "|" : ">") + (explicit ? "\(step)" : "") + chomping + comment()
        for line in body.split(separator: "\n", omittingEmptySubsequences: false) {
            out += "\n" + (line.isEmpty ? "" : pad + line)
        }
        for _ in 0..<max(trailing - 1, 0) { out += "\n" }
        return out
    }
}
