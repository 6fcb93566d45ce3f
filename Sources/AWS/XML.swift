/// A small XML reader for the AWS query-protocol responses (EC2, STS): elements, text,
/// the five named entities and numeric references, CDATA, comments and the declaration.
/// Attributes are skipped and namespace prefixes dropped. No DTDs.
///
/// nodeboot does not use FoundationXML: it would tie the static binary to libxml2.
public struct XMLElement: Sendable, Equatable {
    public var name: String
    public var children: [XMLElement]
    public var text: String

    public init(name: String, children: [XMLElement] = [], text: String = "") {
        self.name = name
        self.children = children
        self.text = text
    }

    public func child(_ name: String) -> XMLElement? { children.first { $0.name == name } }

    public func children(_ name: String) -> [XMLElement] { children.filter { $0.name == name } }

    /// The element at a path of child names, e.g. `path("reservationSet", "item")`.
    public func path(_ names: String...) -> XMLElement? {
        var node: XMLElement? = self
        for name in names { node = node?.child(name) }
        return node
    }

    /// Text of a child, `nil` when the child is absent.
    public func string(_ name: String) -> String? { child(name)?.text }

    /// The `item` children of a list element (`<fooSet><item>…</item></fooSet>`).
    public func items(_ name: String) -> [XMLElement] { child(name)?.children("item") ?? [] }
}

public struct XMLParseError: Error, Sendable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "malformed XML at byte \(offset): \(reason)" }
}

public enum XMLReader {
    public static func parse(_ bytes: [UInt8]) throws(XMLParseError) -> XMLElement {
        var parser = Parser(bytes: bytes)
        return try parser.document()
    }

    struct Parser {
        let bytes: [UInt8]
        var index = 0

        init(bytes: [UInt8]) { self.bytes = bytes }

        func fail(_ reason: String) -> XMLParseError { XMLParseError(offset: index, reason: reason) }

        /// Whether the bytes at `index` are `literal` (compared in place: this runs for every `<` of a response).
        func starts(with literal: String) -> Bool {
            var at = index
            for byte in literal.utf8 {
                guard at < bytes.count, bytes[at] == byte else { return false }
                at += 1
            }
            return true
        }

        mutating func skip(past literal: String) throws(XMLParseError) {
            let count = literal.utf8.count
            while index + count <= bytes.count {
                if starts(with: literal) {
                    index += count
                    return
                }
                index += 1
            }
            throw fail("missing '\(literal)'")
        }

        static func isWhitespace(_ byte: UInt8) -> Bool {
            byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D
        }

        mutating func skipWhitespace() {
            while index < bytes.count, Self.isWhitespace(bytes[index]) { index += 1 }
        }

        /// Skips the declaration, comments and processing instructions before or after the root.
        mutating func skipMisc() throws(XMLParseError) {
            while true {
                skipWhitespace()
                if starts(with: "<?") {
                    try skip(past: "?>")
                } else if starts(with: "<!--") {
                    try skip(past: "-->")
                } else if starts(with: "<!DOCTYPE") {
                    throw fail("DOCTYPE is not supported")
                } else {
                    return
                }
            }
        }

        mutating func document() throws(XMLParseError) -> XMLElement {
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
            try skipMisc()
            guard index < bytes.count, bytes[index] == UInt8(ascii: "<") else {
                throw fail(bytes.isEmpty ? "empty document" : "expected '<'")
            }
            let root = try element(depth: 0)
            try skipMisc()
            guard index == bytes.count else { throw fail("content after the root element") }
            return root
        }

        mutating func name() throws(XMLParseError) -> String {
            let start = index
            while index < bytes.count {
                let byte = bytes[index]
                if Self.isWhitespace(byte) || byte == UInt8(ascii: ">") || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "=")
                {
                    break
                }
                index += 1
            }
            guard index > start else { throw fail("expected a name") }
            let full = String(decoding: bytes[start..<index], as: UTF8.self)
            if let colon = full.lastIndex(of: ":") { return String(full[full.index(after: colon)...]) }
            return full
        }

        mutating func element(depth: Int) throws(XMLParseError) -> XMLElement {
            guard depth < 64 else { throw fail("elements nested too deeply") }
            index += 1  // '<'
            var node = XMLElement(name: try name())
            // Attributes: skipped, but quoted values may contain '>' or '/'.
            while true {
                skipWhitespace()
                guard index < bytes.count else { throw fail("unterminated start tag <\(node.name)>") }
                if starts(with: "/>") {
                    index += 2
                    return node
                }
                if bytes[index] == UInt8(ascii: ">") {
                    index += 1
                    break
                }
                _ = try name()
                skipWhitespace()
                guard index < bytes.count, bytes[index] == UInt8(ascii: "=") else { throw fail("expected '='") }
                index += 1
                skipWhitespace()
                guard index < bytes.count, bytes[index] == 0x22 || bytes[index] == 0x27 else {
                    throw fail("expected a quoted attribute value")
                }
                let quote = bytes[index]
                index += 1
                while index < bytes.count, bytes[index] != quote { index += 1 }
                guard index < bytes.count else { throw fail("unterminated attribute value") }
                index += 1
            }
            var text: [UInt8] = []
            while true {
                guard index < bytes.count else { throw fail("element <\(node.name)> is not closed") }
                let byte = bytes[index]
                if byte == UInt8(ascii: "<") {
                    if starts(with: "</") {
                        index += 2
                        let closing = try name()
                        guard closing == node.name else { throw fail("</\(closing)> closes <\(node.name)>") }
                        skipWhitespace()
                        guard index < bytes.count, bytes[index] == UInt8(ascii: ">") else { throw fail("expected '>'") }
                        index += 1
                        node.text = String(decoding: text, as: UTF8.self)
                        return node
                    } else if starts(with: "<!--") {
                        try skip(past: "-->")
                    } else if starts(with: "<![CDATA[") {
                        index += 9
                        let start = index
                        try skip(past: "]]>")
                        text.append(contentsOf: bytes[start..<index - 3])
                    } else {
                        node.children.append(try element(depth: depth + 1))
                    }
                } else if byte == UInt8(ascii: "&") {
                    text.append(contentsOf: try entity())
                } else {
                    text.append(byte)
                    index += 1
                }
            }
        }

        mutating func entity() throws(XMLParseError) -> [UInt8] {
            let start = index
            while index < bytes.count, bytes[index] != UInt8(ascii: ";"), index - start < 12 { index += 1 }
            guard index < bytes.count, bytes[index] == UInt8(ascii: ";") else { throw fail("unterminated entity") }
            let name = String(decoding: bytes[(start + 1)..<index], as: UTF8.self)
            index += 1
            switch name {
            case "amp": return Array("&".utf8)
            case "lt": return Array("<".utf8)
            case "gt": return Array(">".utf8)
            case "quot": return Array("\"".utf8)
            case "apos": return Array("'".utf8)
            default:
                var value: UInt32?
                if name.hasPrefix("#x") {
                    value = UInt32(name.dropFirst(2), radix: 16)
                } else if name.hasPrefix("#") {
                    value = UInt32(name.dropFirst(), radix: 10)
                }
                guard let value, let scalar = Unicode.Scalar(value) else { throw fail("unknown entity &\(name);") }
                return Array(String(Character(scalar)).utf8)
            }
        }
    }
}
