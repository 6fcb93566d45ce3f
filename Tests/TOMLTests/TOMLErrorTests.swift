import Testing

@testable import TOML

/// A malformed document and what the reader must say about it.
struct ErrorCase: Sendable, CustomTestStringConvertible {
    var name: String
    var input: String
    var line: Int
    /// nil: any column.
    var column: Int?
    var message: String

    var testDescription: String { name }
}

@Suite("TOML errors")
struct TOMLErrorTests {
    static let cases: [ErrorCase] = [
        ErrorCase(
            name: "duplicate key", input: "version = 2\nversion = 3", line: 2, column: 0, message: #"key "version" defined twice"#
        ),
        ErrorCase(
            name: "duplicate key in a table", input: "[grpc]\naddress = 'a'\naddress = 'b'", line: 3, column: 0,
            message: #"key "grpc.address" defined twice"#),
        ErrorCase(
            name: "duplicate table", input: "[grpc]\na = 1\n\n\n[grpc]\nb = 2", line: 5, column: 0,
            message: "table [grpc] defined twice"),
        ErrorCase(
            name: "duplicate quoted table",
            input: "[plugins.\"io.containerd.grpc.v1.cri\"]\n[plugins.'io.containerd.grpc.v1.cri']",
            line: 2, column: 0, message: "table [plugins.'io.containerd.grpc.v1.cri'] defined twice"),
        ErrorCase(
            name: "missing '='", input: "[grpc]\n\naddress : '/run/foo.sock'", line: 3, column: 9,
            message: #"expected '=' after key "address", found ':'"#),
        ErrorCase(
            name: "unterminated basic string", input: "a = 1\nb = \"abc", line: 2, column: 5,
            message: "unterminated string: a basic string must end with '\"' on the same line"),
        ErrorCase(
            name: "unterminated literal string", input: "b = 'abc", line: 1, column: 5, message: "unterminated string"),
        ErrorCase(
            name: "unterminated multi-line string", input: "a = \"\"\"\nabc\n", line: 1, column: 5,
            message: "unterminated multi-line string"),
        ErrorCase(
            name: "unterminated array", input: "a = [1, 2\nb = 3", line: 2, column: 1,
            message: "expected ',' or ']' after an element of the array opened at line 1, column 5, found 'b'"),
        ErrorCase(
            name: "unterminated array at the end", input: "a = [1,\n", line: 2, column: 1,
            message: "unterminated array opened at line 1, column 5"),
        ErrorCase(
            name: "unterminated inline table", input: "a = { b = 1", line: 1, column: 12,
            message: "unterminated inline table opened at line 1, column 5"),
        ErrorCase(
            name: "newline inside an inline table", input: "a = { b = 1,\n c = 2 }", line: 1, column: 13,
            message: "an inline table must end with '}' on the same line"),
        ErrorCase(
            name: "trailing comma in an inline table", input: "a = { b = 1, }", line: 1, column: 14,
            message: "a trailing comma is not allowed in an inline table"),
        ErrorCase(
            name: "bad escape", input: "\n\na = \"C:\\path\"", line: 3, column: 8,
            message: #"invalid escape sequence '\p' in a string"#),
        ErrorCase(
            name: "\\u with too few digits", input: #"a = "\u12""#, line: 1, column: 6,
            message: #"\u must be followed by 4 hexadecimal digits"#),
        ErrorCase(
            name: "surrogate escape", input: #"a = "\uD800""#, line: 1, column: 6,
            message: "U+D800 is not a Unicode scalar value"),
        ErrorCase(
            name: "key with no value", input: "key = \nother = 1", line: 1, column: 7,
            message: #"missing value for key "key""#),
        ErrorCase(name: "value with no key", input: "=1", line: 1, column: 1, message: "missing key before '='"),
        ErrorCase(
            name: "double underscore", input: "a = 1__0", line: 1, column: 5,
            message: "invalid number '1__0': each underscore must be between two digits"),
        ErrorCase(
            name: "trailing underscore", input: "a = 10_", line: 1, column: 5,
            message: "each underscore must be between two digits"),
        ErrorCase(
            name: "leading zero", input: "a = 012", line: 1, column: 5,
            message: "invalid number '012': leading zeros are not allowed"),
        ErrorCase(
            name: "leading zero in a float", input: "a = 00.5", line: 1, column: 5, message: "leading zeros are not allowed"),
        ErrorCase(
            name: "bare decimal point", input: "a = 1.", line: 1, column: 5,
            message: "a decimal point must be followed by digits"),
        ErrorCase(name: "exponent without digits", input: "a = 1e", line: 1, column: 5, message: "an exponent must have digits"),
        ErrorCase(
            name: "signed hexadecimal", input: "a = +0x10", line: 1, column: 5,
            message: "hexadecimal, octal and binary integers cannot have a sign"),
        ErrorCase(
            name: "integer overflow", input: "a = 9223372036854775808", line: 1, column: 5,
            message: "integer 9223372036854775808 is out of range for a 64-bit signed integer"),
        ErrorCase(
            name: "hexadecimal overflow", input: "a = 0x8000000000000000", line: 1, column: 5,
            message: "out of range for a 64-bit signed integer"),
        ErrorCase(
            name: "float overflow", input: "a = 1e400", line: 1, column: 5,
            message: "float 1e400 is out of range for a 64-bit float"),
        ErrorCase(
            name: "newline inside a basic string", input: "a = \"abc\ndef\"", line: 1, column: 9,
            message: "newline inside a basic string opened at line 1, column 5"),
        ErrorCase(
            name: "newline inside a literal string", input: "a = 'abc\ndef'", line: 1, column: 9,
            message: "newline inside a literal string"),
        ErrorCase(
            name: "control character in a string", input: "a = \"x\u{01}y\"", line: 1, column: 7,
            message: #"control character U+0001 is not allowed in a string; write it as \u0001"#),
        ErrorCase(
            name: "delete character in a literal string", input: "a = 'x\u{7F}'", line: 1, column: 7,
            message: "control character U+007F is not allowed in a string"),
        ErrorCase(
            name: "control character in a comment", input: "a = 1 # bell \u{07}", line: 1, column: 14,
            message: "control character U+0007 is not allowed in a comment"),
        ErrorCase(
            name: "lone carriage return", input: "a = 1\rb = 2", line: 1, column: 6,
            message: "a carriage return (U+000D) must be followed by a line feed"),
        ErrorCase(
            name: "two values on a line", input: "a = 1 b = 2", line: 1, column: 7,
            message: #"expected the end of the line after the value of key "a", found 'b'"#),
        ErrorCase(
            name: "unquoted string", input: "mode = yes", line: 1, column: 8,
            message: #"invalid value 'yes' for key "mode": strings must be quoted"#),
        ErrorCase(
            name: "invalid key character", input: "@b = 1", line: 1, column: 1,
            message: "invalid character '@' in a key: bare keys may contain only A-Z, a-z, 0-9, '_' and '-'; quote other keys"),
        ErrorCase(
            name: "invalid character inside a key", input: "a@b = 1", line: 1, column: 2,
            message: #"expected '=' after key "a", found '@'"#),
        ErrorCase(
            name: "non-ASCII bare key", input: "ключ = 1", line: 1, column: 1, message: "invalid character 'к' in a key"),
        ErrorCase(
            name: "unclosed header", input: "[grpc\naddress = 1", line: 1, column: 6,
            message: "expected ']' to close the table header, found the end of the line"),
        ErrorCase(
            name: "junk after a header", input: "[grpc] address = 1", line: 1, column: 8,
            message: "expected the end of the line after the table header, found 'a'"),
        ErrorCase(
            name: "invalid date", input: "d = 1979-02-29", line: 1, column: 5,
            message: "invalid date-time '1979-02-29': the day must be 01 to 28 in that month"),
        ErrorCase(
            name: "invalid hour", input: "t = 24:00:00", line: 1, column: 5, message: "the hour must be 00 to 23"),
        ErrorCase(
            name: "local time with an offset", input: "t = 07:32:00Z", line: 1, column: 5,
            message: "a local time cannot have a time zone offset"),
        ErrorCase(
            name: "time without seconds", input: "t = 07:32", line: 1, column: 5, message: "seconds are required"),
        ErrorCase(
            name: "dotted key into a table with a header", input: "[a.b]\nx = 1\n[a]\nb.y = 2", line: 4, column: 0,
            message: "cannot add to table [a.b] with a dotted key: it has its own header"),
        ErrorCase(
            name: "header for a table dotted keys defined", input: "a.b = 1\n[a]", line: 2, column: 0,
            message: "table [a] defined twice: dotted keys already defined it"),
        ErrorCase(
            name: "header for a table a dotted key passed through", input: "[x.y.z]\n[x]\ny.w = 1\n[x.y]", line: 4, column: 0,
            message: "table [x.y] defined twice: dotted keys already defined it"),
        ErrorCase(
            name: "extending an inline table with a header", input: "a = { b = 1 }\n[a.c]", line: 2, column: 0,
            message: #""a" is an inline table, which cannot be extended or redefined"#),
        ErrorCase(
            name: "extending an inline table with a dotted key", input: "a = { b = 1 }\na.c = 2", line: 2, column: 0,
            message: #""a" is an inline table"#),
        ErrorCase(
            name: "key twice inside an inline table", input: "a = { b = 1, b = 2 }", line: 1, column: 0,
            message: #"key "b" defined twice"#),
        ErrorCase(
            name: "array of tables over a static array", input: "a = [1]\n[[a]]", line: 2, column: 0,
            message: #"key "a" is already defined as an array; it cannot also be an array of tables"#),
        ErrorCase(
            name: "table over an array of tables", input: "[[a]]\n[a]", line: 2, column: 0,
            message: "table [a] is already an array of tables; write [[a]] to add an element"),
        ErrorCase(
            name: "array of tables over a table", input: "[a]\n[[a]]", line: 2, column: 0,
            message: "cannot define [[a]]: table [a] is already defined"),
        ErrorCase(
            name: "table over a value", input: "a = 1\n[a.b]", line: 2, column: 0,
            message: #"key "a" is already defined as an integer; it cannot also be a table"#),
        ErrorCase(
            name: "key over a table", input: "[a.b]\n[a]\nb = 1", line: 3, column: 0,
            message: #"key "a.b" defined twice: it is already a table"#),
        ErrorCase(
            name: "byte order mark", input: "\u{FEFF}a = 1", line: 1, column: 1, message: "byte order mark"),
        ErrorCase(
            name: "multi-line string as a key", input: "\"\"\"a\"\"\" = 1", line: 1, column: 1,
            message: "a multi-line string cannot be a key"),
        ErrorCase(
            name: "array nested 10 000 deep", input: "a = " + String(repeating: "[", count: 10_000), line: 1,
            column: 5 + TOML.maximumDepth, message: "tables and arrays nest more than 128 levels deep"),
        ErrorCase(
            name: "inline tables nested 10 000 deep", input: "a = " + String(repeating: "{b = ", count: 10_000), line: 1,
            column: nil, message: "tables and arrays nest more than 128 levels deep"),
        ErrorCase(
            name: "10 000 '[' alone", input: String(repeating: "[", count: 10_000), line: 1, column: 3,
            message: "invalid character '[' in a key"),
        ErrorCase(
            name: "a dotted key 10 000 parts long", input: String(repeating: "a.", count: 10_000) + "b = 1", line: 1,
            column: nil, message: "tables and arrays nest more than 128 levels deep"),
        ErrorCase(
            name: "an error after multi-byte characters counts characters", input: "\"ключ\" = 'значение' x", line: 1,
            column: 21, message: "expected the end of the line"),
    ]

    @Test("a malformed document gives an error with its line, column and message", arguments: cases)
    func malformed(_ errorCase: ErrorCase) {
        do {
            let table = try TOML.parse(errorCase.input)
            Issue.record("parsed without error: \(table)")
        } catch {
            #expect(error.line == errorCase.line, "\(error)")
            if let column = errorCase.column {
                #expect(error.column == column, "\(error)")
            }
            #expect(error.message.contains(errorCase.message), "\(error)")
        }
    }

    @Test("description: line and column, or only the line for a whole statement")
    func description() {
        #expect(
            TOMLError(line: 3, column: 9, message: #"expected '=' after key "address""#).description
                == #"line 3, column 9: expected '=' after key "address""#)
        #expect(
            TOMLError(line: 5, column: 0, message: "table [grpc] defined twice").description
                == "line 5: table [grpc] defined twice")
    }

    @Test("every prefix of a valid document either parses or fails with an error, never crashes")
    func prefixes() throws {
        let extras = #"""
            s = "esc \" \\ \u00E9 \U0001F600"
            m = """
            multi \
              line"""
            l = '''
            lit'''
            d = 1979-05-27 07:32:00.5-07:00
            a = [1, [2.5e-3, 0x1F], {x = {y = 'z'}}, ]

            """#
        let golden = try Conformance.nodeadm("containerdv1-config/expected-containerd-config.toml")
        let document = extras + golden + "[[t.u]]\nv.w = true\n"
        let bytes = Array(document.utf8)
        var failures = 0
        for end in 0...bytes.count {
            do {
                _ = try TOML.parse(String(decoding: bytes[..<end], as: UTF8.self))
            } catch {
                failures += 1
                #expect(error.line >= 1)
            }
        }
        #expect(failures > 0)
        #expect(try TOML.parse(document)["s"] == .string("esc \" \\ é 😀"))
    }
}
