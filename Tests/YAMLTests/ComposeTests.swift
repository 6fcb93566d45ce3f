import Testing
import YAML

@Suite("YAML.compose: trees, marks, aliases, limits and deliberate differences from Yams")
struct ComposeTests {
    static func mark(_ line: Int, _ column: Int) -> YAMLMark { YAMLMark(line: line, column: column) }

    static func plain(_ text: String, _ line: Int, _ column: Int) -> YAMLNode {
        .scalar(YAMLScalar(string: text, style: .plain, mark: mark(line, column)))
    }

    @Test("a NodeConfig composes into mappings, sequences and scalars with their marks")
    func tree() throws {
        let text = """
            apiVersion: node.eks.aws/v1alpha1
            spec:
              flags:
              - --v=2
              script: |
                echo hi

            """
        let expected = YAMLNode.mapping(
            [
                (Self.plain("apiVersion", 1, 1), Self.plain("node.eks.aws/v1alpha1", 1, 13)),
                (
                    Self.plain("spec", 2, 1),
                    .mapping(
                        [
                            (Self.plain("flags", 3, 3), .sequence([Self.plain("--v=2", 4, 5)], Self.mark(4, 3))),
                            (
                                Self.plain("script", 5, 3),
                                .scalar(YAMLScalar(string: "echo hi\n", style: .literal, mark: Self.mark(5, 11)))
                            ),
                        ], Self.mark(3, 3))
                ),
            ], Self.mark(1, 1))
        #expect(try YAML.compose(text) == expected)
        #expect(expected.string == nil)
        #expect(expected.mark == Self.mark(1, 1))
    }

    @Test("no document gives nil; an explicit empty document is an empty plain scalar")
    func emptyDocuments() throws {
        #expect(try YAML.compose("") == nil)
        #expect(try YAML.compose("# only a comment\n\n") == nil)
        #expect(try YAML.compose("---\n") == Self.plain("", 2, 1))
    }

    @Test("only the first document is read; what follows is not looked at")
    func firstDocumentOnly() throws {
        let node = try YAML.compose("a: 1\n---\n[unclosed\n")
        #expect(node == .mapping([(Self.plain("a", 1, 1), Self.plain("1", 1, 4))], Self.mark(1, 1)))
    }

    @Test("an alias is a copy of the anchored node, with the anchored node's marks")
    func aliases() throws {
        let node = try #require(try YAML.compose("a: &x [1, 2]\nb: *x\n"))
        guard case .mapping(let pairs, _) = node else { throw Failure("not a mapping") }
        #expect(pairs[1].value == pairs[0].value)
        #expect(pairs[1].value.mark == Self.mark(1, 4))
    }

    @Test("a billion-laughs document is rejected, not expanded")
    func billionLaughs() throws {
        var text = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            text += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        let error = try #require(throws: YAMLError.self) { try YAML.compose(text) }
        #expect(error.message.contains("aliases expand to more than 100000 nodes"))
        #expect(error.mark.line <= 6)
    }

    @Test("nesting deeper than 512 is an error (libyaml allows about 1000)")
    func depth() throws {
        let ok = String(repeating: "[", count: 512) + String(repeating: "]", count: 512)
        #expect(try YAML.compose(ok) != nil)
        let deep = String(repeating: "[", count: 513) + String(repeating: "]", count: 513)
        let error = try #require(throws: YAMLError.self) { try YAML.compose(deep) }
        #expect(error.mark == Self.mark(1, 513))
        #expect(error.message.contains("more than 512 levels"))
        #expect(!Reference.yams(deep).isFailure, "Yams reads 513 levels")
        let block = (0..<600).map { String(repeating: " ", count: $0) + "k:\n" }.joined()
        #expect(throws: YAMLError.self) { try YAML.compose(block) }
    }

    @Test("aliases cannot nest past the depth limit either")
    func aliasDepth() throws {
        let inner = String(repeating: "[", count: 300) + String(repeating: "]", count: 300)
        let text = "a: &a " + inner + "\nb: " + String(repeating: "[", count: 300) + "*a" + String(repeating: "]", count: 300)
        let error = try #require(throws: YAMLError.self) { try YAML.compose(text) }
        #expect(error.message.contains("the alias *a nests"))
    }

    @Test("JSON surrogate pairs are one character (libyaml rejects them); a lone surrogate is an error")
    func surrogatePairs() throws {
        let json = #"{"emoji": "\ud83d\ude00!", "plain": "\u00e9"}"#
        let node = try #require(try YAML.compose(json))
        guard case .mapping(let pairs, _) = node else { throw Failure("not a mapping") }
        #expect(pairs[0].value.string == "😀!")
        #expect(pairs[1].value.string == "é")
        #expect(Reference.yams(json).isFailure, "libyaml rejects surrogate escapes")
        for lone in [#""\ud83d""#, #""\ude00""#, #""\ud83dx""#, #""\ud83d\u0041""#] {
            #expect(throws: YAMLError.self, "\(lone)") { try YAML.compose(lone) }
        }
    }

    @Test("a byte order mark at the start is skipped (and counted in the first line's columns, as libyaml does)")
    func byteOrderMark() throws {
        let node = try #require(try YAML.compose("\u{FEFF}a: 1\n"))
        #expect(node == .mapping([(Self.plain("a", 1, 2), Self.plain("1", 1, 5))], Self.mark(1, 2)))
        #expect(Reference.disagreement("\u{FEFF}a: 1\n") == nil)
    }

    @Test("CRLF line ends read as LF")
    func crlf() throws {
        let node = try #require(try YAML.compose("a: |\r\n  x\r\n  y\r\nb: \"p\r\n  q\"\r\n"))
        guard case .mapping(let pairs, _) = node else { throw Failure("not a mapping") }
        #expect(pairs.map(\.value.string) == ["x\ny\n", "p q"])
        #expect(pairs[1].key.mark == Self.mark(4, 1))
    }

    @Test("duplicate keys are errors at the repeated key; texts and tags decide, as in Yams")
    func duplicateKeys() throws {
        let error = try #require(throws: YAMLError.self) { try YAML.compose("a: 1\nb: 2\n'a': 3\n") }
        #expect(error.mark == Self.mark(3, 1))
        #expect(
            error.description
                == "line 3, column 1: duplicate key 'a': it is already defined at line 1, column 1 of the same mapping; keep one")
        #expect(try YAML.compose("1: a\n'1': b\n") != nil, "an int key and a string key differ")
        #expect(throws: YAMLError.self) { try YAML.compose("!!str 1: a\n'1': b\n") }
        #expect(throws: YAMLError.self) { try YAML.compose("[a, b]: 1\n[a, b]: 2\n") }
        #expect(try YAML.compose("[a, b]: 1\n[a, c]: 2\n") != nil)
        #expect(throws: YAMLError.self) { try YAML.compose("&k a: 1\n*k : 2\n") }
        for text in ["a: 1\na: 2\n", "1: a\n'1': b\n", "!!str 1: a\n'1': b\n", "[a, b]: 1\n[a, b]: 2\n", "&k a: 1\n*k : 2\n"] {
            #expect(Reference.ours(text).isFailure == Reference.yams(text).isFailure, "\(text)")
        }
    }

    @Test("!!str makes a plain scalar a string; other tags are ignored; merge keys stay keys")
    func tags() throws {
        let node = try #require(try YAML.compose("a: !!str 123\nb: !custom 5\n<<: {c: 1}\n"))
        guard case .mapping(let pairs, _) = node else { throw Failure("not a mapping") }
        guard case .scalar(let a) = pairs[0].value, case .scalar(let b) = pairs[1].value else {
            throw Failure("not scalars")
        }
        #expect(a.style == .doubleQuoted && a.int == nil && a.mark == Self.mark(1, 4))
        #expect(b.style == .plain && b.int == 5)
        #expect(pairs[2].key.string == "<<")
    }

    @Test("block scalars are marked at their indicator; chomping and indentation indicators apply")
    func blockScalars() throws {
        let text = "a: |-\n  x\nb: >+\n  y\n  z\n\nc: |2\n    four\n"
        let node = try #require(try YAML.compose(text))
        guard case .mapping(let pairs, _) = node else { throw Failure("not a mapping") }
        #expect(pairs.map(\.value.string) == ["x", "y z\n\n", "  four\n"])
        #expect(pairs.map(\.value.mark) == [Self.mark(1, 4), Self.mark(3, 4), Self.mark(7, 4)])
    }

    @Test("equality compares order, styles and marks")
    func equality() throws {
        let one = try YAML.compose("a: 1\nb: 2\n")
        #expect(one == (try YAML.compose("a: 1\nb: 2\n")))
        #expect(one != (try YAML.compose("b: 2\na: 1\n")))
        #expect(one != (try YAML.compose("a: '1'\nb: 2\n")))
        #expect(one != (try YAML.compose("\na: 1\nb: 2\n")))
    }
}
