import TestSupport
import Testing

@testable import TOML

/// Random tables with the awkward parts of TOML: quoted keys, strings needing escapes, the integer limits,
/// floats of every size, date-times, nested and empty tables, arrays of tables, inline tables inside arrays.
struct TableGenerator {
    var random: SeededGenerator

    static let interestingStrings = [
        "", "plain", "it's", "say \"hi\"", #"back\slash"#, "line\nbreak", "cr\r\nlf", "tab\t", "\u{00}\u{01}\u{1F}\u{7F}",
        "é", "e\u{301}", "😀 emoji", "ünïcödé ключ 鍵", "'''", "\"\"\"", "trailing \\", "#not a comment", "[not] = a table",
        "\u{FFFD}", "\u{10FFFF}",
    ]

    static let interestingKeys = [
        "a", "b", "key", "bare_key-1", "1234", "", " ", "a.b", "io.containerd.grpc.v1.cri", "it's", "quote\"d", "back\\slash",
        "new\nline", "tab\tkey", "ключ", "😀", "=", "[x]", "#", "true",
    ]

    static let interestingFloats: [Double] = [
        0, -0.0, 1, -1, 0.5, 0.1, 1e6, 1e-7, 1e21, 1e23, 1e300, -1e-300, .leastNonzeroMagnitude, .greatestFiniteMagnitude,
        .leastNormalMagnitude, .infinity, -.infinity, .nan, 3.141_592_653_589_793, 0x1p52 + 0.5,
    ]

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        Int.random(in: range, using: &random)
    }

    mutating func chance(_ percent: Int) -> Bool {
        int(1...100) <= percent
    }

    mutating func key() -> String {
        chance(60) ? Self.interestingKeys[int(0...Self.interestingKeys.count - 1)] : string()
    }

    mutating func string() -> String {
        if chance(40) { return Self.interestingStrings[int(0...Self.interestingStrings.count - 1)] }
        var scalars = String.UnicodeScalarView()
        for _ in 0..<int(0...12) {
            let ranges: [ClosedRange<UInt32>] = [
                0x00...0x7F, 0x20...0x7E, 0x80...0x7FF, 0x800...0xD7FF, 0xE000...0xFFFF, 0x10000...0x10FFFF,
            ]
            let range = ranges[int(0...ranges.count - 1)]
            if let scalar = Unicode.Scalar(UInt32.random(in: range, using: &random)) { scalars.append(scalar) }
        }
        return String(scalars)
    }

    mutating func float() -> Double {
        if chance(50) { return Self.interestingFloats[int(0...Self.interestingFloats.count - 1)] }
        if chance(50) { return Double(int(-1_000_000...1_000_000)) / Double([1, 2, 4, 10, 100, 1000, 3][int(0...6)]) }
        let value = Double(bitPattern: random.next())
        return value.isFinite ? value : 1.25
    }

    mutating func integer() -> Int64 {
        switch int(0...3) {
        case 0: [Int64.min, .max, 0, -1, 1][int(0...4)]
        case 1: Int64(bitPattern: random.next())
        default: Int64(int(-1000...1000))
        }
    }

    /// A date-time in the form go-toml writes (so that it reads and writes back unchanged).
    mutating func dateTime() -> String {
        func pad(_ value: Int, _ width: Int = 2) -> String {
            String(repeating: "0", count: max(0, width - String(value).count)) + String(value)
        }
        let date = "\(pad(int(0...9999), 4))-\(pad(int(1...12)))-\(pad(int(1...28)))"
        var fraction = ""
        if chance(50) {
            fraction = "." + (0..<int(1...9)).map { _ in String(int(0...9)) }.joined()
        }
        let time = "\(pad(int(0...23))):\(pad(int(0...59))):\(pad(int(0...59)))"
        switch int(0...3) {
        case 0:
            while fraction.hasSuffix("0") { fraction.removeLast() }
            if fraction == "." { fraction = "" }
            let zone = chance(50) ? "Z" : "\(chance(50) ? "+" : "-")\(pad(int(0...23))):\(pad(int(1...59)))"
            return "\(date)T\(time)\(fraction)\(zone)"
        case 1: return "\(date)T\(time)\(fraction)"
        case 2: return date
        default: return time + fraction
        }
    }

    mutating func scalar() -> TOMLValue {
        switch int(0...5) {
        case 0: .string(string())
        case 1: .integer(integer())
        case 2: .float(float())
        case 3: .boolean(chance(50))
        case 4: .datetime(dateTime())
        default: .string(string())
        }
    }

    mutating func array(depth: Int) -> [TOMLValue] {
        (0..<int(0...4)).map { _ in value(depth: depth + 1, inArray: true) }
    }

    mutating func value(depth: Int, inArray: Bool = false) -> TOMLValue {
        guard depth < 5 else { return scalar() }
        switch int(0...9) {
        case 0, 1: return .array(array(depth: depth))
        case 2: return .table(table(depth: depth + 1))
        case 3 where !inArray: return .array((0..<int(1...3)).map { _ in .table(table(depth: depth + 2)) })
        default: return scalar()
        }
    }

    mutating func table(depth: Int) -> TOMLTable {
        var table = TOMLTable()
        guard depth < 6 else { return table }
        for _ in 0..<int(0...(depth == 0 ? 8 : 5)) {
            table[key()] = value(depth: depth)
        }
        return table
    }
}

@Suite("round trip")
struct TOMLPropertyTests {
    @Test("parse(canonical(t)) == t for 300 random tables")
    func roundTrip() throws {
        var generator = TableGenerator(random: SeededGenerator(seed: 0x6E6F_6465_626F_6F74))
        var sections = 0
        for index in 0..<300 {
            let table = generator.table(depth: 0)
            let text = TOML.canonical(table)
            sections += text.split(separator: "\n").filter { $0.hasPrefix("[") }.count
            do {
                let reread = try TOML.parse(text)
                #expect(reread == table, "table \(index):\n\(text)")
                // Writing is a fixed point.
                #expect(TOML.canonical(reread) == text, "table \(index)")
            } catch {
                Issue.record("table \(index) did not read back: \(error)\n\(text)")
            }
        }
        // The generator does produce headers and arrays of tables, not only flat key/values.
        #expect(sections > 300)
    }

    @Test("merging is the identity with itself and keeps every key of the base")
    func mergeProperties() {
        var generator = TableGenerator(random: SeededGenerator(seed: 42))
        for _ in 0..<100 {
            let base = generator.table(depth: 0)
            let patch = generator.table(depth: 0)
            #expect(base.merged(with: base) == base)
            let merged = base.merged(with: patch)
            #expect(Set(base.values.keys).union(patch.values.keys) == Set(merged.values.keys))
            for (key, value) in patch.values where value.tableValue == nil || base[key]?.tableValue == nil {
                #expect(merged[key] == value)
            }
        }
    }
}
