extension Scanner {
    /// Appends `value` to `bytes` as UTF-8.
    static func appendUTF8(_ value: UInt32, to bytes: inout [UInt8]) {
        if value <= 0x7F {
            bytes.append(UInt8(value))
        } else if value <= 0x7FF {
            bytes.append(UInt8(0xC0 + (value >> 6)))
            bytes.append(UInt8(0x80 + (value & 0x3F)))
        } else if value <= 0xFFFF {
            bytes.append(UInt8(0xE0 + (value >> 12)))
            bytes.append(UInt8(0x80 + ((value >> 6) & 0x3F)))
            bytes.append(UInt8(0x80 + (value & 0x3F)))
        } else {
            bytes.append(UInt8(0xF0 + (value >> 18)))
            bytes.append(UInt8(0x80 + ((value >> 12) & 0x3F)))
            bytes.append(UInt8(0x80 + ((value >> 6) & 0x3F)))
            bytes.append(UInt8(0x80 + (value & 0x3F)))
        }
    }

    // MARK: - Block scalars

    /// `|` or `>` with optional chomping (`+`, `-`) and indentation (`1`–`9`) indicators, then the indented lines.
    mutating func scanBlockScalar(literal: Bool) throws(YAMLError) -> Token {
        let start = mark
        let what = literal ? "the '|' block" : "the '>' block"
        skip()
        var chomping = 0
        var increment = 0
        if check("+") || check("-") {
            chomping = check("+") ? 1 : -1
            skip()
            if isDigit() {
                if check("0") { throw zeroIndentation(what, start) }
                increment = Int(byte() - 0x30)
                skip()
            }
        } else if isDigit() {
            if check("0") { throw zeroIndentation(what, start) }
            increment = Int(byte() - 0x30)
            skip()
            if check("+") || check("-") {
                chomping = check("+") ? 1 : -1
                skip()
            }
        }
        while isBlank() { skip() }
        if check("#") {
            while !isBreakZ() { skip() }
        }
        if !isBreakZ() {
            throw YAMLError(
                mark,
                "found \(currentCharacterName()) after the indicator of \(what) at \(start.text); the text must start "
                    + "on the next line, after only '+', '-', an indentation digit or a comment")
        }
        if isBreak() { skipLine() }
        var end = mark
        var indent = 0
        if increment > 0 { indent = self.indent >= 0 ? self.indent + increment : increment }

        var string: [UInt8] = []
        var leadingBreak: [UInt8] = []
        var trailingBreaks: [UInt8] = []
        try scanBlockScalarBreaks(indent: &indent, breaks: &trailingBreaks, start: start, end: &end, what: what)
        var leadingBlank = false
        var trailingBlank = false
        while mark.column == indent && !isZ() {
            trailingBlank = isBlank()
            if !literal && leadingBreak.first == 0x0A && !leadingBlank && !trailingBlank {
                if trailingBreaks.isEmpty { string.append(0x20) }
                leadingBreak.removeAll(keepingCapacity: true)
            } else {
                string.append(contentsOf: leadingBreak)
                leadingBreak.removeAll(keepingCapacity: true)
            }
            string.append(contentsOf: trailingBreaks)
            trailingBreaks.removeAll(keepingCapacity: true)
            leadingBlank = isBlank()
            while !isBreakZ() { read(into: &string) }
            readLine(into: &leadingBreak)
            try scanBlockScalarBreaks(indent: &indent, breaks: &trailingBreaks, start: start, end: &end, what: what)
        }
        if chomping != -1 { string.append(contentsOf: leadingBreak) }
        if chomping == 1 { string.append(contentsOf: trailingBreaks) }
        return Token(
            kind: .scalar(String(decoding: string, as: UTF8.self), literal ? .literal : .folded), start: start, end: end
        )
    }

    private func zeroIndentation(_ what: String, _ start: Position) -> YAMLError {
        YAMLError(mark, "the indentation indicator of \(what) at \(start.text) is 0; use 1 to 9, or none")
    }

    /// Skips indentation and empty lines, collecting the breaks; finds the indentation from the first non-empty line
    /// when no indicator gave it.
    private mutating func scanBlockScalarBreaks(
        indent: inout Int, breaks: inout [UInt8], start: Position, end: inout Position, what: String
    ) throws(YAMLError) {
        var maxIndent = 0
        end = mark
        while true {
            while (indent == 0 || mark.column < indent) && isSpace() { skip() }
            if mark.column > maxIndent { maxIndent = mark.column }
            if (indent == 0 || mark.column < indent) && isTab() {
                throw YAMLError(
                    mark,
                    "found a tab character where indentation is expected in \(what) at \(start.text); indent with "
                        + "spaces")
            }
            if !isBreak() { break }
            readLine(into: &breaks)
            end = mark
        }
        if indent == 0 {
            indent = max(maxIndent, self.indent + 1, 1)
        }
    }

    // MARK: - Quoted scalars

    /// `'…'` (with `''` for a quote) or `"…"` (with backslash escapes); line breaks fold into spaces.
    mutating func scanFlowScalar(single: Bool) throws(YAMLError) -> Token {
        let start = mark
        let quote: Unicode.Scalar = single ? "'" : "\""
        skip()
        var string: [UInt8] = []
        var leadingBreak: [UInt8] = []
        var trailingBreaks: [UInt8] = []
        var whitespaces: [UInt8] = []
        while true {
            if isDocumentIndicator() {
                throw YAMLError(
                    mark,
                    "found a document marker ('---' or '...') inside the quoted string that starts at \(start.text); "
                        + "indent the continuation line or close the quote")
            }
            if isZ() {
                throw YAMLError(
                    mark,
                    "unterminated quoted string: the string that starts at \(start.text) has no closing \(quote)",
                    context: start)
            }
            var leadingBlanks = false
            while !isBlankZ() {
                if single && check("'") && check("'", 1) {
                    string.append(0x27)
                    skip()
                    skip()
                } else if check(quote) {
                    break
                } else if !single && check("\\") && isBreak(1) {
                    skip()
                    skipLine()
                    leadingBlanks = true
                    break
                } else if !single && check("\\") {
                    try scanEscape(into: &string, start: start)
                } else {
                    read(into: &string)
                }
            }
            if check(quote) { break }
            try scanScalarSpace(
                leadingBlanks: &leadingBlanks, whitespaces: &whitespaces, leadingBreak: &leadingBreak,
                trailingBreaks: &trailingBreaks)
            if leadingBlanks {
                fold(into: &string, leadingBreak: &leadingBreak, trailingBreaks: &trailingBreaks)
            } else {
                string.append(contentsOf: whitespaces)
                whitespaces.removeAll(keepingCapacity: true)
            }
        }
        skip()
        return Token(
            kind: .scalar(String(decoding: string, as: UTF8.self), single ? .singleQuoted : .doubleQuoted),
            start: start, end: mark)
    }

    /// Joins lines: one line break becomes a space, more keep all but the first.
    /// The blanks and line breaks inside a quoted or plain scalar (libyaml's folding state): blanks before the first
    /// break are kept in `whitespaces`, blanks after a break are skipped; the first break goes to `leadingBreak`,
    /// later ones to `trailingBreaks`. `plain`: in a plain scalar (starting at `start`) a tab where indentation
    /// (below `indent`) is expected is an error.
    private mutating func scanScalarSpace(
        leadingBlanks: inout Bool, whitespaces: inout [UInt8], leadingBreak: inout [UInt8],
        trailingBreaks: inout [UInt8], plain: (start: Position, indent: Int)? = nil
    ) throws(YAMLError) {
        while isBlank() || isBreak() {
            if isBlank() {
                if let plain, leadingBlanks && mark.column < plain.indent && isTab() {
                    throw YAMLError(
                        mark,
                        "found a tab character where indentation is expected (in the plain value that starts at "
                            + "\(plain.start.text)); indent with spaces")
                }
                if leadingBlanks {
                    skip()
                } else {
                    read(into: &whitespaces)
                }
            } else if leadingBlanks {
                readLine(into: &trailingBreaks)
            } else {
                whitespaces.removeAll(keepingCapacity: true)
                readLine(into: &leadingBreak)
                leadingBlanks = true
            }
        }
    }

    private func fold(into string: inout [UInt8], leadingBreak: inout [UInt8], trailingBreaks: inout [UInt8]) {
        if leadingBreak.first == 0x0A {
            if trailingBreaks.isEmpty {
                string.append(0x20)
            } else {
                string.append(contentsOf: trailingBreaks)
                trailingBreaks.removeAll(keepingCapacity: true)
            }
            leadingBreak.removeAll(keepingCapacity: true)
        } else {
            string.append(contentsOf: leadingBreak)
            string.append(contentsOf: trailingBreaks)
            leadingBreak.removeAll(keepingCapacity: true)
            trailingBreaks.removeAll(keepingCapacity: true)
        }
    }

    /// One backslash escape of a double-quoted string. Unlike libyaml, a `\uD83D\uDE00` surrogate pair (as JSON
    /// writes characters beyond U+FFFF) is one character.
    private mutating func scanEscape(into string: inout [UInt8], start: Position) throws(YAMLError) {
        var codeLength = 0
        switch byte(1) {
        case UInt8(ascii: "0"): string.append(0)
        case UInt8(ascii: "a"): string.append(0x07)
        case UInt8(ascii: "b"): string.append(0x08)
        case UInt8(ascii: "t"), 0x09: string.append(0x09)
        case UInt8(ascii: "n"): string.append(0x0A)
        case UInt8(ascii: "v"): string.append(0x0B)
        case UInt8(ascii: "f"): string.append(0x0C)
        case UInt8(ascii: "r"): string.append(0x0D)
        case UInt8(ascii: "e"): string.append(0x1B)
        case UInt8(ascii: " "): string.append(0x20)
        case UInt8(ascii: "\""): string.append(0x22)
        case UInt8(ascii: "/"): string.append(0x2F)
        case UInt8(ascii: "\\"): string.append(0x5C)
        case UInt8(ascii: "N"): string.append(contentsOf: [0xC2, 0x85])
        case UInt8(ascii: "_"): string.append(contentsOf: [0xC2, 0xA0])
        case UInt8(ascii: "L"): string.append(contentsOf: [0xE2, 0x80, 0xA8])
        case UInt8(ascii: "P"): string.append(contentsOf: [0xE2, 0x80, 0xA9])
        case UInt8(ascii: "x"): codeLength = 2
        case UInt8(ascii: "u"): codeLength = 4
        case UInt8(ascii: "U"): codeLength = 8
        default:
            let value = byte(1)
            let escape =
                value >= 0x21 && value < 0x7F
                ? "unknown escape \\\(Character(UnicodeScalar(value)))" : "a backslash that starts no escape"
            throw YAMLError(
                mark,
                "found \(escape) in the double-quoted string that starts at \(start.text); write \\\\ for a "
                    + "backslash, or use single quotes")
        }
        skip()
        skip()
        guard codeLength > 0 else { return }
        var value: UInt32 = 0
        for offset in 0..<codeLength {
            guard let digit = hexValue(offset) else {
                throw YAMLError(
                    mark,
                    "expected \(codeLength) hexadecimal digits after the \\\(codeLength == 2 ? "x" : codeLength == 4 ? "u" : "U") "
                        + "escape in the double-quoted string that starts at \(start.text)")
            }
            value = value << 4 + digit
        }
        var extra = 0
        if codeLength == 4 && value >= 0xD800 && value <= 0xDBFF && check("\\", 4) && check("u", 5) {
            var low: UInt32 = 0
            for offset in 6..<10 {
                guard let digit = hexValue(offset) else {
                    low = 0
                    break
                }
                low = low << 4 + digit
            }
            if low >= 0xDC00 && low <= 0xDFFF {
                value = 0x10000 + ((value - 0xD800) << 10) + (low - 0xDC00)
                extra = 6
            }
        }
        if (value >= 0xD800 && value <= 0xDFFF) || value > 0x10FFFF {
            throw YAMLError(
                mark,
                "the escape for \(codePointName(value)) in the double-quoted string that starts at \(start.text) is not "
                    + "a Unicode character (a lone surrogate or beyond U+10FFFF)")
        }
        Self.appendUTF8(value, to: &string)
        for _ in 0..<(codeLength + extra) { skip() }
    }

    // MARK: - Plain scalars

    /// `,`, `?`, `[`, `]`, `{` or `}`.
    private static func isFlowIndicatorOrQuestionMark(_ value: UInt8) -> Bool {
        switch value {
        case UInt8(ascii: ","), UInt8(ascii: "?"), UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "{"),
            UInt8(ascii: "}"):
            true
        default:
            false
        }
    }

    /// An unquoted scalar: it ends at `: `, ` #`, a flow indicator in flow context, or a line indented less than
    /// the enclosing block; line breaks fold into spaces.
    mutating func scanPlainScalar() throws(YAMLError) -> Token {
        let start = mark
        var end = mark
        var string: [UInt8] = []
        var leadingBreak: [UInt8] = []
        var trailingBreaks: [UInt8] = []
        var whitespaces: [UInt8] = []
        var leadingBlanks = false
        let indent = self.indent + 1
        while true {
            if isDocumentIndicator() { break }
            if check("#") { break }
            while !isBlankZ() {
                let character = byte()
                if character == UInt8(ascii: ":") {
                    if flowLevel > 0 && Self.isFlowIndicatorOrQuestionMark(byte(1)) {
                        throw YAMLError(
                            mark,
                            "found unexpected ':' in the plain value that starts at \(start.text) inside [] or {}; put "
                                + "a space after ':' or quote the value")
                    }
                    if isBlankZ(1) { break }
                } else if flowLevel > 0 && character != UInt8(ascii: "?")
                    && Self.isFlowIndicatorOrQuestionMark(character)
                {
                    break
                }
                if leadingBlanks || !whitespaces.isEmpty {
                    if leadingBlanks {
                        fold(into: &string, leadingBreak: &leadingBreak, trailingBreaks: &trailingBreaks)
                        leadingBlanks = false
                    } else {
                        string.append(contentsOf: whitespaces)
                        whitespaces.removeAll(keepingCapacity: true)
                    }
                }
                read(into: &string)
                end = mark
            }
            if !(isBlank() || isBreak()) { break }
            try scanScalarSpace(
                leadingBlanks: &leadingBlanks, whitespaces: &whitespaces, leadingBreak: &leadingBreak,
                trailingBreaks: &trailingBreaks, plain: (start: start, indent: indent))
            if flowLevel == 0 && mark.column < indent { break }
        }
        if leadingBlanks { simpleKeyAllowed = true }
        return Token(kind: .scalar(String(decoding: string, as: UTF8.self), .plain), start: start, end: end)
    }
}
