import Testing

@testable import TOML

@Suite("TOML 1.0 reading")
struct TOMLParserTests {
    @Test("comments, blank lines, whitespace and CRLF line endings")
    func commentsAndWhitespace() throws {
        let text = "# a comment\r\n\r\n  \tkey = \"value\" # trailing comment\r\n\t[ table ] # c\r\n  other = 1\r\n# end"
        let table = try TOML.parse(text)
        #expect(table == ["key": .string("value"), "table": .table(["other": .integer(1)])])
    }

    @Test("an empty document is an empty table")
    func emptyDocument() throws {
        #expect(try TOML.parse("") == TOMLTable())
        #expect(try TOML.parse("\n# only a comment\n") == TOMLTable())
    }

    @Test("bare, quoted and dotted keys")
    func keys() throws {
        let text = """
            bare_key-1 = 1
            1234 = 2
            "127.0.0.1" = 3
            "ʎǝʞ" = 4
            'quoted "value"' = 5
            "" = 6
            a."b.c".d = 7
            site . "google.com" = true
            """
        let table = try TOML.parse(text)
        #expect(table["bare_key-1"] == .integer(1))
        #expect(table["1234"] == .integer(2))
        #expect(table["127.0.0.1"] == .integer(3))
        #expect(table["ʎǝʞ"] == .integer(4))
        #expect(table["quoted \"value\""] == .integer(5))
        #expect(table[""] == .integer(6))
        #expect(table.value(at: ["a", "b.c", "d"]) == .integer(7))
        #expect(table.value(at: ["site", "google.com"]) == .boolean(true))
    }

    @Test("dotted keys in the same section add to the same table")
    func dottedKeysShareTables() throws {
        let text = """
            fruit.apple.color = "red"
            fruit.apple.taste.sweet = true
            fruit.orange = 2

            [fruit.apple.texture]
            smooth = true
            """
        let table = try TOML.parse(text)
        let apple: TOMLTable = [
            "color": .string("red"), "taste": .table(["sweet": .boolean(true)]),
            "texture": .table(["smooth": .boolean(true)]),
        ]
        #expect(table == ["fruit": .table(["apple": .table(apple), "orange": .integer(2)])])
    }

    @Test("basic strings with every escape")
    func basicStringEscapes() throws {
        let table = try TOML.parse(#"s = "b\b t\t n\n f\f r\r q\" bs\\ u\u00E9 U\U0001F600 tab:\#t""#)
        #expect(table["s"] == .string("b\u{08} t\t n\n f\u{0C} r\r q\" bs\\ u\u{E9} U\u{1F600} tab:\t"))
    }

    @Test("literal strings keep backslashes")
    func literalStrings() throws {
        let table = try TOML.parse(#"path = 'C:\Users\nodejs\templates'"# + "\n" + #"regex = '<\i\c*\s*>'"#)
        #expect(table["path"] == .string(#"C:\Users\nodejs\templates"#))
        #expect(table["regex"] == .string(#"<\i\c*\s*>"#))
    }

    @Test("multi-line basic strings: leading newline trimmed, line-ending backslash, quotes inside")
    func multilineBasic() throws {
        let text = #"""
            a = """
            Roses are red
            Violets are blue"""
            b = """\
                   The quick brown \
                   fox jumps over \
                   the lazy dog.\
                   """
            c = """Here are two quotation marks: "". Simple enough."""
            d = """Here are fifteen quotation marks: ""\"""\"""\"""\"""\"."""
            e = """"This," she said, "is just a pointless statement.""""
            f = """trailing backslash then spaces \ \#t\#u{20}
              continues"""
            """#
        let table = try TOML.parse(text)
        #expect(table["a"] == .string("Roses are red\nViolets are blue"))
        #expect(table["b"] == .string("The quick brown fox jumps over the lazy dog."))
        #expect(table["c"] == .string(#"Here are two quotation marks: "". Simple enough."#))
        #expect(table["d"] == .string(#"Here are fifteen quotation marks: """""""""""""""."#))
        #expect(table["e"] == .string(#""This," she said, "is just a pointless statement.""#))
        #expect(table["f"] == .string("trailing backslash then spaces continues"))
    }

    @Test("multi-line literal strings")
    func multilineLiteral() throws {
        let text = #"""
            regex2 = '''I [dw]on't need \d{2} apples'''
            lines = '''
            The first newline is
            trimmed in raw strings.
               All other whitespace
               is preserved.
            '''
            quot15 = '''Here are fifteen quotation marks: """""""""""""""'''
            apos15 = "Here are fifteen apostrophes: '''''''''''''''"
            str = ''''That,' she said, 'is still pointless.''''
            """#
        let table = try TOML.parse(text)
        #expect(table["regex2"] == .string(#"I [dw]on't need \d{2} apples"#))
        #expect(
            table["lines"]
                == .string("The first newline is\ntrimmed in raw strings.\n   All other whitespace\n   is preserved.\n"))
        #expect(table["quot15"] == .string("Here are fifteen quotation marks: " + String(repeating: "\"", count: 15)))
        #expect(table["apos15"] == .string("Here are fifteen apostrophes: '''''''''''''''"))
        #expect(table["str"] == .string("'That,' she said, 'is still pointless.'"))
    }

    @Test("integers: decimal with underscores, signs, hex, octal, binary, the 64-bit limits")
    func integers() throws {
        let text = """
            a = +99
            b = 42
            c = 0
            d = -17
            e = 1_000
            f = 5_349_221
            g = 0xDEADBEEF
            h = 0xdead_beef
            i = 0o01234567
            j = 0o755
            k = 0b11010110
            l = 9223372036854775807
            m = -9223372036854775808
            n = -0
            o = 0x7FFFFFFFFFFFFFFF
            """
        let table = try TOML.parse(text)
        let expected: [String: Int64] = [
            "a": 99, "b": 42, "c": 0, "d": -17, "e": 1000, "f": 5_349_221, "g": 0xDEAD_BEEF, "h": 0xDEAD_BEEF,
            "i": 0o01234567, "j": 0o755, "k": 0b1101_0110, "l": .max, "m": .min, "n": 0, "o": .max,
        ]
        #expect(table == TOMLTable(expected.mapValues { .integer($0) }))
    }

    @Test("floats: fractions, exponents, underscores, inf and nan")
    func floats() throws {
        let text = """
            a = +1.0
            b = 3.1415
            c = -0.01
            d = 5e+22
            e = 1e06
            f = -2E-2
            g = 6.626e-34
            h = 224_617.445_991_228
            i = inf
            j = +inf
            k = -inf
            l = nan
            m = +nan
            n = -nan
            o = -0.0
            p = 0e0
            """
        let table = try TOML.parse(text)
        #expect(table["a"] == .float(1.0))
        #expect(table["b"] == .float(3.1415))
        #expect(table["c"] == .float(-0.01))
        #expect(table["d"] == .float(5e22))
        #expect(table["e"] == .float(1e6))
        #expect(table["f"] == .float(-2e-2))
        #expect(table["g"] == .float(6.626e-34))
        #expect(table["h"] == .float(224_617.445_991_228))
        #expect(table["i"] == .float(.infinity))
        #expect(table["j"] == .float(.infinity))
        #expect(table["k"] == .float(-.infinity))
        for key in ["l", "m", "n"] {
            #expect(table[key] == .float(.nan))
        }
        let negativeZero = try #require(table["o"])
        guard case .float(let zero) = negativeZero else {
            Issue.record("o is not a float")
            return
        }
        #expect(zero == 0 && zero.sign == .minus)
        #expect(table["p"] == .float(0))
    }

    @Test("booleans")
    func booleans() throws {
        #expect(try TOML.parse("t = true\nf = false") == ["t": .boolean(true), "f": .boolean(false)])
    }

    @Test("dates and times keep their text")
    func dateTimes() throws {
        let text = """
            odt1 = 1979-05-27T07:32:00Z
            odt2 = 1979-05-27T00:32:00-07:00
            odt3 = 1979-05-27T00:32:00.999999-07:00
            odt4 = 1979-05-27 07:32:00Z
            odt5 = 1979-05-27t07:32:00z
            ldt1 = 1979-05-27T07:32:00
            ldt2 = 1979-05-27T00:32:00.999999
            ld1 = 1979-05-27
            lt1 = 07:32:00
            lt2 = 00:32:00.999999
            leap = 2000-02-29
            leapsecond = 1990-12-31T23:59:60Z
            list = [1979-05-27, 07:32:00]
            """
        let table = try TOML.parse(text)
        #expect(table["odt1"] == .datetime("1979-05-27T07:32:00Z"))
        #expect(table["odt2"] == .datetime("1979-05-27T00:32:00-07:00"))
        #expect(table["odt3"] == .datetime("1979-05-27T00:32:00.999999-07:00"))
        #expect(table["odt4"] == .datetime("1979-05-27 07:32:00Z"))
        #expect(table["odt5"] == .datetime("1979-05-27t07:32:00z"))
        #expect(table["ldt1"] == .datetime("1979-05-27T07:32:00"))
        #expect(table["ldt2"] == .datetime("1979-05-27T00:32:00.999999"))
        #expect(table["ld1"] == .datetime("1979-05-27"))
        #expect(table["lt1"] == .datetime("07:32:00"))
        #expect(table["lt2"] == .datetime("00:32:00.999999"))
        #expect(table["leap"] == .datetime("2000-02-29"))
        #expect(table["leapsecond"] == .datetime("1990-12-31T23:59:60Z"))
        #expect(table["list"] == .array([.datetime("1979-05-27"), .datetime("07:32:00")]))
    }

    @Test("arrays: mixed, nested, multi-line with comments and a trailing comma")
    func arrays() throws {
        let text = """
            integers = [ 1, 2, 3 ]
            colors = [ "red", "yellow", "green" ]
            nested_arrays_of_ints = [ [ 1, 2 ], [3, 4, 5] ]
            nested_mixed_array = [ [ 1, 2 ], ["a", "b", "c"] ]
            numbers = [ 0.1, 0.2, 0.5, 1, 2, 5 ]
            contributors = [
              "Foo Bar <foo@example.com>",
              { name = "Baz Qux", email = "bazqux@example.com", url = "https://example.com/bazqux" }
            ]
            integers3 = [
              1, # one
              # a whole-line comment
              2, # this is ok
            ]
            empty = [ ]
            empty2 = [
            ]
            """
        let table = try TOML.parse(text)
        #expect(table["integers"] == .array([.integer(1), .integer(2), .integer(3)]))
        #expect(
            table["nested_arrays_of_ints"]
                == .array([.array([.integer(1), .integer(2)]), .array([.integer(3), .integer(4), .integer(5)])]))
        #expect(table["numbers"]?.arrayValue?.count == 6)
        let contributor: TOMLTable = [
            "name": .string("Baz Qux"), "email": .string("bazqux@example.com"), "url": .string("https://example.com/bazqux"),
        ]
        #expect(table["contributors"] == .array([.string("Foo Bar <foo@example.com>"), .table(contributor)]))
        #expect(table["integers3"] == .array([.integer(1), .integer(2)]))
        #expect(table["empty"] == .array([]))
        #expect(table["empty2"] == .array([]))
    }

    @Test("inline tables, with dotted keys and nesting")
    func inlineTables() throws {
        let text = """
            name = { first = "Tom", last = "Preston-Werner" }
            point = {x=1,y=2}
            animal = { type.name = "pug", type.size = 1 }
            empty = {}
            nested = { a = { b = [ { c = 1 } ] } }
            """
        let table = try TOML.parse(text)
        #expect(table["name"] == .table(["first": .string("Tom"), "last": .string("Preston-Werner")]))
        #expect(table["point"] == .table(["x": .integer(1), "y": .integer(2)]))
        #expect(table["animal"] == .table(["type": .table(["name": .string("pug"), "size": .integer(1)])]))
        #expect(table["empty"] == .table(TOMLTable()))
        #expect(table["nested"] == .table(["a": .table(["b": .array([.table(["c": .integer(1)])])])]))
    }

    @Test("tables: implicit super-tables may be defined later, once; sub-tables after their parent")
    func tables() throws {
        let text = """
            [x.y.z.w]
            a = 1
            [x]
            b = 2
            [x.y.other]
            c = 3
            """
        let table = try TOML.parse(text)
        let expected: TOMLTable = [
            "x": .table([
                "b": .integer(2),
                "y": .table(["z": .table(["w": .table(["a": .integer(1)])]), "other": .table(["c": .integer(3)])]),
            ])
        ]
        #expect(table == expected)
    }

    @Test("arrays of tables, with sub-tables and nested arrays going to the last element")
    func arraysOfTables() throws {
        let text = """
            [[fruits]]
            name = "apple"

            [fruits.physical]
            color = "red"

            [[fruits.varieties]]
            name = "red delicious"

            [[fruits.varieties]]
            name = "granny smith"

            [[fruits]]
            name = "banana"

            [[fruits.varieties]]
            name = "plantain"

            [[empty]]
            [[empty]]
            """
        let table = try TOML.parse(text)
        let apple: TOMLTable = [
            "name": .string("apple"),
            "physical": .table(["color": .string("red")]),
            "varieties": .array([.table(["name": .string("red delicious")]), .table(["name": .string("granny smith")])]),
        ]
        let banana: TOMLTable = ["name": .string("banana"), "varieties": .array([.table(["name": .string("plantain")])])]
        #expect(table["fruits"] == .array([.table(apple), .table(banana)]))
        #expect(table["empty"] == .array([.table(TOMLTable()), .table(TOMLTable())]))
    }

    @Test("a dotted key may pass through a table that headers only created implicitly")
    func dottedKeyThroughImplicitTable() throws {
        let table = try TOML.parse("[a.b.c]\nz = 1\n[a]\nb.d = 2")
        #expect(table.value(at: ["a", "b", "d"]) == .integer(2))
        #expect(table.value(at: ["a", "b", "c", "z"]) == .integer(1))
    }

    @Test("invalid UTF-8 turned into U+FFFD by String is just text")
    func replacementCharacters() throws {
        let bytes: [UInt8] = Array("s = '".utf8) + [0xFF, 0xFE] + Array("'\n".utf8)
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(try TOML.parse(text) == ["s": .string("\u{FFFD}\u{FFFD}")])
    }

    @Test("nesting up to the limit is fine")
    func nestingAtTheLimit() throws {
        let depth = TOML.maximumDepth - 1
        let text = "a = " + String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        var value = try #require(try TOML.parse(text)["a"])
        var levels = 0
        while case .array(let elements) = value, let first = elements.first {
            value = first
            levels += 1
        }
        #expect(levels == depth - 1)
    }
}
