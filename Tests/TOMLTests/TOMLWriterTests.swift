import Testing

@testable import TOML

@Suite("canonical writer (go-toml v2 Marshal)")
struct TOMLWriterTests {
    @Test("an empty table writes nothing")
    func emptyTable() {
        #expect(TOML.canonical(TOMLTable()) == "")
    }

    @Test("root key/values first, sorted by bytes; then tables, each after a blank line")
    func layout() {
        let table: TOMLTable = [
            "b": .integer(1), "A": .integer(2), "a": .boolean(true), "_": .string("x"),
            "z": .table(["k": .integer(1)]), "m": .table(["k": .integer(2)]),
        ]
        #expect(TOML.canonical(table) == "A = 2\n_ = 'x'\na = true\nb = 1\n\n[m]\nk = 2\n\n[z]\nk = 1\n")
    }

    @Test("go-toml's documented example: empty tables and arrays of tables")
    func goTomlDocumentedExample() {
        let table: TOMLTable = [
            "top1": .table(TOMLTable()),
            "top2": .table(["child1": .table(TOMLTable())]),
            "array": .array([.table(TOMLTable()), .table(["child2": .table(TOMLTable())])]),
        ]
        #expect(TOML.canonical(table) == "[[array]]\n\n[[array]]\n[array.child2]\n\n[top1]\n\n[top2]\n[top2.child1]\n")
    }

    @Test("a table with only sub-tables is followed directly by its first child, with blank lines between siblings")
    func headersWithoutKeys() {
        let table: TOMLTable = [
            "plugins": .table([
                "x": .table(["a": .integer(1)]),
                "y": .table(TOMLTable()),
                "z": .table(["b": .integer(2)]),
            ])
        ]
        #expect(TOML.canonical(table) == "[plugins]\n[plugins.x]\na = 1\n\n[plugins.y]\n\n[plugins.z]\nb = 2\n")
    }

    @Test("arrays of tables: [[header]] per element, the element's keys, then its sub-tables and nested arrays")
    func arraysOfTables() {
        let apple: TOMLTable = [
            "name": .string("apple"),
            "physical": .table(["color": .string("red")]),
            "varieties": .array([.table(["name": .string("red delicious")]), .table(["name": .string("granny smith")])]),
        ]
        let table: TOMLTable = [
            "fruits": .array([.table(apple), .table(["name": .string("banana")])]),
            "count": .integer(2),
        ]
        let expected = """
            count = 2

            [[fruits]]
            name = 'apple'

            [fruits.physical]
            color = 'red'

            [[fruits.varieties]]
            name = 'red delicious'

            [[fruits.varieties]]
            name = 'granny smith'

            [[fruits]]
            name = 'banana'

            """
        #expect(TOML.canonical(table) == expected)
    }

    @Test("arrays are inline; tables inside arrays are inline tables with sorted keys")
    func inlineArrays() {
        let table: TOMLTable = [
            "empty": .array([]),
            "mixed": .array([.integer(1), .string("a"), .boolean(false), .float(1.5)]),
            "nested": .array([.array([.integer(1)]), .array([])]),
            "objects": .array([.table(["b": .integer(2), "a": .table(["c": .array([.table(TOMLTable())])])]), .integer(3)]),
            "inArray": .array([.array([.table(["x": .integer(1)])])]),
        ]
        let expected = """
            empty = []
            inArray = [[{x = 1}]]
            mixed = [1, 'a', false, 1.5]
            nested = [[1], []]
            objects = [{a = {c = [{}]}, b = 2}, 3]

            """
        #expect(TOML.canonical(table) == expected)
    }

    @Test(
        "strings: literal when possible, otherwise basic with escapes",
        arguments: [
            ("plain", "'plain'"),
            ("", "''"),
            (#"C:\path"#, #"'C:\path'"#),
            (#"say "hi""#, #"'say "hi"'"#),
            ("tab\there", "'tab\there'"),
            ("it's", #""it's""#),
            ("line\nbreak", #""line\nbreak""#),
            ("cr\rlf\n", #""cr\rlf\n""#),
            ("both ' and \" and \\", #""both ' and \" and \\""#),
            ("bell\u{07}", #""bell\u0007""#),
            ("esc\u{1B}del\u{7F}", #""esc\u001Bdel\u007F""#),
            ("bs\u{08}ff\u{0C}", #""bs\bff\f""#),
            ("\u{0B}", #""\u000B""#),
            ("unicode é 😀", "'unicode é 😀'"),
            ("unicode' é", #""unicode' é""#),
        ])
    func strings(text: String, written: String) {
        #expect(CanonicalWriter.inline(.string(text)) == written)
    }

    @Test(
        "keys: bare, literal, or basic when they hold ' or control characters",
        arguments: [
            ("bare_Key-09", "bare_Key-09"),
            ("", "''"),
            ("io.containerd.grpc.v1.cri", "'io.containerd.grpc.v1.cri'"),
            ("with space", "'with space'"),
            ("docker.io", "'docker.io'"),
            ("it's", #""it's""#),
            ("tab\tkey", "'tab\tkey'"),
            ("new\nline", #""new\nline""#),
            ("ключ", "'ключ'"),
            (#"quote""#, #"'quote"'"#),
        ])
    func keys(key: String, written: String) {
        #expect(CanonicalWriter.encodeKey(key) == written)
    }

    @Test("quoted keys in headers and key/value lines")
    func quotedKeysInDocument() {
        let table: TOMLTable = [
            "plugins": .table([
                "io.containerd.grpc.v1.cri": .table([
                    "registry": .table(["mirrors": .table(["docker.io": .array([.string("https://m")])])])
                ])
            ])
        ]
        let expected = """
            [plugins]
            [plugins.'io.containerd.grpc.v1.cri']
            [plugins.'io.containerd.grpc.v1.cri'.registry]
            [plugins.'io.containerd.grpc.v1.cri'.registry.mirrors]
            'docker.io' = ['https://m']

            """
        #expect(TOML.canonical(table) == expected)
    }

    @Test(
        "floats: Go's FormatFloat 'f' (integral values with .0), inf and nan",
        arguments: [
            (1.0, "1.0"),
            (0.5, "0.5"),
            (-2.5, "-2.5"),
            (0.1, "0.1"),
            (0.02, "0.02"),
            (123.456, "123.456"),
            (1e6, "1000000.0"),
            (1e-7, "0.0000001"),
            (1.5e-10, "0.00000000015"),
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1e21, "1000000000000000000000.0"),
            (1e23, "99999999999999991611392.0"),
            (9_007_199_254_740_993.0, "9007199254740992.0"),
            (0x1p63, "9223372036854775808.0"),
            (4503599627370495.5, "4503599627370495.5"),
            (Double.leastNonzeroMagnitude, "0." + String(repeating: "0", count: 323) + "5"),
            (Double.infinity, "inf"),
            (-Double.infinity, "-inf"),
            (Double.nan, "nan"),
        ])
    func floats(value: Double, written: String) {
        #expect(CanonicalWriter.inline(.float(value)) == written)
    }

    @Test("the largest double is written in full")
    func largestDouble() throws {
        let written = CanonicalWriter.formatFloat(.greatestFiniteMagnitude)
        #expect(written.hasPrefix("17976931348623157081452742373170435679807056752584499659891747680315726078002853876058955"))
        #expect(written.count == 309 + 2)
        #expect(try TOML.parse("x = \(written)")["x"] == .float(.greatestFiniteMagnitude))
    }

    @Test(
        "date-times as go-toml re-writes them",
        arguments: [
            ("1979-05-27T07:32:00Z", "1979-05-27T07:32:00Z"),
            ("1979-05-27 07:32:00Z", "1979-05-27T07:32:00Z"),
            ("1979-05-27t07:32:00z", "1979-05-27T07:32:00Z"),
            ("1979-05-27T07:32:00+00:00", "1979-05-27T07:32:00Z"),
            ("1979-05-27T07:32:00-00:00", "1979-05-27T07:32:00Z"),
            ("1979-05-27T00:32:00-07:00", "1979-05-27T00:32:00-07:00"),
            ("1979-05-27T00:32:00.500-07:00", "1979-05-27T00:32:00.5-07:00"),
            ("1979-05-27T00:32:00.000Z", "1979-05-27T00:32:00Z"),
            ("1979-05-27T00:32:00.1234567891Z", "1979-05-27T00:32:00.123456789Z"),
            ("1990-12-31T23:59:60Z", "1991-01-01T00:00:00Z"),
            ("2000-02-28T23:59:60+01:00", "2000-02-29T00:00:00+01:00"),
            ("1979-05-27T07:32:00", "1979-05-27T07:32:00"),
            ("1979-05-27 07:32:00.000", "1979-05-27T07:32:00.000"),
            ("1979-05-27", "1979-05-27"),
            ("07:32:00", "07:32:00"),
            ("07:32:00.1234567891", "07:32:00.123456789"),
            ("23:59:60", "23:59:60"),
            ("not a date", "not a date"),
        ])
    func dateTimes(text: String, written: String) {
        #expect(CanonicalWriter.inline(.datetime(text)) == written)
    }

    @Test("integers in decimal, including the 64-bit limits")
    func integers() {
        let table: TOMLTable = ["max": .integer(.max), "min": .integer(.min), "zero": .integer(0)]
        #expect(TOML.canonical(table) == "max = 9223372036854775807\nmin = -9223372036854775808\nzero = 0\n")
    }

    @Test("a document read and written again keeps go-toml's formatting")
    func normalizes() throws {
        let text = """
            version = 2
            root = "/var/lib/containerd"
            hex = 0xFF
            [a]
              x = 1_000
              [a.'b c']
              s = "it's"
            """
        let expected = """
            hex = 255
            root = '/var/lib/containerd'
            version = 2

            [a]
            x = 1000

            [a.'b c']
            s = "it's"

            """
        #expect(TOML.canonical(try TOML.parse(text)) == expected)
    }
}

@Suite("deep merge (nodeadm)")
struct TOMLMergeTests {
    @Test("tables merge key by key; keys only in the base are kept")
    func tablesMerge() {
        let base: TOMLTable = ["a": .table(["x": .integer(1), "y": .table(["p": .integer(1)])]), "keep": .boolean(true)]
        let patch: TOMLTable = ["a": .table(["y": .table(["q": .integer(2)]), "z": .integer(3)])]
        let expected: TOMLTable = [
            "a": .table(["x": .integer(1), "y": .table(["p": .integer(1), "q": .integer(2)]), "z": .integer(3)]),
            "keep": .boolean(true),
        ]
        #expect(base.merged(with: patch) == expected)
    }

    @Test("arrays are replaced whole, never concatenated or merged element by element")
    func arraysReplaced() throws {
        let base = try TOML.parse("a = [1, 2, 3]\n[[t]]\nx = 1\n[[t]]\ny = 2")
        let patch = try TOML.parse("a = ['z']\n[[t]]\nz = 3")
        let merged = base.merged(with: patch)
        #expect(merged["a"] == .array([.string("z")]))
        #expect(merged["t"] == .array([.table(["z": .integer(3)])]))
    }

    @Test("a scalar replaces a table, and a table replaces a scalar")
    func kindChanges() throws {
        let base = try TOML.parse("s = 1\n[t]\nx = 1")
        let patch = try TOML.parse("t = 'flat'\n[s]\ny = 2")
        let merged = base.merged(with: patch)
        #expect(merged == ["t": .string("flat"), "s": .table(["y": .integer(2)])])
        #expect(TOML.canonical(merged) == "t = 'flat'\n\n[s]\ny = 2\n")
    }

    @Test("false, 0 and empty values in the patch still override")
    func emptyValuesOverride() throws {
        let base = try TOML.parse("b = true\ni = 5\ns = 'x'\na = [1]")
        let patch = try TOML.parse("b = false\ni = 0\ns = ''\na = []")
        #expect(base.merged(with: patch) == patch)
    }

    @Test("merging with an empty table changes nothing")
    func emptyPatch() throws {
        let base = try TOML.parse("[a.b]\nc = 1")
        #expect(base.merged(with: TOMLTable()) == base)
        #expect(TOMLTable().merged(with: base) == base)
    }
}
