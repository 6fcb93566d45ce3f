/// Writes a table exactly as go-toml v2 (`toml.Marshal` of a `map[string]interface{}`, default encoder options) does.
///
/// The rules, from go-toml's encoder:
/// - A table's entries are split into key/value lines and sections. Sections are sub-tables (even empty ones) and
///   arrays of tables (non-empty arrays whose elements are all tables); everything else, including empty arrays, is a
///   key/value line. Both groups are sorted by the UTF-8 bytes of the key.
/// - A section that is a table is written as `[dotted.path]`, then its own lines and sections. The root has no header.
/// - A blank line goes before every section except the first section of a table that wrote no key/value lines
///   (so `[plugins]` is directly followed by `[plugins.'io.containerd.grpc.v1.cri']`, while an empty `[a]` followed by
///   its sibling `[b]` still has a blank line between them).
/// - An array of tables is written element by element: `[[dotted.path]]`, the element's lines, its sections; a blank
///   line goes between elements.
/// - Key parts are bare when made only of A-Z a-z 0-9 _ -; otherwise literal (`'…'`), or basic (`"…"`) when they hold
///   `'` or a character a literal string cannot hold. The empty key is `''`.
/// - Strings are literal unless they hold `'`, a line feed, a carriage return or a control character other than tab;
///   those are basic strings with `\\ \" \b \t \n \f \r` escapes and `\u00XX` (uppercase hex) for other control
///   characters. go-toml never writes multi-line strings for map values.
/// - Integers in decimal; `true`/`false`.
/// - Floats: `nan`, `inf`, `-inf`; an integral value in full decimal with `.0` (`1000000.0`, `-0.0`, all digits of
///   `1e300`); any other value as the shortest decimal that reads back the same, never with an exponent
///   (Go `strconv.FormatFloat(f, 'f', -1, 64)`: `0.5`, `0.0000001`).
/// - Date/times as go-toml re-writes what it decoded (see `DateTimeText.canonical`).
/// - Arrays inline: `[1, 'a', {b = 2}]`, `[]`; tables inside arrays (or inside inline tables) inline: `{a = 1, b = 'x'}`,
///   keys sorted, `{}` when empty.
/// - Every key/value line and header ends with a line feed; an empty table gives an empty document.
struct CanonicalWriter {
    var output = ""

    /// Writes `table`'s lines and sections. `header`: whether to write `[path]` first (false for the root and for
    /// elements of an array of tables, whose `[[path]]` the caller wrote).
    mutating func writeTable(_ table: TOMLTable, path: [String], header: Bool) {
        if header {
            output += "[\(Self.headerPath(path))]\n"
        }
        var lines: [(key: String, value: TOMLValue)] = []
        var sections: [(key: String, value: TOMLValue)] = []
        for key in table.keys {
            guard let value = table[key] else { continue }
            if Self.isSection(value) {
                sections.append((key, value))
            } else {
                lines.append((key, value))
            }
        }
        for line in lines {
            output += "\(Self.encodeKey(line.key)) = \(Self.inline(line.value))\n"
        }
        for (index, section) in sections.enumerated() {
            if index > 0 || !lines.isEmpty {
                output += "\n"
            }
            let childPath = path + [section.key]
            switch section.value {
            case .table(let child):
                writeTable(child, path: childPath, header: true)
            case .array(let elements):
                for (elementIndex, element) in elements.enumerated() {
                    if elementIndex > 0 {
                        output += "\n"
                    }
                    output += "[[\(Self.headerPath(childPath))]]\n"
                    writeTable(element.tableValue ?? TOMLTable(), path: childPath, header: false)
                }
            default:
                break
            }
        }
    }

    static func isSection(_ value: TOMLValue) -> Bool {
        switch value {
        case .table: true
        case .array(let elements): isArrayOfTables(elements)
        default: false
        }
    }

    static func headerPath(_ path: [String]) -> String {
        path.map(encodeKey).joined(separator: ".")
    }

    /// A value on the right of `=`, or inside an array or inline table.
    static func inline(_ value: TOMLValue) -> String {
        switch value {
        case .string(let text): encodeString(text)
        case .integer(let number): String(number)
        case .float(let number): formatFloat(number)
        case .boolean(let flag): flag ? "true" : "false"
        case .datetime(let text): canonicalDateTime(text)
        case .array(let elements): "[" + elements.map(inline).joined(separator: ", ") + "]"
        case .table(let table):
            "{" + table.keys.map { "\(encodeKey($0)) = \(inline(table[$0] ?? .table(TOMLTable())))" }.joined(separator: ", ")
                + "}"
        }
    }

    // MARK: - Keys and strings

    static func encodeKey(_ key: String) -> String {
        if key.isEmpty { return "''" }
        if key.utf8.allSatisfy(\.isBareKeyByte) { return key }
        if needsBasicString(key) { return basicString(key) }
        return "'\(key)'"
    }

    static func encodeString(_ text: String) -> String {
        needsBasicString(text) ? basicString(text) : "'\(text)'"
    }

    /// go-toml's test for strings that cannot be literal: `'`, CR, LF, or a control character other than tab.
    static func needsBasicString(_ text: String) -> Bool {
        text.utf8.contains { byte in
            byte == .apostrophe || byte == .lineFeed || byte == .carriageReturn || (byte.isControl && byte != .tab)
        }
    }

    static func basicString(_ text: String) -> String {
        var bytes: [UInt8] = [.quote]
        bytes.reserveCapacity(text.utf8.count + 2)
        let hex = Array("0123456789ABCDEF".utf8)
        for byte in text.utf8 {
            switch byte {
            case .backslash: bytes += [.backslash, .backslash]
            case .quote: bytes += [.backslash, .quote]
            case 0x08: bytes += [.backslash, UInt8(ascii: "b")]
            case 0x0C: bytes += [.backslash, UInt8(ascii: "f")]
            case .lineFeed: bytes += [.backslash, UInt8(ascii: "n")]
            case .carriageReturn: bytes += [.backslash, UInt8(ascii: "r")]
            case .tab: bytes += [.backslash, UInt8(ascii: "t")]
            case _ where byte.isControl:
                bytes += Array("\\u00".utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0x0F)]]
            default: bytes.append(byte)
            }
        }
        bytes.append(.quote)
        return String(decoding: bytes, as: UTF8.self)
    }

    static func canonicalDateTime(_ text: String) -> String {
        // Text that is not a TOML date/time (only possible for values built in code) is written as it is.
        (try? DateTimeText(ArraySlice(text.utf8)))?.canonical ?? text
    }
}
