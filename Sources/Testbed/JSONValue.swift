import Foundation

/// A JSON value whose objects keep their field order, so that the testbed writes
/// deterministic bytes (fixed order where AWS has one, sorted keys otherwise).
package enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([(String, JSONValue)])

    package static func == (lhs: JSONValue, rhs: JSONValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): true
        case (.bool(let a), .bool(let b)): a == b
        case (.number(let a), .number(let b)): a == b
        case (.string(let a), .string(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.object(let a), .object(let b)):
            a.count == b.count && zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    /// The value of a field of an object.
    package subscript(key: String) -> JSONValue? {
        guard case .object(let fields) = self else { return nil }
        return fields.first { $0.0 == key }?.1
    }

    /// Text as IMDS serves a scalar: strings as they are, numbers without a fraction when integral.
    package var text: String? {
        switch self {
        case .string(let s): s
        case .number(let n): JSONValue.format(n)
        case .bool(let b): b ? "true" : "false"
        default: nil
        }
    }

    /// This object with `other`'s fields set over it (shallow), keys sorted.
    package func merging(_ other: JSONValue) -> JSONValue {
        guard case .object(let base) = self, case .object(let overlay) = other else { return other }
        var result: [String: JSONValue] = [:]
        for (key, value) in base { result[key] = value }
        for (key, value) in overlay { result[key] = value }
        return .object(result.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    // MARK: Writing

    /// Compact JSON, fields in their stored order.
    package func compact() -> String {
        var out = ""
        write(into: &out, indent: nil, separator: ":")
        return out
    }

    /// Pretty JSON with two-space indentation and `"key" : value`, the way IMDS prints documents.
    package func pretty() -> String {
        var out = ""
        write(into: &out, indent: 0, separator: " : ")
        return out
    }

    private func write(into out: inout String, indent: Int?, separator: String) {
        func newline(_ level: Int) {
            guard indent != nil else { return }
            out += "\n" + String(repeating: " ", count: level * 2)
        }
        let level = indent ?? 0
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += JSONValue.format(n)
        case .string(let s): out += JSONValue.quote(s)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                newline(level + 1)
                item.write(into: &out, indent: indent.map { _ in level + 1 }, separator: separator)
            }
            if !items.isEmpty { newline(level) }
            out += "]"
        case .object(let fields):
            out += "{"
            for (i, (key, value)) in fields.enumerated() {
                if i > 0 { out += "," }
                newline(level + 1)
                out += JSONValue.quote(key) + separator
                value.write(into: &out, indent: indent.map { _ in level + 1 }, separator: separator)
            }
            if !fields.isEmpty { newline(level) }
            out += "}"
        }
    }

    package static func format(_ n: Double) -> String {
        if n.rounded() == n, abs(n) < 1e15 { return String(Int64(n)) }
        return String(n)
    }

    package static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension JSONValue: Codable {
    package init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let b = try? container.decode(Bool.self) {  // not a Bool: try the next shape
            self = .bool(b)
        } else if let n = try? container.decode(Double.self) {  // not a number: try the next shape
            self = .number(n)
        } else if let s = try? container.decode(String.self) {  // not a string: try the next shape
            self = .string(s)
        } else if let a = try? container.decode([JSONValue].self) {  // not an array: must be an object
            self = .array(a)
        } else {
            let o = try container.decode([String: JSONValue].self)
            self = .object(o.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
        }
    }

    package func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let b): try container.encode(b)
        case .number(let n): try container.encode(n)
        case .string(let s): try container.encode(s)
        case .array(let a): try container.encode(a)
        case .object(let fields):
            var dictionary: [String: JSONValue] = [:]
            for (key, value) in fields { dictionary[key] = value }
            try container.encode(dictionary)
        }
    }
}
