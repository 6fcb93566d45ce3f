/// A token of the YAML grammar, as libyaml's scanner produces them.
struct Token: Sendable {
    enum Kind: Sendable {
        case streamStart
        case streamEnd
        case versionDirective(major: Int, minor: Int)
        case tagDirective(handle: String, prefix: String)
        case documentStart
        case documentEnd
        case blockSequenceStart
        case blockMappingStart
        case blockEnd
        case flowSequenceStart
        case flowSequenceEnd
        case flowMappingStart
        case flowMappingEnd
        case blockEntry
        case flowEntry
        case key
        case value
        case alias(String)
        case anchor(String)
        case tag(handle: String, suffix: String)
        case scalar(String, YAMLScalar.Style)
    }

    var kind: Kind
    var start: Position
    var end: Position
}

/// A place where a simple key (one that is not introduced by `?`) may start, for one flow level.
struct SimpleKey: Sendable {
    var possible = false
    var required = false
    /// The number of the token that would become the key.
    var tokenNumber = 0
    var mark = Position()
}

/// Turns UTF-8 text into tokens: a port of libyaml 0.2.5's scanner (`scanner.c`), so that indentation, simple keys
/// and errors (with their marks) behave as in Yams. The text is checked for characters YAML forbids first.
struct Scanner {
    /// The input, then zero bytes: a zero is the end of the stream (the input itself has none).
    private let bytes: [UInt8]
    /// `bytes.count`, kept apart so that reading a byte touches the array once (debug builds retain it per access).
    private let count: Int
    /// The current position.
    var mark = Position()

    private var tokens: [Token] = []
    private var head = 0
    private var tokensParsed = 0
    private var tokenAvailable = false
    private var streamStartProduced = false
    private(set) var streamEndProduced = false

    /// The current indentation column (-1 before the first block collection) and the enclosing ones.
    var indent = -1
    private var indents: [Int] = []
    /// Whether a simple key may start at the current position.
    var simpleKeyAllowed = false
    private var simpleKeys: [SimpleKey] = []
    /// The number of unclosed `[` and `{`.
    var flowLevel = 0

    init(_ text: String) throws(YAMLError) {
        var bytes = Array(text.utf8)
        try Self.checkCharacters(bytes)
        bytes.append(contentsOf: [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        self.bytes = bytes
        count = bytes.count
    }

    /// Rejects the characters libyaml's reader rejects (C0 controls but tab and line breaks, DEL, C1 controls but NEL,
    /// surrogates, U+FFFE and U+FFFF), at their line and column.
    static func checkCharacters(_ bytes: [UInt8]) throws(YAMLError) {
        var position = Position()
        var offset = 0
        var afterCR = false
        while offset < bytes.count {
            let lead = bytes[offset]
            if lead >= 0x20 && lead < 0x7F {
                offset += 1
                position.column += 1
                position.index += 1
                afterCR = false
                continue
            }
            var value = UInt32(lead)
            var width = 1
            if lead >= 0xF0 {
                width = 4
                value = UInt32(lead & 0x07)
            } else if lead >= 0xE0 {
                width = 3
                value = UInt32(lead & 0x0F)
            } else if lead >= 0xC0 {
                width = 2
                value = UInt32(lead & 0x1F)
            }
            if width > 1 {
                for index in 1..<width where offset + index < bytes.count {
                    value = value << 6 | UInt32(bytes[offset + index] & 0x3F)
                }
            }
            let allowed =
                value == 0x09 || value == 0x0A || value == 0x0D || value == 0x85
                || (value >= 0xA0 && value <= 0xD7FF) || (value >= 0xE000 && value <= 0xFFFD)
                || (value >= 0x10000 && value <= 0x10FFFF)
            if !allowed {
                let what = value < 0xA0 ? "control character" : "non-character"
                throw YAMLError(
                    position,
                    "found \(what) \(codePointName(value)), which YAML does not allow; remove it or write it as an "
                        + "escape in a double-quoted string")
            }
            offset += width
            position.index += 1
            if value == 0x0A && afterCR {
                afterCR = false
            } else if value == 0x0A || value == 0x0D || value == 0x85 || value == 0x2028 || value == 0x2029 {
                position.line += 1
                position.column = 0
                afterCR = value == 0x0D
            } else {
                position.column += 1
                afterCR = false
            }
        }
    }

    // MARK: - The token queue

    /// The next token, scanning as far ahead as simple keys require.
    mutating func peekToken() throws(YAMLError) -> Token {
        if !tokenAvailable { try fetchMoreTokens() }
        return tokens[head]
    }

    /// Consumes the token `peekToken` returned.
    mutating func skipToken() {
        tokenAvailable = false
        tokensParsed += 1
        if case .streamEnd = tokens[head].kind { streamEndProduced = true }
        head += 1
        if head == tokens.count {
            tokens.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= tokens.count {
            tokens.removeFirst(head)
            head = 0
        }
    }

    private mutating func enqueue(_ kind: Token.Kind, _ start: Position, _ end: Position) {
        tokens.append(Token(kind: kind, start: start, end: end))
    }

    private mutating func insert(_ kind: Token.Kind, number: Int, _ mark: Position) {
        // libyaml's invariant keeps the place within the queue; the clamp only guards against a trap.
        let index = min(max(head + number - tokensParsed, head), tokens.count)
        tokens.insert(Token(kind: kind, start: mark, end: mark), at: index)
    }

    private mutating func fetchMoreTokens() throws(YAMLError) {
        while true {
            var needMore = false
            if head == tokens.count {
                needMore = true
            } else {
                try staleSimpleKeys()
                var level = 0
                while level < simpleKeys.count && !needMore {
                    needMore = simpleKeys[level].possible && simpleKeys[level].tokenNumber == tokensParsed
                    level += 1
                }
            }
            if !needMore { break }
            try fetchNextToken()
        }
        tokenAvailable = true
    }

    // MARK: - Reading characters
    //
    // The readers below are `mutating` though they only read: calling a non-mutating method from a mutating one makes
    // a debug build copy the whole scanner (retaining its arrays) on every call, which made debug parsing twice as slow.

    @inline(__always) mutating func byte(_ offset: Int = 0) -> UInt8 {
        let index = mark.offset + offset
        return index < count ? bytes[index] : 0
    }

    @inline(__always) mutating func check(_ character: Unicode.Scalar, _ offset: Int = 0) -> Bool {
        byte(offset) == UInt8(ascii: character)
    }

    @inline(__always) mutating func isZ(_ offset: Int = 0) -> Bool { byte(offset) == 0 }
    @inline(__always) mutating func isSpace(_ offset: Int = 0) -> Bool { byte(offset) == 0x20 }
    @inline(__always) mutating func isTab(_ offset: Int = 0) -> Bool { byte(offset) == 0x09 }

    @inline(__always) mutating func isBlank(_ offset: Int = 0) -> Bool {
        let value = byte(offset)
        return value == 0x20 || value == 0x09
    }

    /// CR, LF, NEL, LS or PS.
    mutating func isBreak(_ offset: Int = 0) -> Bool {
        switch byte(offset) {
        case 0x0D, 0x0A: true
        case 0xC2: byte(offset + 1) == 0x85
        case 0xE2: byte(offset + 1) == 0x80 && (byte(offset + 2) == 0xA8 || byte(offset + 2) == 0xA9)
        default: false
        }
    }

    /// A line break or the end.
    mutating func isBreakZ(_ offset: Int = 0) -> Bool {
        switch byte(offset) {
        case 0, 0x0A, 0x0D: true
        case 0xC2, 0xE2: isBreak(offset)
        default: false
        }
    }

    /// A space, a tab, a line break or the end.
    mutating func isBlankZ(_ offset: Int = 0) -> Bool {
        switch byte(offset) {
        case 0, 0x09, 0x0A, 0x0D, 0x20: true
        case 0xC2, 0xE2: isBreak(offset)
        default: false
        }
    }

    /// ASCII letter, digit, `_` or `-`.
    mutating func isAlpha(_ offset: Int = 0) -> Bool {
        let value = byte(offset)
        return (value >= 0x30 && value <= 0x39) || (value >= 0x41 && value <= 0x5A) || (value >= 0x61 && value <= 0x7A)
            || value == 0x5F || value == 0x2D
    }

    mutating func isDigit(_ offset: Int = 0) -> Bool {
        let value = byte(offset)
        return value >= 0x30 && value <= 0x39
    }

    mutating func hexValue(_ offset: Int = 0) -> UInt32? {
        let value = byte(offset)
        switch value {
        case 0x30...0x39: return UInt32(value - 0x30)
        case 0x41...0x46: return UInt32(value - 0x41 + 10)
        case 0x61...0x66: return UInt32(value - 0x61 + 10)
        default: return nil
        }
    }

    mutating func isBOM() -> Bool { byte(0) == 0xEF && byte(1) == 0xBB && byte(2) == 0xBF }

    /// Whether the next four characters are `---` or `...` and a blank, a break or the end, at the start of a line.
    mutating func isDocumentIndicator() -> Bool {
        mark.column == 0
            && ((check("-", 0) && check("-", 1) && check("-", 2)) || (check(".", 0) && check(".", 1) && check(".", 2)))
            && isBlankZ(3)
    }

    /// The width in bytes of the character at the current position (1 for a stray continuation byte).
    @inline(__always) mutating func width() -> Int {
        let value = byte()
        if value < 0x80 { return 1 }
        if value >= 0xF0 { return 4 }
        if value >= 0xE0 { return 3 }
        if value >= 0xC0 { return 2 }
        return 1
    }

    /// Moves past one character.
    @inline(__always) mutating func skip() {
        mark.index += 1
        mark.column += 1
        mark.offset += width()
    }

    /// Moves past a line break (CR LF counts as one).
    mutating func skipLine() {
        if check("\r") && check("\n", 1) {
            mark.index += 2
            mark.column = 0
            mark.line += 1
            mark.offset += 2
        } else if isBreak() {
            mark.index += 1
            mark.column = 0
            mark.line += 1
            mark.offset += width()
        }
    }

    /// Copies one character to `string` and moves past it.
    @inline(__always) mutating func read(into string: inout [UInt8]) {
        let first = byte()
        string.append(first)
        var length = 1
        if first >= 0x80 {
            length = width()
            for offset in 1..<length { string.append(byte(offset)) }
        }
        mark.index += 1
        mark.column += 1
        mark.offset += length
    }

    /// Copies a line break to `string` (CR LF, CR, LF and NEL as LF; LS and PS as they are) and moves past it.
    mutating func readLine(into string: inout [UInt8]) {
        if check("\r") && check("\n", 1) {
            string.append(0x0A)
            mark.offset += 2
            mark.index += 2
        } else if check("\r") || check("\n") {
            string.append(0x0A)
            mark.offset += 1
            mark.index += 1
        } else if byte() == 0xC2 && byte(1) == 0x85 {
            string.append(0x0A)
            mark.offset += 2
            mark.index += 1
        } else if byte() == 0xE2 && byte(1) == 0x80 && (byte(2) == 0xA8 || byte(2) == 0xA9) {
            string.append(contentsOf: [byte(), byte(1), byte(2)])
            mark.offset += 3
            mark.index += 1
        } else {
            return
        }
        mark.column = 0
        mark.line += 1
    }

    /// The character at the current position, for messages: `'x'`, `a tab`, `a line break`.
    mutating func currentCharacterName() -> String {
        if byte() == 0x09 { return "a tab" }
        if byte() == 0x20 { return "a space" }
        if byte() == 0 { return "the end of the document" }
        if isBreak() { return "a line break" }
        let count = width()
        var bytes: [UInt8] = []
        for offset in 0..<count { bytes.append(byte(offset)) }
        return "'" + String(decoding: bytes, as: UTF8.self) + "'"
    }

    // MARK: - Fetching tokens

    private mutating func fetchNextToken() throws(YAMLError) {
        if !streamStartProduced {
            fetchStreamStart()
            return
        }
        try scanToNextToken()
        try staleSimpleKeys()
        unrollIndent(mark.column)

        if isZ() { return try fetchStreamEnd() }
        if mark.column == 0 && check("%") { return try fetchDirective() }
        if mark.column == 0 && check("-", 0) && check("-", 1) && check("-", 2) && isBlankZ(3) {
            return try fetchDocumentIndicator(.documentStart)
        }
        if mark.column == 0 && check(".", 0) && check(".", 1) && check(".", 2) && isBlankZ(3) {
            return try fetchDocumentIndicator(.documentEnd)
        }
        switch byte() {
        case UInt8(ascii: "["): return try fetchFlowCollectionStart(.flowSequenceStart)
        case UInt8(ascii: "{"): return try fetchFlowCollectionStart(.flowMappingStart)
        case UInt8(ascii: "]"): return try fetchFlowCollectionEnd(.flowSequenceEnd)
        case UInt8(ascii: "}"): return try fetchFlowCollectionEnd(.flowMappingEnd)
        case UInt8(ascii: ","): return try fetchFlowEntry()
        default: break
        }
        if check("-") && isBlankZ(1) { return try fetchBlockEntry() }
        if check("?") && (flowLevel > 0 || isBlankZ(1)) { return try fetchKey() }
        if check(":") && (flowLevel > 0 || isBlankZ(1)) { return try fetchValue() }
        switch byte() {
        case UInt8(ascii: "*"): return try fetchAnchor(alias: true)
        case UInt8(ascii: "&"): return try fetchAnchor(alias: false)
        case UInt8(ascii: "!"): return try fetchTag()
        case UInt8(ascii: "|") where flowLevel == 0: return try fetchBlockScalar(literal: true)
        case UInt8(ascii: ">") where flowLevel == 0: return try fetchBlockScalar(literal: false)
        case UInt8(ascii: "'"): return try fetchFlowScalar(single: true)
        case UInt8(ascii: "\""): return try fetchFlowScalar(single: false)
        default: break
        }
        // A plain scalar starts with any non-blank character but the indicators; '-', '?' and ':' may start one
        // when followed by a non-blank ('-' in flow too).
        if !(isBlankZ() || Self.isIndicator(byte())) || (check("-") && !isBlank(1))
            || (flowLevel == 0 && (check("?") || check(":")) && !isBlankZ(1))
        {
            return try fetchPlainScalar()
        }
        if isTab() {
            throw YAMLError(
                mark, "found a tab character where indentation is expected; YAML allows only spaces for indentation")
        }
        let character = currentCharacterName()
        throw YAMLError(
            mark,
            "found character \(character) that cannot start any token; quote the value if it starts with \(character)")
    }

    /// The characters that cannot start a plain scalar (unless followed by a non-blank, for `-`, `?` and `:`).
    private static func isIndicator(_ value: UInt8) -> Bool {
        switch value {
        case UInt8(ascii: "-"), UInt8(ascii: "?"), UInt8(ascii: ":"), UInt8(ascii: ","), UInt8(ascii: "["),
            UInt8(ascii: "]"), UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: "#"), UInt8(ascii: "&"),
            UInt8(ascii: "*"), UInt8(ascii: "!"), UInt8(ascii: "|"), UInt8(ascii: ">"), UInt8(ascii: "'"),
            UInt8(ascii: "\""), UInt8(ascii: "%"), UInt8(ascii: "@"), UInt8(ascii: "`"):
            true
        default:
            false
        }
    }

    private mutating func staleSimpleKeys() throws(YAMLError) {
        var level = 0
        while level < simpleKeys.count {
            if simpleKeys[level].possible
                && (simpleKeys[level].mark.line < mark.line || simpleKeys[level].mark.index + 1024 < mark.index)
            {
                if simpleKeys[level].required { throw missingColon(simpleKeys[level].mark) }
                simpleKeys[level].possible = false
            }
            level += 1
        }
    }

    private func missingColon(_ keyMark: Position) -> YAMLError {
        YAMLError(
            mark,
            "could not find expected ':' after the key that starts at \(keyMark.text); a key must fit on one line "
                + "and be followed by ': '", context: keyMark)
    }

    private mutating func saveSimpleKey() throws(YAMLError) {
        let required = flowLevel == 0 && indent == mark.column
        if simpleKeyAllowed {
            let key = SimpleKey(
                possible: true, required: required, tokenNumber: tokensParsed + (tokens.count - head), mark: mark)
            try removeSimpleKey()
            simpleKeys[simpleKeys.count - 1] = key
        }
    }

    private mutating func removeSimpleKey() throws(YAMLError) {
        let last = simpleKeys.count - 1
        if simpleKeys[last].possible && simpleKeys[last].required { throw missingColon(simpleKeys[last].mark) }
        simpleKeys[last].possible = false
    }

    private mutating func increaseFlowLevel() {
        simpleKeys.append(SimpleKey())
        flowLevel += 1
    }

    private mutating func decreaseFlowLevel() {
        if flowLevel > 0 {
            flowLevel -= 1
            simpleKeys.removeLast()
        }
    }

    /// Opens a block collection at `column` if it is deeper than the current indentation; `number` places the token
    /// before an already queued one (a simple key).
    private mutating func rollIndent(_ column: Int, number: Int?, _ kind: Token.Kind, _ at: Position) {
        guard flowLevel == 0, indent < column else { return }
        indents.append(indent)
        indent = column
        if let number {
            insert(kind, number: number, at)
        } else {
            enqueue(kind, at, at)
        }
    }

    /// Closes the block collections deeper than `column`.
    private mutating func unrollIndent(_ column: Int) {
        guard flowLevel == 0 else { return }
        while indent > column {
            enqueue(.blockEnd, mark, mark)
            indent = indents.popLast() ?? -1
        }
    }

    private mutating func fetchStreamStart() {
        indent = -1
        simpleKeys.append(SimpleKey())
        simpleKeyAllowed = true
        streamStartProduced = true
        enqueue(.streamStart, mark, mark)
    }

    private mutating func fetchStreamEnd() throws(YAMLError) {
        if mark.column != 0 {
            mark.column = 0
            mark.line += 1
        }
        unrollIndent(-1)
        try removeSimpleKey()
        simpleKeyAllowed = false
        enqueue(.streamEnd, mark, mark)
    }

    private mutating func fetchDirective() throws(YAMLError) {
        unrollIndent(-1)
        try removeSimpleKey()
        simpleKeyAllowed = false
        tokens.append(try scanDirective())
    }

    private mutating func fetchDocumentIndicator(_ kind: Token.Kind) throws(YAMLError) {
        unrollIndent(-1)
        try removeSimpleKey()
        simpleKeyAllowed = false
        let start = mark
        skip()
        skip()
        skip()
        enqueue(kind, start, mark)
    }

    private mutating func fetchFlowCollectionStart(_ kind: Token.Kind) throws(YAMLError) {
        try saveSimpleKey()
        increaseFlowLevel()
        simpleKeyAllowed = true
        let start = mark
        skip()
        enqueue(kind, start, mark)
    }

    private mutating func fetchFlowCollectionEnd(_ kind: Token.Kind) throws(YAMLError) {
        try removeSimpleKey()
        decreaseFlowLevel()
        simpleKeyAllowed = false
        let start = mark
        skip()
        enqueue(kind, start, mark)
    }

    private mutating func fetchFlowEntry() throws(YAMLError) {
        try removeSimpleKey()
        simpleKeyAllowed = true
        let start = mark
        skip()
        enqueue(.flowEntry, start, mark)
    }

    private mutating func fetchBlockEntry() throws(YAMLError) {
        if flowLevel == 0 {
            if !simpleKeyAllowed {
                throw YAMLError(
                    mark, "a '- ' list item is not allowed here; start the list on its own line, indented under its key")
            }
            rollIndent(mark.column, number: nil, .blockSequenceStart, mark)
        }
        // In flow context the parser reports the '-' with its context.
        try removeSimpleKey()
        simpleKeyAllowed = true
        let start = mark
        skip()
        enqueue(.blockEntry, start, mark)
    }

    private mutating func fetchKey() throws(YAMLError) {
        if flowLevel == 0 {
            if !simpleKeyAllowed {
                throw YAMLError(mark, "a '? ' mapping key is not allowed here; start it on its own line")
            }
            rollIndent(mark.column, number: nil, .blockMappingStart, mark)
        }
        try removeSimpleKey()
        simpleKeyAllowed = flowLevel == 0
        let start = mark
        skip()
        enqueue(.key, start, mark)
    }

    private mutating func fetchValue() throws(YAMLError) {
        let last = simpleKeys.count - 1
        let key = simpleKeys[last]
        if key.possible {
            insert(.key, number: key.tokenNumber, key.mark)
            rollIndent(key.mark.column, number: key.tokenNumber, .blockMappingStart, key.mark)
            simpleKeys[last].possible = false
            simpleKeyAllowed = false
        } else {
            if flowLevel == 0 {
                if !simpleKeyAllowed {
                    throw YAMLError(
                        mark,
                        "mapping values are not allowed here; quote the value if it contains ': ', or check the "
                            + "indentation of the line")
                }
                rollIndent(mark.column, number: nil, .blockMappingStart, mark)
            }
            simpleKeyAllowed = flowLevel == 0
        }
        let start = mark
        skip()
        enqueue(.value, start, mark)
    }

    private mutating func fetchAnchor(alias: Bool) throws(YAMLError) {
        try saveSimpleKey()
        simpleKeyAllowed = false
        tokens.append(try scanAnchor(alias: alias))
    }

    private mutating func fetchTag() throws(YAMLError) {
        try saveSimpleKey()
        simpleKeyAllowed = false
        tokens.append(try scanTag())
    }

    private mutating func fetchBlockScalar(literal: Bool) throws(YAMLError) {
        try removeSimpleKey()
        simpleKeyAllowed = true
        tokens.append(try scanBlockScalar(literal: literal))
    }

    private mutating func fetchFlowScalar(single: Bool) throws(YAMLError) {
        try saveSimpleKey()
        simpleKeyAllowed = false
        tokens.append(try scanFlowScalar(single: single))
    }

    private mutating func fetchPlainScalar() throws(YAMLError) {
        try saveSimpleKey()
        simpleKeyAllowed = false
        tokens.append(try scanPlainScalar())
    }

    /// Skips spaces, comments and line breaks (and a BOM at the start of a line). Tabs are skipped only in flow
    /// context and where no simple key may start (after a value on the same line).
    private mutating func scanToNextToken() throws(YAMLError) {
        while true {
            if mark.column == 0 && isBOM() { skip() }
            while check(" ") || ((flowLevel > 0 || !simpleKeyAllowed) && check("\t")) { skip() }
            if check("#") {
                while !isBreakZ() { skip() }
            }
            if isBreak() {
                skipLine()
                if flowLevel == 0 { simpleKeyAllowed = true }
            } else {
                break
            }
        }
    }
}

/// `U+0001`: a code point as people write it.
func codePointName(_ value: UInt32) -> String {
    let hex = String(value, radix: 16, uppercase: true)
    return "U+" + String(repeating: "0", count: max(0, 4 - hex.count)) + hex
}
