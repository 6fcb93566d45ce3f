/// A MIME multipart message, parsed just far enough for user data: top-level headers, the
/// boundary, and each part's headers and body, with line numbers for messages.
struct MIMEMessage {
    struct Part {
        var headers: [(name: String, value: String, line: Int)]
        var body: [UInt8]
        /// Line of the source where the body starts.
        var bodyLine: Int

        func header(_ name: String) -> String? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.value
        }

        func headerLine(_ name: String) -> Int? {
            headers.first { $0.name.lowercased() == name.lowercased() }?.line
        }
    }

    var parts: [Part]

    /// The media type of a Content-Type value, lower-cased, without parameters.
    static func mediaType(_ contentType: String) -> String {
        String(contentType.split(separator: ";", maxSplits: 1).first ?? "").trimmingWhitespace.lowercased()
    }

    /// A parameter of a Content-Type value (`boundary`), unquoted.
    static func parameter(_ name: String, in contentType: String) -> String? {
        for item in contentType.split(separator: ";").dropFirst() {
            let pair = item.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingWhitespace.lowercased() == name else { continue }
            var value = pair[1].trimmingWhitespace
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                value = String(value.dropFirst().dropLast())
            }
            return value
        }
        return nil
    }

    /// Lines with their terminators kept, so bodies are reproduced byte for byte.
    static func lines(_ bytes: [UInt8]) -> [ArraySlice<UInt8>] {
        var result: [ArraySlice<UInt8>] = []
        var start = 0
        for index in bytes.indices where bytes[index] == 0x0A {
            result.append(bytes[start...index])
            start = index + 1
        }
        if start < bytes.count { result.append(bytes[start...]) }
        return result
    }

    /// A line without its `\r\n` or `\n`.
    static func content(_ line: ArraySlice<UInt8>) -> String {
        var slice = line
        if slice.last == 0x0A { slice = slice.dropLast() }
        if slice.last == 0x0D { slice = slice.dropLast() }
        return String(decoding: slice, as: UTF8.self)
    }

    /// Reads a header block starting at `index`. Returns the headers and the index of the first
    /// body line, or `nil` when the block is not terminated by a blank line before `end`.
    static func headerBlock(
        _ lines: [ArraySlice<UInt8>], from index: Int, to end: Int
    ) -> (headers: [(name: String, value: String, line: Int)], bodyStart: Int, badLine: Int?)? {
        var headers: [(name: String, value: String, line: Int)] = []
        var current = index
        while current < end {
            let text = content(lines[current])
            if text.isEmpty { return (headers, current + 1, nil) }
            if text.first == " " || text.first == "\t", !headers.isEmpty {
                headers[headers.count - 1].value += " " + text.trimmingWhitespace
            } else if let colon = text.firstIndex(of: ":"), colon != text.startIndex,
                !text[..<colon].contains(where: { $0 == " " || $0 == "\t" })
            {
                headers.append(
                    (String(text[..<colon]), text[text.index(after: colon)...].trimmingWhitespace, current + 1))
            } else {
                return (headers, current, current + 1)
            }
            current += 1
        }
        return nil
    }

    /// `nil` when the payload is not MIME (then it is one document). Throws when it announces
    /// itself as MIME but is malformed.
    static func parse(_ bytes: [UInt8], origin: DocumentOrigin) throws(UserDataError) -> MIMEMessage? {
        let lines = lines(bytes)
        guard let first = lines.first else { return nil }
        let firstText = content(first).lowercased()
        let announcesMIME =
            firstText.hasPrefix("mime-version:") || firstText.hasPrefix("content-type: multipart/")
            || firstText.hasPrefix("content-type:multipart/")
        guard let block = headerBlock(lines, from: 0, to: lines.count), block.badLine == nil else {
            if announcesMIME {
                throw UserDataError(
                    .mime, origin, line: headerBlock(lines, from: 0, to: lines.count)?.badLine ?? lines.count,
                    "the MIME headers are not followed by a blank line",
                    hint: "put an empty line between the top-level headers and the first boundary")
            }
            return nil
        }
        guard let contentType = block.headers.first(where: { $0.name.lowercased() == "content-type" }),
            mediaType(contentType.value).hasPrefix("multipart/")
        else {
            if announcesMIME {
                throw UserDataError(
                    .mime, origin, line: 1, "MIME user data without a multipart Content-Type",
                    hint: "use 'Content-Type: multipart/mixed; boundary=\"...\"'")
            }
            return nil
        }
        guard let boundary = parameter("boundary", in: contentType.value), !boundary.isEmpty else {
            throw UserDataError(
                .mime, origin, line: contentType.line, "the multipart Content-Type has no boundary parameter",
                hint: "add boundary=\"...\" to the Content-Type header")
        }
        let delimiter = "--" + boundary
        var delimiterLines: [Int] = []
        var closeLine: Int?
        for index in block.bodyStart..<lines.count {
            let text = content(lines[index])
            let trimmed = String(text.droppingTrailingBlanks)
            if trimmed == delimiter + "--" {
                closeLine = index
                break
            }
            if trimmed == delimiter { delimiterLines.append(index) }
        }
        guard !delimiterLines.isEmpty else {
            throw UserDataError(
                .mime, origin, line: block.bodyStart + 1, "no line starts a part with '\(delimiter)'",
                hint: "each part begins with a line '\(delimiter)' and the message ends with '\(delimiter)--'")
        }
        guard let closeLine else {
            throw UserDataError(
                .mime, origin, line: lines.count, "the boundary is never closed: no '\(delimiter)--' line",
                hint: "end the message with a line '\(delimiter)--'")
        }
        var parts: [Part] = []
        let bounds = delimiterLines + [closeLine]
        for (number, start) in delimiterLines.enumerated() {
            let end = bounds[number + 1]
            let partOrigin = DocumentOrigin(source: origin.source, part: number + 1)
            guard let headers = headerBlock(lines, from: start + 1, to: end) else {
                throw UserDataError(
                    .mime, partOrigin, line: end + 1,
                    "the part's headers are not followed by a blank line before the next boundary",
                    hint: "put an empty line between the part's headers and its body")
            }
            if let bad = headers.badLine {
                throw UserDataError(
                    .mime, partOrigin, line: bad, "'\(content(lines[bad - 1]))' is not a header line",
                    hint: "put an empty line between the part's headers and its body")
            }
            var body = Array(lines[headers.bodyStart..<end].joined())
            // The line break before a delimiter belongs to the delimiter.
            if body.last == 0x0A { body.removeLast() }
            if body.last == 0x0D { body.removeLast() }
            parts.append(Part(headers: headers.headers, body: body, bodyLine: headers.bodyStart + 1))
        }
        return MIMEMessage(parts: parts)
    }
}
