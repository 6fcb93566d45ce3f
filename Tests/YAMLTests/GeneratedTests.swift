import TestSupport
import Testing
import YAML
import Yams

@Suite("Generated documents read the same with YAML.compose and Yams")
struct GeneratedTests {
    /// Documents whose texts both readers reject, by design, at different places: none may slip through unnoticed.
    static func check(_ text: String, _ label: String) -> Bool {
        let ours = Reference.ours(text)
        let theirs = Reference.yams(text)
        if let disagreement = Reference.disagreement(text) {
            // A duplicate key is reported where it repeats (Yams: where it first appears); both must still fail.
            let duplicate =
                ours.isFailure && theirs.isFailure
                && ({
                    if case .failure(_, let message) = ours { return message.hasPrefix("duplicate key") }
                    return false
                }())
            if !duplicate {
                Issue.record("\(label): \(disagreement)\n--- text:\n\(text)")
            }
        }
        return !ours.isFailure
    }

    @Test("600 documents from the test writer: same trees and marks, same errors")
    func writerDocuments() {
        var generator = DocumentGenerator(seed: 0x5EED_0001)
        var valid = 0
        let count = 600
        for index in 0..<count {
            let text = generator.document(generator.tree())
            if Self.check(text, "document \(index)") { valid += 1 }
        }
        // Most documents must be valid, or the trees are hardly compared.
        #expect(valid * 10 >= count * 6, "only \(valid) of \(count) generated documents are valid YAML")
    }

    @Test("400 random trees written by Yams (libyaml's emitter) in random styles read back the same")
    func yamsDumps() throws {
        var random = SeededGenerator(seed: 0x5EED_0002)
        var generator = DocumentGenerator(seed: 0x5EED_0003)
        for index in 0..<400 {
            let node = Self.yamsNode(generator.tree(), random: &random)
            let text = try Yams.serialize(
                node: node, indent: random.pick([0, 2, 4, 7]), width: random.pick([0, 20, 80, -1]),
                allowUnicode: random.chance(50), lineBreak: random.pick([.ln, .ln, .crln]),
                explicitStart: random.chance(30), explicitEnd: random.chance(20))
            #expect(Self.check(text, "dump \(index)"), "Yams wrote something it cannot read back:\n\(text)")
        }
    }

    @Test("200 random values written by Yams.dump read back the same")
    func yamsDumpValues() throws {
        var random = SeededGenerator(seed: 0x5EED_0004)
        var generator = DocumentGenerator(seed: 0x5EED_0005)
        for index in 0..<200 {
            let value = Self.anyValue(generator.tree(), random: &random)
            let text = try Yams.dump(object: value, allowUnicode: random.chance(50), sortKeys: random.chance(50))
            #expect(Self.check(text, "value \(index)"))
        }
    }

    /// A Yams node for a tree, each collection and scalar with a random requested style (libyaml's emitter falls back
    /// where a style cannot hold the text).
    static func yamsNode(_ tree: Tree, random: inout SeededGenerator) -> Yams.Node {
        switch tree {
        case .scalar(let text):
            let style: Yams.Node.Scalar.Style = random.pick([.any, .plain, .singleQuoted, .doubleQuoted, .literal, .folded])
            return .scalar(.init(text, .implicit, style))
        case .sequence(let items):
            let style: Yams.Node.Sequence.Style = random.pick([.any, .block, .flow])
            return .sequence(.init(items.map { yamsNode($0, random: &random) }, .implicit, style))
        case .mapping(let pairs):
            let style: Yams.Node.Mapping.Style = random.pick([.any, .block, .flow])
            return .mapping(
                .init(pairs.map { (Yams.Node.scalar(.init($0.0)), yamsNode($0.1, random: &random)) }, .implicit, style))
        }
    }

    /// A Swift value for a tree: dictionaries, arrays, strings, and numbers or booleans for some scalars.
    static func anyValue(_ tree: Tree, random: inout SeededGenerator) -> Any {
        switch tree {
        case .scalar(let text):
            switch Int.random(in: 0..<10, using: &random) {
            case 0: return Int.random(in: -1_000_000...1_000_000, using: &random)
            case 1: return Double.random(in: -1e6...1e6, using: &random)
            case 2: return random.chance(50)
            default: return text
            }
        case .sequence(let items):
            return items.map { anyValue($0, random: &random) }
        case .mapping(let pairs):
            var dictionary: [String: Any] = [:]
            for (key, value) in pairs { dictionary[key] = anyValue(value, random: &random) }
            return dictionary
        }
    }
}
