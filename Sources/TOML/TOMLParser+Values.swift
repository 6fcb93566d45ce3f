extension Parser {
    /// Reads one value. `depth` is the nesting level the value would have as an array or inline table.
    mutating func parseValue(depth: Int, context: String) throws(TOMLError) -> TOMLValue {
        guard let byte = current else {
            throw error(at: position, "missing value for \(context)")
        }
        switch byte {
        case .quote, .apostrophe:
            if peek(at: position + 1) == byte && peek(at: position + 2) == byte {
                return .string(try parseMultilineString(quote: byte))
            }
            return .string(byte == .quote ? try parseBasicString() : try parseLiteralString())
        case .leftBracket:
            return try parseArray(depth: depth)
        case .leftBrace:
            return try parseInlineTable(depth: depth)
        case _ where byte.isDigit || byte == .plus || byte == .minus || byte.isLetter:
            return try parseBareValue(context: context)
        default:
            throw error(at: position, "expected a value for \(context), found \(describe(at: position))")
        }
    }

    // MARK: - Arrays and inline tables

    mutating func parseArray(depth: Int) throws(TOMLError) -> TOMLValue {
        let open = position
        try checkDepth(depth, at: open)
        position += 1
        var elements: [TOMLValue] = []
        while true {
            try skipWhitespaceCommentsAndNewlines()
            guard let byte = current else {
                throw error(at: position, "unterminated array opened at \(location(of: open)): expected ']'")
            }
            if byte == .rightBracket {
                position += 1
                return .array(elements)
            }
            elements.append(try parseValue(depth: depth + 1, context: "an element of the array opened at \(location(of: open))"))
            try skipWhitespaceCommentsAndNewlines()
            switch current {
            case .comma:
                position += 1
            case .rightBracket:
                position += 1
                return .array(elements)
            case nil:
                throw error(at: position, "unterminated array opened at \(location(of: open)): expected ']'")
            default:
                throw error(
                    at: position,
                    "expected ',' or ']' after an element of the array opened at \(location(of: open)), found \(describe(at: position))"
                )
            }
        }
    }

    /// Reads `{ key = value, … }`: on one line, no trailing comma; the table cannot be extended afterwards.
    mutating func parseInlineTable(depth: Int) throws(TOMLError) -> TOMLValue {
        let open = position
        try checkDepth(depth, at: open)
        position += 1
        let outerSection = section
        sectionCount += 1
        section = sectionCount
        defer { section = outerSection }

        let table = TableNode(origin: .inline, path: [], depth: depth)
        skipWhitespace()
        if current == .rightBrace {
            position += 1
            return .table(TOMLTable())
        }
        while true {
            skipWhitespace()
            try checkInlineTableContinues(open: open)
            _ = try parseKeyValue(into: table)
            skipWhitespace()
            try checkInlineTableContinues(open: open)
            switch current {
            case .comma:
                position += 1
                skipWhitespace()
                if current == .rightBrace {
                    throw error(at: position, "a trailing comma is not allowed in an inline table (TOML 1.0)")
                }
            case .rightBrace:
                position += 1
                return .table(table.table())
            default:
                throw error(
                    at: position,
                    "expected ',' or '}' in the inline table opened at \(location(of: open)), found \(describe(at: position))")
            }
        }
    }

    func checkInlineTableContinues(open: Int) throws(TOMLError) {
        switch current {
        case nil, .lineFeed, .carriageReturn, .hash:
            throw error(
                at: position,
                "unterminated inline table opened at \(location(of: open)): an inline table must end with '}' on the same line")
        default:
            return
        }
    }

    // MARK: - Strings

    /// Reads `"…"`, resolving escapes.
    mutating func parseBasicString() throws(TOMLError) -> String {
        let open = position
        position += 1
        var text: [UInt8] = []
        while true {
            guard let byte = current else {
                throw error(at: open, "unterminated string: a basic string must end with '\"' on the same line")
            }
            switch byte {
            case .quote:
                position += 1
                return String(decoding: text, as: UTF8.self)
            case .backslash:
                try parseEscape(into: &text)
            case .lineFeed, .carriageReturn:
                throw error(
                    at: position,
                    "newline inside a basic string opened at \(location(of: open)): close it with '\"' on the same line, or use a multi-line string (\"\"\"…\"\"\")"
                )
            default:
                try checkStringByte(byte)
                text.append(byte)
                position += 1
            }
        }
    }

    /// Reads `"""…"""` (basic: escapes, and a backslash at the end of a line removes it together with the
    /// whitespace and newlines that follow) or `'''…'''` (literal: no escapes). A newline right after the opening
    /// quotes is dropped.
    mutating func parseMultilineString(quote: UInt8) throws(TOMLError) -> String {
        let open = position
        position += 3
        try skipNewlineAfterOpeningQuotes()
        let closing = quote == .quote ? "'\"\"\"'" : "\"'''\""
        var text: [UInt8] = []
        while true {
            guard let byte = current else {
                throw error(at: open, "unterminated multi-line string: expected \(closing) before the end of the document")
            }
            switch byte {
            case quote:
                if try closeMultilineString(quote: quote, into: &text) {
                    return String(decoding: text, as: UTF8.self)
                }
            case .backslash where quote == .quote:
                if try skipLineEndingBackslash() { continue }
                try parseEscape(into: &text)
            case .lineFeed, .carriageReturn:
                try appendNewline(to: &text)
            default:
                try checkStringByte(byte)
                text.append(byte)
                position += 1
            }
        }
    }

    /// Reads `'…'`: no escapes.
    mutating func parseLiteralString() throws(TOMLError) -> String {
        let open = position
        position += 1
        let start = position
        while true {
            guard let byte = current else {
                throw error(at: open, "unterminated string: a literal string must end with \"'\" on the same line")
            }
            switch byte {
            case .apostrophe:
                let text = String(decoding: bytes[start..<position], as: UTF8.self)
                position += 1
                return text
            case .lineFeed, .carriageReturn:
                throw error(
                    at: position,
                    "newline inside a literal string opened at \(location(of: open)): close it with \"'\" on the same line, or use a multi-line string ('''…''')"
                )
            default:
                try checkStringByte(byte)
                position += 1
            }
        }
    }

    mutating func skipNewlineAfterOpeningQuotes() throws(TOMLError) {
        if current == .lineFeed || current == .carriageReturn { try consumeNewline() }
    }

    /// At a run of quotes inside a multi-line string: three end it (up to two more before them belong to the text);
    /// fewer are text. Returns true when the string ended.
    mutating func closeMultilineString(quote: UInt8, into text: inout [UInt8]) throws(TOMLError) -> Bool {
        let start = position
        while current == quote { position += 1 }
        let count = position - start
        if count < 3 {
            text.append(contentsOf: repeatElement(quote, count: count))
            return false
        }
        guard count <= 5 else {
            throw error(at: start, "too many quotes: a multi-line string may contain at most two quotes in a row")
        }
        text.append(contentsOf: repeatElement(quote, count: count - 3))
        return true
    }

    /// Appends `\n` or `\r\n` as written.
    mutating func appendNewline(to text: inout [UInt8]) throws(TOMLError) {
        let start = position
        try consumeNewline()
        text.append(contentsOf: bytes[start..<position])
    }

    /// At a backslash in a multi-line basic string: if only whitespace follows it on its line, skips up to the next
    /// non-whitespace character and returns true.
    mutating func skipLineEndingBackslash() throws(TOMLError) -> Bool {
        var end = position + 1
        while let byte = peek(at: end), byte == .space || byte == .tab { end += 1 }
        guard let byte = peek(at: end), byte == .lineFeed || byte == .carriageReturn else { return false }
        position = end
        while let byte = current {
            switch byte {
            case .space, .tab: position += 1
            case .lineFeed, .carriageReturn: try consumeNewline()
            default: return true
            }
        }
        return true
    }

    /// Control characters other than tab must be escaped.
    func checkStringByte(_ byte: UInt8) throws(TOMLError) {
        guard byte.isControl && byte != .tab else { return }
        let code = hexCodePoint(UInt32(byte))
        let escape = "\\u" + code.dropFirst(2)
        throw error(at: position, "control character \(code) is not allowed in a string; write it as \(escape)")
    }

    /// Reads one escape sequence after a backslash.
    mutating func parseEscape(into text: inout [UInt8]) throws(TOMLError) {
        let start = position
        position += 1
        guard let letter = current else {
            throw error(at: start, "unterminated string: the document ends after a backslash")
        }
        position += 1
        switch letter {
        case UInt8(ascii: "b"): text.append(0x08)
        case UInt8(ascii: "t"): text.append(.tab)
        case UInt8(ascii: "n"): text.append(.lineFeed)
        case UInt8(ascii: "f"): text.append(0x0C)
        case UInt8(ascii: "r"): text.append(.carriageReturn)
        case .quote: text.append(.quote)
        case .backslash: text.append(.backslash)
        case UInt8(ascii: "u"): try parseUnicodeEscape(digits: 4, from: start, into: &text)
        case UInt8(ascii: "U"): try parseUnicodeEscape(digits: 8, from: start, into: &text)
        default:
            let written =
                letter.isControl || letter == .space
                ? "a backslash followed by \(describe(at: start + 1))" : "'\\\(describe(at: start + 1).trimmingQuotes)'"
            throw error(
                at: start,
                "invalid escape sequence \(written) in a string; valid escapes are \\b \\t \\n \\f \\r \\\" \\\\ \\uXXXX \\UXXXXXXXX (write \\\\ for a backslash)"
            )
        }
    }

    mutating func parseUnicodeEscape(digits: Int, from start: Int, into text: inout [UInt8]) throws(TOMLError) {
        let letter = digits == 4 ? "u" : "U"
        var value: UInt32 = 0
        for _ in 0..<digits {
            guard let digit = current?.hexValue else {
                throw error(at: start, "invalid escape sequence: \\\(letter) must be followed by \(digits) hexadecimal digits")
            }
            value = value << 4 | digit
            position += 1
        }
        guard let scalar = Unicode.Scalar(value) else {
            let written = String(decoding: bytes[start..<position], as: UTF8.self)
            throw error(at: start, "invalid escape sequence \(written): \(hexCodePoint(value)) is not a Unicode scalar value")
        }
        UTF8.encode(scalar) { text.append($0) }
    }

    // MARK: - Booleans, numbers, dates and times

    /// Reads an unquoted value: a boolean, an integer, a float, or a date/time.
    mutating func parseBareValue(context: String) throws(TOMLError) -> TOMLValue {
        let start = position
        while let byte = current, byte.isBareValueByte { position += 1 }
        // A date followed by a space and a time is one date-time ("1979-05-27 07:32:00").
        if position - start == 10, isDate(bytes[start..<position]), current == .space,
            peek(at: position + 1)?.isDigit == true, peek(at: position + 2)?.isDigit == true,
            peek(at: position + 3) == .colon
        {
            position += 1
            while let byte = current, byte.isBareValueByte { position += 1 }
        }
        let token = bytes[start..<position]
        let text = String(decoding: token, as: UTF8.self)
        switch text {
        case "true": return .boolean(true)
        case "false": return .boolean(false)
        case "inf", "+inf": return .float(.infinity)
        case "-inf": return .float(-.infinity)
        case "nan", "+nan", "-nan": return .float(.nan)
        default: break
        }
        if looksLikeDateTime(token) {
            do {
                _ = try DateTimeText(token)
            } catch {
                throw self.error(at: start, "invalid date-time '\(text)': \(error.reason)")
            }
            return .datetime(text)
        }
        guard let first = token.first, first.isDigit || first == .plus || first == .minus else {
            throw error(
                at: start,
                "invalid value '\(text)' for \(context): strings must be quoted, booleans are true or false")
        }
        do {
            return try NumberText.parse(token)
        } catch {
            throw self.error(at: start, error.reason)
        }
    }

    func isDate(_ token: ArraySlice<UInt8>) -> Bool {
        (try? DateTimeText(token))?.hasTime == false  // A failed parse here only means "not a plain date".
    }

    /// `YYYY-` or `HH:` at the start: a date/time rather than a number.
    func looksLikeDateTime(_ token: ArraySlice<UInt8>) -> Bool {
        let digits = token.prefix { $0.isDigit }.count
        let next = token.dropFirst(digits).first
        return (digits == 4 && next == .minus) || (digits == 2 && next == .colon)
    }
}

/// Why a number or date/time is invalid.
struct ValueProblem: Error {
    var reason: String
}

extension UInt8 {
    /// The characters an unquoted value (number, boolean, date/time) is made of.
    var isBareValueByte: Bool {
        isDigit || isLetter || self == .underscore || self == .plus || self == .minus || self == .dot || self == .colon
    }
}

extension String {
    /// `'x'` → `x`.
    var trimmingQuotes: Substring {
        hasPrefix("'") && hasSuffix("'") && count >= 2 ? dropFirst().dropLast() : Substring(self)
    }
}
