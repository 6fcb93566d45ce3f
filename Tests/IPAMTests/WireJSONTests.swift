import Foundation
import TestSupport
import Testing
import WireJSON

@Suite("WireJSON: the plugin's and the socket's JSON")
struct WireJSONTests {
    @Test("members keep their order, numbers their text, and the writer is compact")
    func roundTrip() throws {
        let text = #"{"z":1,"a":[true,false,null,-0.5e+3,"x"],"m":{"b":"2","a":{}},"e":[]}"#
        let value = try JSON(parsing: text)
        #expect(value.text == text)
        #expect(value["z"]?.int == 1)
        #expect(value["a"]?.array?[3] == .number("-0.5e+3"))
        #expect(value["m"]?.members?.map(\.key) == ["b", "a"])
        let spaced = try JSON(parsing: " {\n \"z\" : 1 ,\t\"a\":[ ] }\r\n")
        #expect(spaced.text == #"{"z":1,"a":[]}"#)
        let literal: JSON = ["cniVersion": "1.0.0", "ips": ["10.0.0.1/32"], "mtu": 9001, "snat": true, "dns": nil]
        #expect(literal.text == #"{"cniVersion":"1.0.0","ips":["10.0.0.1/32"],"mtu":9001,"snat":true,"dns":null}"#)
    }

    @Test("escapes: the writer escapes what JSON requires, the parser reads every escape and surrogate pairs")
    func escapes() throws {
        let value = JSON.string("q\"b\\n\nr\rt\t\u{01}é😀/")
        #expect(value.text == #""q\"b\\n\nr\rt\t\u0001é😀/""#)
        #expect(try JSON(parsing: value.text) == value)
        #expect(try JSON(parsing: #""\u00e9\ud83d\ude00\/\b\f""#) == .string("é😀/\u{08}\u{0C}"))
        #expect(try JSON(parsing: #"{"a":1,"a":2}"#)["a"]?.int == 2, "the last of a repeated key, as Go reads it")
    }

    @Test(
        "not JSON: each error says what and where",
        arguments: [
            ("", "unexpected end of the text"), ("{\"a\":1} x", "unexpected text after the value"),
            ("\"abc", "unterminated string"), ("\"\\ud800\"", "a lone UTF-16 surrogate"), ("01", "unexpected text after"),
            ("[1,]", "unexpected character"), ("{\"a\" 1}", "expected ':'"), ("\"a\u{01}\"", "a control character"),
            ("-", "expected a digit"), ("1.", "expected a digit after '.'"), ("1e", "expected a digit in the exponent"),
            ("tru", "expected 'true'"), ("\"\\x\"", "unknown escape"), ("{1:2}", "expected a member name"),
            (String(repeating: "[", count: 65) + String(repeating: "]", count: 65), "nested deeper than 64 levels"),
        ])
    func errors(text: String, message: String) {
        #expect(throws: JSONError.self) { try JSON(parsing: text) }
        do {
            _ = try JSON(parsing: text)
        } catch {
            #expect(error.message.hasPrefix(message) || error.message.contains(message), "\(text): \(error)")
        }
    }

    @Test("invalid UTF-8 inside a string is refused")
    func invalidUTF8() {
        #expect(throws: JSONError.self) { try JSON(parsing: [0x22, 0xC3, 0x28, 0x22]) }
    }

    static func random(_ generator: inout SeededGenerator, depth: Int) -> JSON {
        switch Int.random(in: 0..<(depth > 3 ? 4 : 6), using: &generator) {
        case 0: return .null
        case 1: return .bool(generator.chance(50))
        case 2: return .int(Int.random(in: -1_000_000...1_000_000, using: &generator))
        case 3:
            let scalars = (0..<Int.random(in: 0..<8, using: &generator)).map { _ in
                generator.pick(["a", "\"", "\\", "\n", "\u{07}", "é", "😀", " ", "/", "\u{7F}"])
            }
            return .string(scalars.joined())
        case 4: return .array((0..<Int.random(in: 0..<4, using: &generator)).map { _ in random(&generator, depth: depth + 1) })
        default:
            return .object(
                (0..<Int.random(in: 0..<4, using: &generator)).map { index in
                    JSON.Member("k\(index)\(generator.pick(["", "\"", "é"]))", random(&generator, depth: depth + 1))
                })
        }
    }

    @Test("property: write then parse gives the value back; Foundation reads the same text")
    func property() throws {
        var generator = SeededGenerator(seed: 0x5EED)
        for _ in 0..<2000 {
            let value = Self.random(&generator, depth: 0)
            let text = value.text
            #expect(try JSON(parsing: text) == value, "\(text)")
            #expect(
                (try? JSONSerialization.jsonObject(with: Data(text.utf8), options: [.fragmentsAllowed])) != nil,
                "Foundation refuses \(text)")
        }
    }

    @Test("fuzz: mutated documents never crash the parser, and what parses writes back to itself")
    func fuzz() throws {
        var generator = SeededGenerator(seed: 0xF022)
        let seeds = [
            #"{"cniVersion":"1.0.0","name":"nodeboot","plugins":[{"type":"nodeboot-cni","mtu":9001}]}"#,
            #"{"v":"1.0","op":"add","container":"c","pod":{"namespace":"d","name":"n","uid":"u"}}"#,
        ].map { Array($0.utf8) }
        for _ in 0..<5000 {
            var bytes = generator.pick(seeds)
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let index = Int.random(in: 0..<bytes.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: bytes[index] = UInt8.random(in: 0...255, using: &generator)
                case 1: bytes.remove(at: index)
                default: bytes.insert(generator.pick(Array("{}[]\",:\\u0".utf8)), at: index)
                }
                if bytes.isEmpty { bytes = [0x30] }
            }
            if let value = try? JSON(parsing: bytes) {
                #expect(try JSON(parsing: value.text) == value)
            }
        }
    }
}

@Suite("WireJSON: the agent's files, as JSONEncoder wrote them")
struct WireJSONFileFormatTests {
    struct Sample: Encodable {
        var name = "n/a é \"q\""
        var phases = [Phase(milliseconds: 0.733552, start: 12), Phase(milliseconds: 1e-05, start: 123456.5)]
        var empty: [String] = []
        var nested = Nested()
        var count = 3
        var ok = true
        var big: UInt64 = 17_179_869_184
        var zeta = "z"
        var Upper = "u"
    }
    struct Phase: Encodable {
        var milliseconds: Double
        var start: Double
    }
    struct Nested: Encodable {
        var members: [String: String] = ["b": "2", "a": "1", "B": "3"]
        var none: [String: String] = [:]
    }

    var sample: JSON {
        func phase(_ milliseconds: Double, _ start: Double) -> JSON {
            ["start": .double(start), "milliseconds": .double(milliseconds)]
        }
        return [
            "zeta": "z", "name": "n/a é \"q\"", "phases": [phase(0.733552, 12), phase(1e-05, 123456.5)], "empty": [],
            "nested": ["members": ["b": "2", "a": "1", "B": "3"], "none": [:]], "count": 3, "ok": true,
            "big": .number(String(UInt64(17_179_869_184))), "Upper": "u",
        ]
    }

    @Test("pretty with sorted keys is byte for byte JSONEncoder's [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]")
    func pretty() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let foundation = String(decoding: try encoder.encode(Sample()), as: UTF8.self)
        #expect(sample.sortedKeys.prettyText == foundation)
    }

    @Test("compact with sorted keys is byte for byte JSONEncoder's [.sortedKeys, .withoutEscapingSlashes]")
    func compact() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let foundation = String(decoding: try encoder.encode(Sample()), as: UTF8.self)
        #expect(sample.sortedKeys.text == foundation)
    }

    @Test("doubles as JSONEncoder writes them", arguments: [0, 2, -3.5, 0.1, 1e-05, 123456789.125, 1e300, 0.733552])
    func doubles(value: Double) throws {
        let foundation = String(decoding: try JSONEncoder().encode([value]), as: UTF8.self)
        #expect(JSON.array([.double(value)]).text == foundation)
        #expect(JSON.double(value).double == value)
    }

    @Test("JSONObject: each accessor's error names the member's path; absent and null read as nil")
    func fields() throws {
        let object = try JSONObject(
            parsing: #"{"a":{"b":[{"c":1},{"c":"x"}]},"n":null,"s":"t","e":"bogus","m":{"k":"v","j":2}}"#.utf8)
        #expect(try object.optionalString("n") == nil)
        #expect(try object.optionalString("absent") == nil)
        #expect(try object.string("s") == "t")
        #expect(throws: JSONShapeError(path: "a.b[1].c", expected: "an integer")) {
            try object.object("a").objects("b") { (item) throws(JSONShapeError) in try item.int("c") }
        }
        #expect(throws: JSONShapeError(path: "n", expected: "a string")) { try object.string("n") }
        #expect(throws: JSONShapeError(path: "e", expected: "a known value, not \"bogus\"")) {
            try object.value("e", as: Kind.self)
        }
        #expect(throws: JSONShapeError(path: "m.j", expected: "a string")) { try object.stringMap("m") }
        #expect(try object.strings("absent", required: false).isEmpty)
        #expect(throws: JSONShapeError(path: "", expected: "an object")) { try JSONObject(parsing: "[1]".utf8) }
        #expect("\(JSONShapeError(path: "a.b", expected: "a string"))" == "a.b: expected a string")
    }

    enum Kind: String { case good }
}
