import Foundation
import TestSupport
import Testing
import YAML
import Yams

@Suite("Plain scalars are typed as Yams' Bool/Int/Double.construct(from:) type them")
struct ScalarTypingTests {
    static let samples: [String] = [
        // Booleans, YAML 1.1 style, in their case variants (and some that are not).
        "true", "True", "TRUE", "tRuE", "false", "False", "FALSE", "yes", "Yes", "YES", "no", "No", "NO", "on", "On",
        "ON", "off", "Off", "OFF", "y", "n", "Y", "enable", "1", "0",
        // Integers: signs, underscores, bases, sexagesimal, overflow and near misses.
        "42", "-17", "+5", "0", "-0", "00", "007", "08", "1_000", "-1_000_000", "0x1F", "0xff", "-0x1F", "0X1F", "0x",
        "0x_1", "0x-5", "0b1010", "-0b11", "0b102", "0o17", "0o8", "017", "1:30", "-1:30", "1:30:45", "190:20:30",
        "1::2", "9223372036854775807", "9223372036854775808", "-9223372036854775808", "1:2:3:4:5:6:7:8:9:10",
        "12e3", "1.0", "_", "+", "-", "",
        // Floats: decimals, exponents, specials, sexagesimal, hex floats and words Swift's Double(String) reads.
        "3.14", "-0.5", "+.5", ".5", "5.", "1e5", "1E-3", "6.8523015e+5", "1_000.5", ".inf", "-.inf", "+.inf", ".Inf",
        ".INF", ".nan", ".NaN", ".NAN", "inf", "nan", "infinity", "-Infinity", "1:30.5", "0x1p3", "1.2.3", "1e",
        "e5", "0.1_2",
        // Nulls and strings.
        "~", "null", "Null", "NULL", "nULL", "none", "name", "10.100.0.0/16", "150m", "1Gi", "2001-12-14",
    ]

    @Test("bool, int, double and isNull of a plain scalar match Yams", arguments: samples)
    func plain(_ text: String) {
        let ours = YAMLScalar(string: text, style: .plain, mark: YAMLMark(line: 1, column: 1))
        let theirs = Yams.Node.Scalar(text, .implicit, .plain)
        #expect(ours.bool == Bool.construct(from: theirs))
        #expect(ours.int == Int.construct(from: theirs))
        let double = Double.construct(from: theirs)
        #expect(
            ours.double == double || (ours.double?.isNaN == true && double?.isNaN == true), "\(String(describing: ours.double))")
        #expect(ours.isNull == (NSNull.construct(from: theirs) != nil))
    }

    @Test(
        "quoted, block and !!str scalars are strings, never typed",
        arguments: [YAMLScalar.Style.singleQuoted, .doubleQuoted, .literal, .folded])
    func notPlain(_ style: YAMLScalar.Style) {
        for text in ["true", "42", "3.14", ".inf", "null", ""] {
            let scalar = YAMLScalar(string: text, style: style, mark: YAMLMark(line: 1, column: 1))
            #expect(scalar.bool == nil && scalar.int == nil && scalar.double == nil && !scalar.isNull)
        }
    }

    @Test("typing composed scalars: the document decides the style")
    func composed() throws {
        let root = try #require(try YAML.compose("a: yes\nb: 'yes'\nc: 0x10\nd: !!str 16\ne: 1_000.5\nf:\ng: \"\"\n"))
        guard case .mapping(let pairs, _) = root else { throw Failure("not a mapping") }
        let values = pairs.compactMap { pair -> YAMLScalar? in
            if case .scalar(let scalar) = pair.value { return scalar }
            return nil
        }
        #expect(values.map(\.bool) == [true, nil, nil, nil, nil, nil, nil])
        #expect(values.map(\.int) == [nil, nil, 16, nil, nil, nil, nil])
        #expect(values[4].double == 1000.5)
        #expect(values.map(\.isNull) == [false, false, false, false, false, true, false])
    }

    @Test("a sexagesimal integer that overflows is not an integer (Yams traps on it)")
    func sexagesimalOverflow() {
        // 60^11 does not fit in an Int: Yams' Int.construct(from:) crashes here, so it is not asked.
        let scalar = YAMLScalar(string: "1:2:3:4:5:6:7:8:9:10:11", style: .plain, mark: YAMLMark(line: 1, column: 1))
        #expect(scalar.int == nil)
        #expect(scalar.double != nil)
        // A value of Int.min negated.
        let negated = YAMLScalar(string: "--1:-9223372036854775748", style: .plain, mark: YAMLMark(line: 1, column: 1))
        #expect(negated.int == nil)
    }

    @Test("5 000 random number-like texts: no crash, and Yams agrees where it does not trap")
    func randomNumberLikeTexts() {
        var random = SeededGenerator(seed: 0x0DD5)
        let alphabet = Array("0123456789+-_:.xobeEinfaINFNt ")
        for _ in 0..<5_000 {
            let text = String((0..<Int.random(in: 0...12, using: &random)).map { _ in random.pick(alphabet) })
            let ours = YAMLScalar(string: text, style: .plain, mark: YAMLMark(line: 1, column: 1))
            _ = (ours.bool, ours.int, ours.double, ours.isNull)
            // Yams' sexagesimal arithmetic traps on overflow: texts with ':' are only read by ours.
            guard !text.contains(":") else { continue }
            let theirs = Yams.Node.Scalar(text, .implicit, .plain)
            #expect(ours.int == Int.construct(from: theirs), "\(text)")
            let double = Double.construct(from: theirs)
            #expect(ours.double == double || (ours.double?.isNaN == true && double?.isNaN == true), "\(text)")
        }
    }

    @Test("a plain key and the same text quoted are the same key exactly when Yams' resolver makes it a string")
    func keyResolution() {
        var random = SeededGenerator(seed: 0xDEC0DE)
        let alphabet = Array("0123456789+-_:.xobeEinfaINFNtTZ~<=")
        var samples = [
            "2001-12-14", "2001-12-14t21:59:43.10-05:00", "2001-12-14 21:59:43.10 -5", "2001-1-1", "<<", "=",
            "~", "null", "", "yes", "Off", "0b101", "0o7", "0x_", "1:20", "1:20.5", ".5e+3", ".5e3", "+.inf", "-.nan",
        ]
        for _ in 0..<2_000 {
            samples.append(String((0..<Int.random(in: 1...12, using: &random)).map { _ in random.pick(alphabet) }))
        }
        for text in samples {
            let document = "\(text): 1\n'\(text.replacing("'", with: "''"))': 2\n"
            #expect(Reference.ours(document).isFailure == Reference.yams(document).isFailure, "\(document)")
        }
    }

    @Test("at least 60 samples")
    func enough() {
        #expect(Self.samples.count >= 60)
    }
}

struct Failure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
