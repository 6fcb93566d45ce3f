extension Scanner {
    // MARK: - Directives

    /// `%YAML 1.2` or `%TAG !e! tag:example.com,2000:` and the rest of the line.
    mutating func scanDirective() throws(YAMLError) -> Token {
        let start = mark
        skip()
        var name: [UInt8] = []
        while isAlpha() { read(into: &name) }
        if name.isEmpty {
            throw YAMLError(mark, "expected a directive name after '%' at \(start.text), such as %YAML 1.2")
        }
        if !isBlankZ() {
            throw YAMLError(
                mark,
                "found \(currentCharacterName()) in the directive name at \(start.text); a directive name is letters "
                    + "and digits")
        }
        let kind: Token.Kind
        switch String(decoding: name, as: UTF8.self) {
        case "YAML":
            while isBlank() { skip() }
            let major = try scanVersionNumber(start)
            if !check(".") {
                throw YAMLError(mark, "expected a version such as 1.2 in the %YAML directive at \(start.text)")
            }
            skip()
            let minor = try scanVersionNumber(start)
            kind = .versionDirective(major: major, minor: minor)
        case "TAG":
            while isBlank() { skip() }
            let handle = try scanTagHandle(directive: true, start)
            if !isBlank() {
                throw YAMLError(mark, "expected a space after the tag handle in the %TAG directive at \(start.text)")
            }
            while isBlank() { skip() }
            let prefix = try scanTagURI(verbatim: true, directive: true, head: nil, start)
            if !isBlankZ() {
                throw YAMLError(
                    mark, "expected a space or a line break after the prefix of the %TAG directive at \(start.text)")
            }
            kind = .tagDirective(
                handle: String(decoding: handle, as: UTF8.self), prefix: String(decoding: prefix, as: UTF8.self))
        default:
            throw YAMLError(
                mark,
                "unknown directive %\(String(decoding: name, as: UTF8.self)) at \(start.text); only %YAML and %TAG "
                    + "exist")
        }
        let end = mark
        while isBlank() { skip() }
        if check("#") {
            while !isBreakZ() { skip() }
        }
        if !isBreakZ() {
            throw YAMLError(mark, "expected a comment or the end of the line after the directive at \(start.text)")
        }
        if isBreak() { skipLine() }
        return Token(kind: kind, start: start, end: end)
    }

    private mutating func scanVersionNumber(_ start: Position) throws(YAMLError) -> Int {
        var value = 0
        var length = 0
        while isDigit() {
            length += 1
            if length > 9 {
                throw YAMLError(mark, "the version number in the %YAML directive at \(start.text) is too long")
            }
            value = value * 10 + Int(byte() - 0x30)
            skip()
        }
        if length == 0 {
            throw YAMLError(mark, "expected a version number such as 1.2 in the %YAML directive at \(start.text)")
        }
        return value
    }

    // MARK: - Anchors and aliases

    /// `&name` or `*name`: letters, digits, `-` and `_`.
    mutating func scanAnchor(alias: Bool) throws(YAMLError) -> Token {
        let start = mark
        skip()
        var name: [UInt8] = []
        while isAlpha() { read(into: &name) }
        let end = mark
        let terminated =
            isBlankZ() || check("?") || check(":") || check(",") || check("]") || check("}") || check("%")
            || check("@") || check("`")
        if name.isEmpty || !terminated {
            throw YAMLError(
                mark,
                "found \(currentCharacterName()) in the \(alias ? "alias" : "anchor") at \(start.text); "
                    + "\(alias ? "alias" : "anchor") names are ASCII letters, digits, '-' and '_'")
        }
        let text = String(decoding: name, as: UTF8.self)
        return Token(kind: alias ? .alias(text) : .anchor(text), start: start, end: end)
    }

    // MARK: - Tags

    /// `!<verbatim>`, `!suffix`, `!handle!suffix` or `!`.
    mutating func scanTag() throws(YAMLError) -> Token {
        let start = mark
        var handle: [UInt8]
        var suffix: [UInt8]
        if check("<", 1) {
            handle = []
            skip()
            skip()
            suffix = try scanTagURI(verbatim: true, directive: false, head: nil, start)
            if !check(">") {
                throw YAMLError(mark, "expected '>' to close the tag that starts at \(start.text)")
            }
            skip()
        } else {
            handle = try scanTagHandle(directive: false, start)
            if handle.count > 1 && handle.first == 0x21 && handle.last == 0x21 {
                suffix = try scanTagURI(verbatim: false, directive: false, head: nil, start)
            } else {
                suffix = try scanTagURI(verbatim: false, directive: false, head: handle, start)
                handle = [0x21]
                if suffix.isEmpty {
                    // The non-specific tag '!'.
                    swap(&handle, &suffix)
                }
            }
        }
        if !isBlankZ() && !(flowLevel > 0 && check(",")) {
            throw YAMLError(
                mark, "found \(currentCharacterName()) after the tag at \(start.text); put a space after a tag")
        }
        return Token(
            kind: .tag(handle: String(decoding: handle, as: UTF8.self), suffix: String(decoding: suffix, as: UTF8.self)),
            start: start, end: mark)
    }

    /// `!`, `!!` or `!name!`.
    private mutating func scanTagHandle(directive: Bool, _ start: Position) throws(YAMLError) -> [UInt8] {
        guard check("!") else {
            throw YAMLError(mark, "expected '!' to start the tag handle in the directive at \(start.text)")
        }
        var handle: [UInt8] = []
        read(into: &handle)
        while isAlpha() { read(into: &handle) }
        if check("!") {
            read(into: &handle)
        } else if directive && handle != [0x21] {
            throw YAMLError(mark, "expected '!' to end the tag handle in the %TAG directive at \(start.text)")
        }
        return handle
    }

    /// The URI characters of a tag; `%XX` escapes are decoded. `head` is a handle that turned out to be part of the
    /// URI (without its leading `!`). Verbatim tags and prefixes may also contain `,`, `[` and `]`.
    private mutating func scanTagURI(verbatim: Bool, directive: Bool, head: [UInt8]?, _ start: Position)
        throws(YAMLError) -> [UInt8]
    {
        var length = head?.count ?? 0
        var uri: [UInt8] = []
        if let head, head.count > 1 { uri.append(contentsOf: head.dropFirst()) }
        while isAlpha() || isURICharacter() || (verbatim && (check(",") || check("[") || check("]"))) {
            if check("%") {
                try scanURIEscapes(into: &uri, start)
            } else {
                read(into: &uri)
            }
            length += 1
        }
        if length == 0 {
            throw YAMLError(mark, "expected a tag name after '!' at \(start.text)")
        }
        return uri
    }

    private mutating func isURICharacter() -> Bool {
        switch byte() {
        case UInt8(ascii: ";"), UInt8(ascii: "/"), UInt8(ascii: "?"), UInt8(ascii: ":"), UInt8(ascii: "@"),
            UInt8(ascii: "&"), UInt8(ascii: "="), UInt8(ascii: "+"), UInt8(ascii: "$"), UInt8(ascii: "."),
            UInt8(ascii: "%"), UInt8(ascii: "!"), UInt8(ascii: "~"), UInt8(ascii: "*"), UInt8(ascii: "'"),
            UInt8(ascii: "("), UInt8(ascii: ")"):
            true
        default:
            false
        }
    }

    /// `%E2%82%AC`: the escaped octets of one UTF-8 character.
    private mutating func scanURIEscapes(into uri: inout [UInt8], _ start: Position) throws(YAMLError) {
        var width = 0
        repeat {
            guard check("%"), let high = hexValue(1), let low = hexValue(2) else {
                throw YAMLError(mark, "expected two hexadecimal digits after '%' in the tag at \(start.text)")
            }
            let octet = UInt8(high << 4 + low)
            if width == 0 {
                width =
                    octet & 0x80 == 0 ? 1 : octet & 0xE0 == 0xC0 ? 2 : octet & 0xF0 == 0xE0 ? 3 : octet & 0xF8 == 0xF0 ? 4 : 0
                if width == 0 {
                    throw YAMLError(mark, "the escape in the tag at \(start.text) does not start a UTF-8 character")
                }
            } else if octet & 0xC0 != 0x80 {
                throw YAMLError(mark, "the escape in the tag at \(start.text) does not continue a UTF-8 character")
            }
            uri.append(octet)
            skip()
            skip()
            skip()
            width -= 1
        } while width > 0
    }
}
