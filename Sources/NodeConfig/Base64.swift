/// Standard base64 (RFC 4648 with padding), as Go's `base64.StdEncoding`.
enum Base64 {
    static func value(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "+"): 62
        case UInt8(ascii: "/"): 63
        default: nil
        }
    }

    /// The decoded bytes when the whole payload is valid base64 (`\r` and `\n` ignored, as Go's
    /// decoder does); `nil` means "not base64, keep as is". Empty input is not base64 here.
    static func decodeIfWholePayload(_ bytes: [UInt8]) -> [UInt8]? {
        guard !bytes.isEmpty else { return nil }
        return decode(bytes, ignoringWhitespace: false)
    }

    /// Decodes padded base64. `ignoringWhitespace` skips spaces and tabs as well as line breaks.
    static func decode(_ bytes: [UInt8], ignoringWhitespace: Bool) -> [UInt8]? {
        var symbols: [UInt8] = []
        symbols.reserveCapacity(bytes.count)
        for byte in bytes {
            if byte == 0x0A || byte == 0x0D { continue }
            if ignoringWhitespace && (byte == 0x20 || byte == 0x09) { continue }
            symbols.append(byte)
        }
        guard !symbols.isEmpty, symbols.count % 4 == 0 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(symbols.count / 4 * 3)
        var index = 0
        while index < symbols.count {
            let chunk = symbols[index..<index + 4]
            let isLast = index + 4 == symbols.count
            let padding = chunk.reversed().prefix { $0 == UInt8(ascii: "=") }.count
            guard padding <= 2, padding == 0 || isLast else { return nil }
            var values: [UInt8] = []
            for byte in chunk.prefix(4 - padding) {
                guard let value = value(byte) else { return nil }
                values.append(value)
            }
            let a = values[0]
            let b = values[1]
            out.append(a << 2 | b >> 4)
            if values.count > 2 {
                out.append((b & 0x0F) << 4 | values[2] >> 2)
                if values.count > 3 { out.append((values[2] & 0x03) << 6 | values[3]) }
            }
            index += 4
        }
        return out
    }
}

/// Quoted-printable (RFC 2045) as Go's multipart reader decodes it.
enum QuotedPrintable {
    static func decode(_ bytes: [UInt8], origin: DocumentOrigin) throws(UserDataError) -> [UInt8] {
        var out: [UInt8] = []
        var index = 0
        var line = origin.firstLine
        while index < bytes.count {
            let byte = bytes[index]
            if byte == 0x0A { line += 1 }
            guard byte == UInt8(ascii: "=") else {
                out.append(byte)
                index += 1
                continue
            }
            // Soft line break: "=" at the end of a line (optionally followed by spaces).
            var look = index + 1
            while look < bytes.count, bytes[look] == 0x20 || bytes[look] == 0x09 { look += 1 }
            if look == bytes.count {
                index = look
                continue
            }
            if bytes[look] == 0x0A || (bytes[look] == 0x0D && look + 1 < bytes.count && bytes[look + 1] == 0x0A) {
                index = bytes[look] == 0x0A ? look + 1 : look + 2
                line += 1
                continue
            }
            guard index + 2 < bytes.count, let high = hex(bytes[index + 1]), let low = hex(bytes[index + 2]) else {
                throw UserDataError(
                    .quotedPrintable, origin, line: line, "invalid quoted-printable escape",
                    hint: "escape '=' as =3D, or drop the part's Content-Transfer-Encoding header")
            }
            out.append(high << 4 | low)
            index += 3
        }
        return out
    }

    static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        default: nil
        }
    }
}
