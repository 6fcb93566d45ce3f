/// A table while the document is being read: its entries and how it came to exist, which decides whether a later
/// header or dotted key may define or extend it (TOML 1.0, "Table" and "Array of Tables").
final class TableNode {
    enum Origin: Equatable {
        /// The document itself.
        case root
        /// Created only as the parent of a header (`a` for `[a.b]`); a header may still define it once.
        case implicit
        /// Defined by its own `[header]`.
        case header
        /// Created by dotted keys (`a.b = 1` creates `a`) in one section (a header's section or an inline table);
        /// only dotted keys of that same section may add to it, and no header may define it.
        case dotted(section: Int)
        /// One element of an array of tables, created by `[[header]]`.
        case arrayElement
        /// An inline table `{ … }` being read.
        case inline
    }

    enum Entry {
        case value(TOMLValue)
        case table(TableNode)
        case tableArray(TableArrayNode)
    }

    var origin: Origin
    /// The keys from the document root (or from the inline table), for messages.
    let path: [String]
    /// How deep the table is: the root is 0, each table or array level adds 1.
    let depth: Int
    var entries: [String: Entry] = [:]

    init(origin: Origin, path: [String], depth: Int) {
        self.origin = origin
        self.path = path
        self.depth = depth
    }

    /// The finished value.
    func table() -> TOMLTable {
        var values: [String: TOMLValue] = [:]
        for (key, entry) in entries {
            switch entry {
            case .value(let value): values[key] = value
            case .table(let node): values[key] = .table(node.table())
            case .tableArray(let array): values[key] = .array(array.elements.map { .table($0.table()) })
            }
        }
        return TOMLTable(values)
    }
}

/// An array of tables (`[[name]]`): new elements are appended by later headers.
final class TableArrayNode {
    var elements: [TableNode]

    init(_ first: TableNode) {
        elements = [first]
    }
}

/// One part of a dotted key, with the byte offset where it starts (for messages).
struct KeyPart {
    var name: String
    var offset: Int
}

/// A recursive-descent reader of TOML 1.0 over the document's UTF-8 bytes.
struct Parser {
    let bytes: [UInt8]
    var position = 0
    /// The section (header or inline table) being read; dotted-key tables remember the section that created them.
    var section = 0
    var sectionCount = 0

    init(_ text: String) {
        bytes = Array(text.utf8)
    }

    // MARK: - The document

    mutating func parseDocument() throws(TOMLError) -> TOMLTable {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            throw error(at: 0, "the document starts with a byte order mark (U+FEFF); save it as UTF-8 without one")
        }
        let root = TableNode(origin: .root, path: [], depth: 0)
        var table = root
        while true {
            skipWhitespace()
            guard let byte = current else { break }
            switch byte {
            case .lineFeed, .carriageReturn:
                try consumeNewline()
            case .hash:
                try skipComment()
            case .leftBracket:
                table = try parseHeader(root: root)
                try expectEndOfLine(after: "the table header")
            default:
                let key = try parseKeyValue(into: table)
                try expectEndOfLine(after: "the value of key \(quotedKey(key))")
            }
        }
        return root.table()
    }

    /// Reads `key = value` and stores it in `table`; returns the key for messages.
    mutating func parseKeyValue(into table: TableNode) throws(TOMLError) -> [KeyPart] {
        let key = try parseKey()
        guard current == .equals else {
            throw error(at: position, "expected '=' after key \(quotedKey(key)), found \(describe(at: position))")
        }
        position += 1
        skipWhitespace()
        switch current {
        case nil, .lineFeed, .carriageReturn, .hash:
            throw error(at: position, "missing value for key \(quotedKey(key)): write a value after '='")
        default:
            break
        }
        let value = try parseValue(depth: table.depth + key.count, context: "key \(quotedKey(key))")
        try insert(value, at: key, into: table)
        return key
    }

    /// Reads `[a.b]` or `[[a.b]]` and returns the table that the following key/value lines go into.
    mutating func parseHeader(root: TableNode) throws(TOMLError) -> TableNode {
        let start = position
        position += 1
        let isArray = current == .leftBracket
        if isArray { position += 1 }
        let key = try parseKey()
        let closing = isArray ? "']]'" : "']'"
        guard current == .rightBracket else {
            throw error(at: position, "expected \(closing) to close the table header, found \(describe(at: position))")
        }
        position += 1
        if isArray {
            guard current == .rightBracket else {
                throw error(at: position, "expected ']]' to close the array-of-tables header, found \(describe(at: position))")
            }
            position += 1
        }
        sectionCount += 1
        section = sectionCount
        return isArray
            ? try appendTableArrayElement(root: root, key: key, at: start) : try defineTable(root: root, key: key, at: start)
    }

    // MARK: - Defining tables and keys

    /// The table `[key]` names, defining it; a table may be defined by one header only.
    mutating func defineTable(root: TableNode, key: [KeyPart], at offset: Int) throws(TOMLError) -> TableNode {
        var parent = root
        for part in key.dropLast() {
            parent = try headerChild(of: parent, part, at: offset)
        }
        guard let last = key.last else { return parent }
        let path = parent.path + [last.name]
        switch parent.entries[last.name] {
        case nil:
            try checkDepth(parent.depth + 1, at: offset)
            let table = TableNode(origin: .header, path: path, depth: parent.depth + 1)
            parent.entries[last.name] = .table(table)
            return table
        case .table(let table):
            switch table.origin {
            case .implicit:
                table.origin = .header
                return table
            case .dotted:
                throw lineError(at: offset, "table \(header(path)) defined twice: dotted keys already defined it")
            case .root, .header, .arrayElement, .inline:
                throw lineError(at: offset, "table \(header(path)) defined twice")
            }
        case .tableArray:
            throw lineError(
                at: offset, "table \(header(path)) is already an array of tables; write [\(header(path))] to add an element")
        case .value(let value):
            throw lineError(at: offset, alreadyValue(path, value, cannotBe: "a table"))
        }
    }

    /// A new element of the array of tables `[[key]]`, creating the array if needed.
    mutating func appendTableArrayElement(root: TableNode, key: [KeyPart], at offset: Int) throws(TOMLError) -> TableNode {
        var parent = root
        for part in key.dropLast() {
            parent = try headerChild(of: parent, part, at: offset)
        }
        guard let last = key.last else { return parent }
        let path = parent.path + [last.name]
        try checkDepth(parent.depth + 2, at: offset)
        let element = TableNode(origin: .arrayElement, path: path, depth: parent.depth + 2)
        switch parent.entries[last.name] {
        case nil:
            parent.entries[last.name] = .tableArray(TableArrayNode(element))
        case .tableArray(let array):
            array.elements.append(element)
        case .table:
            throw lineError(at: offset, "cannot define [\(header(path))]: table \(header(path)) is already defined")
        case .value(let value):
            throw lineError(at: offset, alreadyValue(path, value, cannotBe: "an array of tables"))
        }
        return element
    }

    /// A parent table named in a header, created implicitly when missing; an array of tables gives its last element.
    mutating func headerChild(of parent: TableNode, _ part: KeyPart, at offset: Int) throws(TOMLError) -> TableNode {
        let path = parent.path + [part.name]
        switch parent.entries[part.name] {
        case nil:
            try checkDepth(parent.depth + 1, at: offset)
            let table = TableNode(origin: .implicit, path: path, depth: parent.depth + 1)
            parent.entries[part.name] = .table(table)
            return table
        case .table(let table):
            return table
        case .tableArray(let array):
            return array.elements.last ?? parent
        case .value(let value):
            throw lineError(at: offset, alreadyValue(path, value, cannotBe: "a table"))
        }
    }

    /// Stores `key = value` in `table`, creating the tables of a dotted key.
    mutating func insert(_ value: TOMLValue, at key: [KeyPart], into table: TableNode) throws(TOMLError) {
        var parent = table
        for part in key.dropLast() {
            parent = try dottedChild(of: parent, part)
        }
        guard let last = key.last else { return }
        let path = parent.path + [last.name]
        switch parent.entries[last.name] {
        case nil:
            parent.entries[last.name] = .value(value)
        case .value:
            throw lineError(at: last.offset, "key \(quotedPath(path)) defined twice")
        case .table, .tableArray:
            throw lineError(at: last.offset, "key \(quotedPath(path)) defined twice: it is already a table")
        }
    }

    /// The table a dotted key part names, created when missing. Dotted keys may not add to a table that a header
    /// defined, nor to an inline table, nor to a table that dotted keys of another section defined.
    mutating func dottedChild(of parent: TableNode, _ part: KeyPart) throws(TOMLError) -> TableNode {
        let path = parent.path + [part.name]
        switch parent.entries[part.name] {
        case nil:
            try checkDepth(parent.depth + 1, at: part.offset)
            let table = TableNode(origin: .dotted(section: section), path: path, depth: parent.depth + 1)
            parent.entries[part.name] = .table(table)
            return table
        case .table(let table):
            switch table.origin {
            case .implicit:
                table.origin = .dotted(section: section)
                return table
            case .dotted(let owner) where owner == section:
                return table
            case .dotted:
                throw lineError(
                    at: part.offset,
                    "cannot add to table \(header(path)) with a dotted key here: dotted keys in another section defined it")
            case .root, .header, .arrayElement, .inline:
                throw lineError(
                    at: part.offset,
                    "cannot add to table \(header(path)) with a dotted key: it has its own header; put the key in that section")
            }
        case .tableArray:
            throw lineError(
                at: part.offset, "cannot add to \(quotedPath(path)) with a dotted key: it is an array of tables")
        case .value(let value):
            throw lineError(at: part.offset, alreadyValue(path, value, cannotBe: "a table"))
        }
    }

    func checkDepth(_ depth: Int, at offset: Int) throws(TOMLError) {
        guard depth <= TOML.maximumDepth else {
            throw error(at: offset, "tables and arrays nest more than \(TOML.maximumDepth) levels deep")
        }
    }

    func alreadyValue(_ path: [String], _ value: TOMLValue, cannotBe what: String) -> String {
        if case .table = value {
            return "\(quotedPath(path)) is an inline table, which cannot be extended or redefined"
        }
        return "key \(quotedPath(path)) is already defined as \(article(value.kindName)); it cannot also be \(what)"
    }

    // MARK: - Keys

    /// Reads a key: bare or quoted parts joined by dots, with optional whitespace around parts and dots.
    mutating func parseKey() throws(TOMLError) -> [KeyPart] {
        var parts: [KeyPart] = []
        while true {
            skipWhitespace()
            parts.append(try parseSimpleKey())
            skipWhitespace()
            guard current == .dot else { return parts }
            position += 1
        }
    }

    mutating func parseSimpleKey() throws(TOMLError) -> KeyPart {
        let start = position
        guard let byte = current else {
            throw error(at: position, "expected a key, found the end of the document")
        }
        switch byte {
        case .quote:
            if peek(at: position + 1) == .quote && peek(at: position + 2) == .quote {
                throw error(at: position, "a multi-line string cannot be a key")
            }
            return KeyPart(name: try parseBasicString(), offset: start)
        case .apostrophe:
            if peek(at: position + 1) == .apostrophe && peek(at: position + 2) == .apostrophe {
                throw error(at: position, "a multi-line string cannot be a key")
            }
            return KeyPart(name: try parseLiteralString(), offset: start)
        case _ where byte.isBareKeyByte:
            while let next = current, next.isBareKeyByte { position += 1 }
            return KeyPart(name: String(decoding: bytes[start..<position], as: UTF8.self), offset: start)
        case .equals:
            throw error(at: position, "missing key before '='")
        case .lineFeed, .carriageReturn, .hash, .dot, .rightBracket:
            throw error(at: position, "expected a key, found \(describe(at: position))")
        default:
            throw error(
                at: position,
                "invalid character \(describe(at: position)) in a key: bare keys may contain only A-Z, a-z, 0-9, '_' and '-'; quote other keys"
            )
        }
    }

    // MARK: - Whitespace, comments, newlines

    var current: UInt8? {
        position < bytes.count ? bytes[position] : nil
    }

    func peek(at offset: Int) -> UInt8? {
        offset >= 0 && offset < bytes.count ? bytes[offset] : nil
    }

    mutating func skipWhitespace() {
        while let byte = current, byte == .space || byte == .tab { position += 1 }
    }

    /// Consumes `\n` or `\r\n`.
    mutating func consumeNewline() throws(TOMLError) {
        if current == .carriageReturn {
            guard peek(at: position + 1) == .lineFeed else {
                throw error(at: position, "a carriage return (U+000D) must be followed by a line feed")
            }
            position += 2
        } else {
            position += 1
        }
    }

    /// Skips a comment up to (not including) its newline; control characters other than tab are not allowed in it.
    mutating func skipComment() throws(TOMLError) {
        position += 1
        while let byte = current {
            if byte == .lineFeed || (byte == .carriageReturn && peek(at: position + 1) == .lineFeed) { return }
            if byte.isControl && byte != .tab {
                throw error(at: position, "control character \(describe(at: position)) is not allowed in a comment")
            }
            position += 1
        }
    }

    /// Skips whitespace, comments and newlines (inside arrays).
    mutating func skipWhitespaceCommentsAndNewlines() throws(TOMLError) {
        while true {
            skipWhitespace()
            switch current {
            case .hash: try skipComment()
            case .lineFeed, .carriageReturn: try consumeNewline()
            default: return
            }
        }
    }

    /// After a header or key/value: optional whitespace and comment, then a newline or the end of the document.
    mutating func expectEndOfLine(after what: String) throws(TOMLError) {
        skipWhitespace()
        switch current {
        case nil: return
        case .hash: try skipComment()
        case .lineFeed, .carriageReturn: try consumeNewline()
        default:
            throw error(at: position, "expected the end of the line after \(what), found \(describe(at: position))")
        }
    }

    // MARK: - Messages

    func error(at offset: Int, _ message: String) -> TOMLError {
        TOMLError(in: bytes, at: offset, message)
    }

    func lineError(at offset: Int, _ message: String) -> TOMLError {
        TOMLError(in: bytes, at: offset, wholeLine: true, message)
    }

    /// "line L, column C" of an offset, to point back at where something was opened.
    func location(of offset: Int) -> String {
        let place = TOMLError(in: bytes, at: offset, "")
        return "line \(place.line), column \(place.column)"
    }

    /// The character at an offset, for messages: `'x'`, `U+0007`, "the end of the line", "the end of the document".
    func describe(at offset: Int) -> String {
        guard let byte = peek(at: offset) else { return "the end of the document" }
        if byte == .lineFeed || byte == .carriageReturn { return "the end of the line" }
        if byte.isControl { return hexCodePoint(UInt32(byte)) }
        var end = offset + 1
        while let next = peek(at: end), next & 0xC0 == 0x80 { end += 1 }
        return "'\(String(decoding: bytes[offset..<end], as: UTF8.self))'"
    }

    func quotedKey(_ key: [KeyPart]) -> String {
        quotedPath(key.map(\.name))
    }

    /// A key path for messages: `"grpc.address"`, with parts quoted as in TOML when needed.
    func quotedPath(_ path: [String]) -> String {
        "\"\(path.map(CanonicalWriter.encodeKey).joined(separator: "."))\""
    }

    /// A table header for messages: `[plugins.'io.containerd.grpc.v1.cri']`.
    func header(_ path: [String]) -> String {
        "[\(path.map(CanonicalWriter.encodeKey).joined(separator: "."))]"
    }

    func article(_ noun: String) -> String {
        guard let first = noun.first else { return noun }
        return "aeiou".contains(first) ? "an \(noun)" : "a \(noun)"
    }
}

/// `U+0007`: a code point in the usual notation.
func hexCodePoint(_ value: UInt32) -> String {
    let digits = String(value, radix: 16, uppercase: true)
    return "U+" + String(repeating: "0", count: max(0, 4 - digits.count)) + digits
}

extension UInt8 {
    static let tab = UInt8(ascii: "\t")
    static let lineFeed = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")
    static let space = UInt8(ascii: " ")
    static let quote = UInt8(ascii: "\"")
    static let hash = UInt8(ascii: "#")
    static let apostrophe = UInt8(ascii: "'")
    static let plus = UInt8(ascii: "+")
    static let comma = UInt8(ascii: ",")
    static let minus = UInt8(ascii: "-")
    static let dot = UInt8(ascii: ".")
    static let colon = UInt8(ascii: ":")
    static let equals = UInt8(ascii: "=")
    static let leftBracket = UInt8(ascii: "[")
    static let backslash = UInt8(ascii: "\\")
    static let rightBracket = UInt8(ascii: "]")
    static let underscore = UInt8(ascii: "_")
    static let leftBrace = UInt8(ascii: "{")
    static let rightBrace = UInt8(ascii: "}")
    static let zero = UInt8(ascii: "0")

    var isDigit: Bool { self >= UInt8(ascii: "0") && self <= UInt8(ascii: "9") }
    var isLetter: Bool {
        (self >= UInt8(ascii: "a") && self <= UInt8(ascii: "z")) || (self >= UInt8(ascii: "A") && self <= UInt8(ascii: "Z"))
    }
    var isHexDigit: Bool {
        isDigit || (self >= UInt8(ascii: "a") && self <= UInt8(ascii: "f"))
            || (self >= UInt8(ascii: "A") && self <= UInt8(ascii: "F"))
    }
    /// A-Z a-z 0-9 _ -: the characters of a bare key.
    var isBareKeyByte: Bool { isDigit || isLetter || self == .underscore || self == .minus }
    /// U+0000 to U+001F and U+007F.
    var isControl: Bool { self < 0x20 || self == 0x7F }

    /// The value of a hexadecimal digit, or nil.
    var hexValue: UInt32? {
        switch self {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt32(self - UInt8(ascii: "0"))
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt32(self - UInt8(ascii: "a") + 10)
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt32(self - UInt8(ascii: "A") + 10)
        default: nil
        }
    }
}
