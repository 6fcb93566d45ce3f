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
