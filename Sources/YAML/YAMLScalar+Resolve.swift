/// Typing of plain scalars as YAML 1.1 (and Yams' `Bool`/`Int`/`Double.construct(from:)`) does it. Quoted, block
/// and `!!str` scalars are strings: every accessor but `string` gives `nil` (or `false`) for them.
extension YAMLScalar {
    /// `~`, `null`, `Null`, `NULL` or nothing, unquoted.
    public var isNull: Bool {
        style == .plain && (string.isEmpty || string == "~" || string == "null" || string == "Null" || string == "NULL")
    }

    /// `true`/`yes`/`on` or `false`/`no`/`off` in any case, unquoted (as Yams' `Bool.construct(from:)`).
    public var bool: Bool? {
        guard style == .plain else { return nil }
        switch string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default: return nil
        }
    }

    /// An unquoted integer as Yams' `Int.construct(from:)` reads it: `_` ignored, a sign, `0x`, `0b`, `0o` or a
    /// leading `0` (octal), or sexagesimal `1:30` (90). `nil` where Yams would overflow.
    public var int: Int? {
        guard style == .plain else { return nil }
        let text = Self.removingUnderscores(string)
        if text == "0" { return 0 }
        let negative = text.hasPrefix("-")
        let signPrefix = negative ? "-" : ""
        let unsigned = text.dropFirst(negative || text.hasPrefix("+") ? 1 : 0)
        for (prefix, radix) in [("0x", 16), ("0b", 2), ("0o", 8), ("0", 8)] where unsigned.hasPrefix(prefix) {
            return Int(signPrefix + unsigned.dropFirst(prefix.count), radix: radix)
        }
        if unsigned.contains(":") { return Self.sexagesimalInt(text) }
        return Int(text)
    }

    /// An unquoted number as Yams' `Double.construct(from:)` reads it: `.inf`, `-.inf`, `.nan` in any case, `_`
    /// ignored, sexagesimal `1:30.5`, else whatever Swift's `Double(String)` accepts (`1`, `1e3`, `0x1p3`, `inf`).
    public var double: Double? {
        guard style == .plain else { return nil }
        switch string.lowercased() {
        case ".inf", "+.inf": return .infinity
        case "-.inf": return -.infinity
        case ".nan": return .nan
        default: break
        }
        let text = Self.removingUnderscores(string)
        if text.contains(":") {
            let (sign, components) = Self.sexagesimalComponents(text)
            var values: [Double] = []
            for component in components {
                guard let value = Double(component) else { return nil }
                values.append(value)
            }
            var base = 1.0
            var value = 0.0
            for digit in values.reversed() {
                value += digit * base
                base *= 60
            }
            return Double(sign) * value
        }
        return Double(text)
    }

    private static func removingUnderscores(_ text: String) -> String {
        var scalars = String.UnicodeScalarView()
        scalars.append(contentsOf: text.unicodeScalars.lazy.filter { $0 != "_" })
        return String(scalars)
    }

    private static func sexagesimalComponents(_ text: String) -> (sign: Int, components: [String]) {
        var sign = 1
        var rest = Substring(text)
        if rest.hasPrefix("-") {
            sign = -1
            rest = rest.dropFirst()
        } else if rest.hasPrefix("+") {
            rest = rest.dropFirst()
        }
        return (sign, rest.split(separator: ":", omittingEmptySubsequences: false).map(String.init))
    }

    private static func sexagesimalInt(_ text: String) -> Int? {
        let (sign, components) = sexagesimalComponents(text)
        var values: [Int] = []
        for component in components {
            guard let value = Int(component, radix: 10) else { return nil }
            values.append(value)
        }
        var base = 1
        var value = 0
        for digit in values.reversed() {
            let term = digit.multipliedReportingOverflow(by: base)
            let sum = value.addingReportingOverflow(term.partialValue)
            let next = base.multipliedReportingOverflow(by: 60)
            if term.overflow || sum.overflow || next.overflow { return nil }
            value = sum.partialValue
            base = next.partialValue
        }
        let signed = value.multipliedReportingOverflow(by: sign)
        return signed.overflow ? nil : signed.partialValue
    }
}

/// What makes two mapping keys the same key, as Yams compares them: the text and the resolved tag (so `1` and `"1"`
/// differ, `a` and `"a"` do not), or the structure of a collection key.
indirect enum KeyIdentity: Hashable, Sendable {
    case scalar(tag: String, value: String)
    case sequence([KeyIdentity])
    case mapping([KeyIdentity], [KeyIdentity])

    /// The identity of a composed node (a collection key); scalars in it are typed by their style.
    init(_ node: YAMLNode) {
        switch node {
        case .scalar(let scalar):
            self = .scalar(tag: Self.tag(of: scalar.string, style: scalar.style, tag: nil), value: scalar.string)
        case .sequence(let items, _):
            self = .sequence(items.map(KeyIdentity.init))
        case .mapping(let pairs, _):
            self = .mapping(pairs.map { KeyIdentity($0.key) }, pairs.map { KeyIdentity($0.value) })
        }
    }

    static let str = "tag:yaml.org,2002:str"

    /// The tag Yams gives a scalar: its explicit tag (`!` meaning a string), `str` when quoted, or the tag its text
    /// resolves to when plain.
    static func tag(of value: String, style: YAMLScalar.Style, tag: String?) -> String {
        if let tag { return tag == "!" ? str : tag }
        return style == .plain ? resolve(value) : str
    }

    /// The tag of a plain scalar under Yams' default resolver (bool, int, float, merge, null, timestamp, value).
    static func resolve(_ value: String) -> String {
        let text = Array(value.utf8)
        if isBool(value) { return "tag:yaml.org,2002:bool" }
        if isInt(text) { return "tag:yaml.org,2002:int" }
        if isFloat(text) { return "tag:yaml.org,2002:float" }
        if value == "<<" { return "tag:yaml.org,2002:merge" }
        if value.isEmpty || value == "~" || value == "null" || value == "Null" || value == "NULL" {
            return "tag:yaml.org,2002:null"
        }
        if isTimestamp(text) { return "tag:yaml.org,2002:timestamp" }
        if value == "=" { return "tag:yaml.org,2002:value" }
        return str
    }

    private static func isBool(_ value: String) -> Bool {
        switch value {
        case "yes", "Yes", "YES", "no", "No", "NO", "true", "True", "TRUE", "false", "False", "FALSE", "on", "On", "ON",
            "off", "Off", "OFF":
            true
        default:
            false
        }
    }

    private static func isDigit(_ value: UInt8) -> Bool { value >= 0x30 && value <= 0x39 }

    private static func all(_ text: ArraySlice<UInt8>, _ predicate: (UInt8) -> Bool) -> Bool {
        !text.isEmpty && text.allSatisfy(predicate)
    }

    /// `(:[0-5]?[0-9])+` from `text`'s start to its end (or to the returned index, at the first `.` when `dot`).
    private static func sexagesimalTail(_ text: ArraySlice<UInt8>) -> Bool {
        guard text.first == UInt8(ascii: ":") else { return false }
        for segment in text.dropFirst().split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false) {
            let digits = Array(segment)
            switch digits.count {
            case 1: if !isDigit(digits[0]) { return false }
            case 2: if !(digits[0] >= 0x30 && digits[0] <= 0x35 && isDigit(digits[1])) { return false }
            default: return false
            }
        }
        return true
    }

    private static func dropSign(_ text: [UInt8]) -> ArraySlice<UInt8> {
        text.first == UInt8(ascii: "-") || text.first == UInt8(ascii: "+") ? text.dropFirst() : text[...]
    }

    /// `[-+]?(0b[01_]+|0o?[0-7_]+|0|[1-9][0-9_]*|0x[0-9a-fA-F_]+|[1-9][0-9_]*(:[0-5]?[0-9])+)`.
    static func isInt(_ text: [UInt8]) -> Bool {
        let body = dropSign(text)
        guard let first = body.first else { return false }
        let octal: (UInt8) -> Bool = { ($0 >= 0x30 && $0 <= 0x37) || $0 == 0x5F }
        if first == UInt8(ascii: "0") {
            let rest = body.dropFirst()
            if rest.isEmpty { return true }
            if rest.first == UInt8(ascii: "b") && all(rest.dropFirst(), { $0 == 0x30 || $0 == 0x31 || $0 == 0x5F }) {
                return true
            }
            if rest.first == UInt8(ascii: "x")
                && all(
                    rest.dropFirst(), { isDigit($0) || ($0 >= 0x41 && $0 <= 0x46) || ($0 >= 0x61 && $0 <= 0x66) || $0 == 0x5F })
            {
                return true
            }
            if rest.first == UInt8(ascii: "o") && all(rest.dropFirst(), octal) { return true }
            return all(rest, octal)
        }
        guard first >= 0x31 && first <= 0x39 else { return false }
        let rest = body.dropFirst()
        let digits = rest.prefix { isDigit($0) || $0 == 0x5F }
        let tail = rest.dropFirst(digits.count)
        return tail.isEmpty || sexagesimalTail(tail)
    }

    /// Yams' float pattern: decimal with optional fraction and exponent, `.5e+1`, sexagesimal with a fraction,
    /// `.inf` and `.nan`.
    static func isFloat(_ text: [UInt8]) -> Bool {
        let body = dropSign(text)
        let signed = body.count != text.count
        let string = String(decoding: body, as: UTF8.self)
        if string == ".inf" || string == ".Inf" || string == ".INF" { return true }
        if !signed && (string == ".nan" || string == ".NaN" || string == ".NAN") { return true }
        guard let first = body.first else { return false }
        if first == UInt8(ascii: ".") {
            // \.[0-9_]+([eE][-+][0-9]+)?, unsigned only.
            if signed { return false }
            let rest = body.dropFirst()
            let digits = rest.prefix { isDigit($0) || $0 == 0x5F }
            if digits.isEmpty { return false }
            let exponent = rest.dropFirst(digits.count)
            if exponent.isEmpty { return true }
            guard exponent.first == UInt8(ascii: "e") || exponent.first == UInt8(ascii: "E") else { return false }
            let afterE = exponent.dropFirst()
            guard afterE.first == UInt8(ascii: "-") || afterE.first == UInt8(ascii: "+") else { return false }
            return all(afterE.dropFirst(), isDigit)
        }
        guard isDigit(first) else { return false }
        let integer = body.dropFirst().prefix { isDigit($0) || $0 == 0x5F }
        var rest = body.dropFirst(1 + integer.count)
        if rest.first == UInt8(ascii: ":") {
            // [0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
            guard let dot = rest.firstIndex(of: UInt8(ascii: ".")) else { return false }
            return sexagesimalTail(rest[..<dot]) && rest[(dot + 1)...].allSatisfy { isDigit($0) || $0 == 0x5F }
        }
        if rest.first == UInt8(ascii: ".") {
            rest = rest.dropFirst().drop { isDigit($0) || $0 == 0x5F }
        }
        if rest.isEmpty { return true }
        guard rest.first == UInt8(ascii: "e") || rest.first == UInt8(ascii: "E") else { return false }
        rest = rest.dropFirst()
        if rest.first == UInt8(ascii: "-") || rest.first == UInt8(ascii: "+") { rest = rest.dropFirst() }
        return all(rest, isDigit)
    }

    /// `YYYY-MM-DD`, or `YYYY-M-D` then `T`/`t`/blanks, `H:MM:SS`, an optional fraction and an optional zone.
    static func isTimestamp(_ text: [UInt8]) -> Bool {
        var index = 0
        func digits(max: Int) -> Int {
            var count = 0
            while index < text.count && isDigit(text[index]) {
                index += 1
                count += 1
            }
            return count <= max ? count : 0
        }
        func expect(_ character: Unicode.Scalar) -> Bool {
            guard index < text.count, text[index] == UInt8(ascii: character) else { return false }
            index += 1
            return true
        }
        guard digits(max: 4) == 4, expect("-") else { return false }
        let month = digits(max: 2)
        guard month > 0, expect("-") else { return false }
        let day = digits(max: 2)
        guard day > 0 else { return false }
        if index == text.count { return month == 2 && day == 2 }
        if text[index] == UInt8(ascii: "T") || text[index] == UInt8(ascii: "t") {
            index += 1
        } else {
            let blanks = index
            while index < text.count && (text[index] == 0x20 || text[index] == 0x09) { index += 1 }
            if index == blanks { return false }
        }
        guard digits(max: 2) > 0, expect(":"), digits(max: 2) == 2, expect(":"), digits(max: 2) == 2 else {
            return false
        }
        if index < text.count && text[index] == UInt8(ascii: ".") {
            index += 1
            while index < text.count && isDigit(text[index]) { index += 1 }
        }
        if index == text.count { return true }
        while index < text.count && (text[index] == 0x20 || text[index] == 0x09) { index += 1 }
        if expect("Z") { return index == text.count }
        guard index < text.count, text[index] == UInt8(ascii: "-") || text[index] == UInt8(ascii: "+") else {
            return false
        }
        index += 1
        guard digits(max: 2) > 0 else { return false }
        if index == text.count { return true }
        guard expect(":"), digits(max: 2) == 2 else { return false }
        return index == text.count
    }
}
