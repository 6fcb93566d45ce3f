import TestSupport

/// Random damage to documents: byte flips, truncations, deletions, duplicated lines, and inserted indicators, tabs
/// and line breaks. Works on Unicode scalars so that the result is still a `String` (as user data is once decoded).
struct Mutator {
    var random: SeededGenerator

    private static let insertions: [String] = [
        ":", "[", "{", "\"", "'", "|", ">", "&", "*", "!", "-", "#", "\t", "\n", " ", "]", "}", ",", "?", "%", "@",
        "`", "\\", "- ", ": ", "&a ", "*a", "!!str ", "|-\n", ">+\n", "---\n", "...\n", "\r\n", "\u{FEFF}", "\u{85}",
        "\u{2028}", "\\u", "\\x", "\\U0001", "\u{1}", "é", "😀",
    ]

    init(seed: UInt64) { random = SeededGenerator(seed: seed) }

    /// `text` with one to four mutations.
    mutating func mutate(_ text: String) -> String {
        var scalars = Array(text.unicodeScalars)
        for _ in 0..<Int.random(in: 1...4, using: &random) {
            let position = scalars.isEmpty ? 0 : Int.random(in: 0..<scalars.count, using: &random)
            switch Int.random(in: 0..<8, using: &random) {
            case 0:
                // Flip a low bit of a scalar, keeping it a valid scalar.
                if !scalars.isEmpty {
                    let flipped = scalars[position].value ^ (1 << UInt32.random(in: 0..<7, using: &random))
                    scalars[position] = Unicode.Scalar(flipped) ?? "?"
                }
            case 1:
                scalars.removeSubrange(position...)
            case 2:
                let end = min(scalars.count, position + Int.random(in: 1...8, using: &random))
                scalars.removeSubrange(position..<end)
            case 3:
                // Duplicate the line around the position.
                let start = scalars[..<position].lastIndex(of: "\n").map { $0 + 1 } ?? 0
                let end = scalars[position...].firstIndex(of: "\n").map { $0 + 1 } ?? scalars.count
                scalars.insert(contentsOf: scalars[start..<end], at: start)
            case 4:
                // Change the indentation of the line around the position.
                let start = scalars[..<position].lastIndex(of: "\n").map { $0 + 1 } ?? 0
                if random.chance(50) {
                    scalars.insert(contentsOf: random.pick([" ", "  ", "\t"]).unicodeScalars, at: start)
                } else if start < scalars.count, scalars[start] == " " {
                    scalars.remove(at: start)
                }
            default:
                scalars.insert(contentsOf: random.pick(Self.insertions).unicodeScalars, at: position)
            }
        }
        var result = String.UnicodeScalarView()
        result.append(contentsOf: scalars)
        return String(result)
    }
}
