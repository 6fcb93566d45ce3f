import Testing
import YAML

/// A malformed document, where libyaml (through Yams) reports the problem, and words our message must contain.
struct Malformed: CustomTestStringConvertible, Sendable {
    var text: String
    var line: Int
    var column: Int
    var words: String
    /// Where our mark deliberately differs from Yams' (then only "both fail" is compared).
    var differsFromYams = false

    var testDescription: String { String(reflecting: text) }
}

@Suite("Malformed documents: the place libyaml reports and a message a person can act on")
struct ErrorTests {
    static let cases: [Malformed] = [
        Malformed(text: "a: b: c\n", line: 1, column: 5, words: "mapping values are not allowed here"),
        Malformed(text: "a:\n\tb: 1\n", line: 2, column: 1, words: "found a tab character where indentation is expected"),
        Malformed(text: "a: \"unterminated\n", line: 2, column: 1, words: "unterminated quoted string"),
        Malformed(text: "a: 'unterminated\nb: 2\n", line: 3, column: 1, words: "unterminated quoted string"),
        Malformed(text: "a: 'x''\n", line: 2, column: 1, words: "has no closing '"),
        Malformed(text: "[a, b\n", line: 2, column: 1, words: "did not find expected ',' or ']'"),
        Malformed(text: "{a: 1, b: 2\n", line: 2, column: 1, words: "did not find expected ',' or '}'"),
        Malformed(text: "[a, b}\n", line: 1, column: 6, words: "did not find expected ',' or ']': found '}'"),
        Malformed(text: "[a: 1: 2]\n", line: 1, column: 6, words: "did not find expected ',' or ']'"),
        Malformed(text: "- [a, b\n- c\n", line: 3, column: 1, words: "the [list] that starts at line 1, column 3"),
        Malformed(text: "a: 1\n b: 2\n", line: 2, column: 3, words: "mapping values are not allowed here"),
        Malformed(text: "a:\n  b: 1\n   c: 2\n", line: 3, column: 5, words: "check the indentation"),
        Malformed(text: "- a\nb: 1\n", line: 2, column: 1, words: "did not find expected '-' indicator"),
        Malformed(text: "a:\n  - b\n  c: d\n", line: 3, column: 3, words: "did not find expected '-' indicator"),
        Malformed(text: "a: |\n  text\n bad\n", line: 3, column: 2, words: "did not find expected key"),
        Malformed(
            text: "spec:\n  kubelet:\n    flags: --a\n    - --b\n", line: 4, column: 5,
            words: "did not find expected key: found '-'"),
        Malformed(
            text: "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  cluster:\n    name: x\n   cidr: 10.0.0.0/16\n",
            line: 6, column: 4, words: "the mapping that starts at line 4, column 3"),
        Malformed(
            text: "a:\n  b:\n    c: 1\n  d\n", line: 5, column: 1,
            words: "could not find expected ':' after the key that starts at line 4, column 3"),
        Malformed(text: "a: [1, 2]]\n", line: 1, column: 10, words: "found ']'"),
        Malformed(text: "a: 'x' y\n", line: 1, column: 8, words: "did not find expected key"),
        Malformed(text: "- a\n -b: c\n", line: 2, column: 4, words: "mapping values are not allowed here"),
        Malformed(text: "a: \"\\q\"\n", line: 1, column: 5, words: "found unknown escape \\q"),
        Malformed(text: "a: \"\\xZZ\"\n", line: 1, column: 7, words: "expected 2 hexadecimal digits after the \\x escape"),
        Malformed(text: "a: \"\\u12\"\n", line: 1, column: 7, words: "expected 4 hexadecimal digits after the \\u escape"),
        Malformed(text: "a: \"\\uD800\"\n", line: 1, column: 7, words: "U+D800"),
        Malformed(text: "*undefined\n", line: 1, column: 1, words: "the alias *undefined refers to no anchor"),
        Malformed(text: "a: &anchor x\nb: *other\n", line: 2, column: 4, words: "the alias *other refers to no anchor"),
        Malformed(text: "&a [*a]\n", line: 1, column: 5, words: "the alias *a refers to no anchor"),
        Malformed(text: "a: &\n", line: 1, column: 5, words: "found a line break in the anchor"),
        Malformed(text: "a: |0\n  x\n", line: 1, column: 5, words: "indentation indicator"),
        Malformed(text: "a: |x\n  y\n", line: 1, column: 5, words: "found 'x' after the indicator of the '|' block"),
        Malformed(text: "a: >\n  x\n\ty\n", line: 3, column: 1, words: "found a tab character where indentation is expected"),
        Malformed(text: "%YAML 2.0\n---\na: 1\n", line: 1, column: 1, words: "YAML 2.0 is not supported"),
        Malformed(text: "%YAML 1.2\n%YAML 1.2\n---\n", line: 2, column: 1, words: "two %YAML directives"),
        Malformed(text: "%FOO bar\n---\na: 1\n", line: 1, column: 5, words: "unknown directive %FOO"),
        Malformed(text: "a: !e!tag x\n", line: 1, column: 4, words: "the tag handle !e! is not defined"),
        Malformed(text: "a: !<tag:x y\n", line: 1, column: 11, words: "expected '>'"),
        Malformed(text: "a: \u{01}\n", line: 1, column: 4, words: "found control character U+0001"),
        Malformed(text: "a: @foo\n", line: 1, column: 4, words: "found character '@' that cannot start any token"),
        Malformed(text: "a: `cmd`\n", line: 1, column: 4, words: "quote the value"),
        Malformed(text: "'a\n---\nb'\n", line: 2, column: 1, words: "found a document marker"),
        Malformed(text: "a: {b: c:, d}\n", line: 1, column: 9, words: "found unexpected ':'"),
        Malformed(text: "...\n", line: 1, column: 1, words: "did not find expected node content"),
        Malformed(
            text: "a: b\nc: d\na: e\n", line: 3, column: 1,
            words: "duplicate key 'a': it is already defined at line 1, column 1", differsFromYams: true),
        Malformed(
            text: "spec:\n  kubelet:\n    flags: [a]\n    flags: [b]\n", line: 4, column: 5,
            words: "duplicate key 'flags'", differsFromYams: true),
    ]

    @Test("the error has libyaml's line and column and a readable message", arguments: cases)
    func malformed(_ sample: Malformed) throws {
        let error = try #require(throws: YAMLError.self) { try YAML.compose(sample.text) }
        #expect(error.mark == YAMLMark(line: sample.line, column: sample.column), "\(error)")
        #expect(error.message.contains(sample.words), "\(error)")
        #expect(error.description.hasPrefix("line \(sample.line), column \(sample.column): "))
        let yams = Reference.yams(sample.text)
        #expect(yams.isFailure, "Yams reads it: \(yams)")
        if !sample.differsFromYams {
            #expect(yams.mark == error.mark, "Yams: \(yams)")
        }
    }

    @Test("there are at least 25 malformed samples")
    func enough() {
        #expect(Self.cases.count >= 25)
    }
}
