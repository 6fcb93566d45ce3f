/// Where a configuration document came from, for messages: `user data part 2
/// (application/node.eks.aws)`, `file /etc/eks/nodeadm.d/10-x.yaml`.
public struct DocumentOrigin: Sendable, Equatable, CustomStringConvertible {
    /// `user data`, or `file PATH`.
    public var source: String
    /// 1-based MIME part number, `nil` for a document that is not MIME.
    public var part: Int?
    public var contentType: String?
    /// Line of the source where the document's body starts (1-based; after base64/gzip of the
    /// whole payload, the line in the decoded text).
    public var firstLine: Int

    public init(source: String, part: Int? = nil, contentType: String? = nil, firstLine: Int = 1) {
        self.source = source
        self.part = part
        self.contentType = contentType
        self.firstLine = firstLine
    }

    public var description: String {
        guard let part else { return source }
        return "\(source) part \(part)" + (contentType.map { " (\($0))" } ?? "")
    }
}

/// One NodeConfig document, not yet parsed.
public struct RawDocument: Sendable, Equatable {
    public var origin: DocumentOrigin
    public var bytes: [UInt8]

    public init(origin: DocumentOrigin, bytes: [UInt8]) {
        self.origin = origin
        self.bytes = bytes
    }
}

/// User data (or a config file) that cannot be turned into documents. The description names
/// the source, MIME part and line, and says what to do.
public struct UserDataError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        case tooLarge, gzip, base64, mime, quotedPrintable
        /// MIME user data without an `application/node.eks.aws` part (nodeadm tolerates this in a chain).
        case noNodeConfigPart
    }

    public var kind: Kind
    public var origin: DocumentOrigin
    public var line: Int?
    public var message: String
    public var hint: String?

    public init(_ kind: Kind, _ origin: DocumentOrigin, line: Int? = nil, _ message: String, hint: String? = nil) {
        self.kind = kind
        self.origin = origin
        self.line = line
        self.message = message
        self.hint = hint
    }

    public var description: String {
        var text = "\(origin)"
        if let line { text += ": line \(line)" }
        text += ": \(message)"
        if let hint { text += " — \(hint)" }
        return text
    }
}

/// Turns user data into NodeConfig documents the way nodeadm does: the whole payload base64-decoded
/// when it is valid standard base64, gunzipped when it starts with the gzip magic, then either a MIME
/// multipart message (only `application/node.eks.aws` parts are kept, each with its own
/// transfer encoding, base64 and gzip) or one document.
///
/// Unlike nodeadm, text that announces itself as MIME (`MIME-Version:` or a multipart
/// `Content-Type:` header first) but is malformed is an error naming the part and line, never a
/// silent fallback to YAML (nodeadm #1701).
public enum UserData {
    public static let mediaType = "application/node.eks.aws"
    /// Largest payload accepted, before and after decompression (EC2 caps raw user data at 16 KiB;
    /// files and gzip get room, a decompression bomb does not).
    public static let maxBytes = 1 << 20

    public static func documents(_ data: [UInt8], source: String) throws(UserDataError) -> [RawDocument] {
        let origin = DocumentOrigin(source: source)
        let payload = try decodeLayers(data, origin: origin)
        if let message = try MIMEMessage.parse(payload, origin: origin) {
            return try nodeConfigParts(message, origin: origin)
        }
        return [RawDocument(origin: origin, bytes: payload)]
    }

    /// base64 (whole payload), then gzip, each applied when the bytes say so.
    static func decodeLayers(_ data: [UInt8], origin: DocumentOrigin) throws(UserDataError) -> [UInt8] {
        guard data.count <= maxBytes else {
            throw UserDataError(
                .tooLarge, origin, "\(data.count) bytes is more than the \(maxBytes) bytes accepted",
                hint: "EC2 user data is at most 16 KiB; put large settings in files under /etc/eks/nodeadm.d")
        }
        var bytes = data
        if let decoded = Base64.decodeIfWholePayload(bytes) { bytes = decoded }
        if Gzip.isGzip(bytes) {
            do {
                bytes = try Gzip.decompress(bytes, limit: maxBytes)
            } catch {
                let tooLarge = "\(error)".contains("more than")
                throw UserDataError(
                    .gzip, origin, "gzip data cannot be decompressed: \(error)",
                    hint: tooLarge
                        ? "keep user data under \(maxBytes) bytes uncompressed; put large settings in files under /etc/eks/nodeadm.d"
                        : "compress with `gzip -c` and do not truncate the result")
            }
        }
        return bytes
    }

    static func nodeConfigParts(_ message: MIMEMessage, origin: DocumentOrigin) throws(UserDataError) -> [RawDocument] {
        var documents: [RawDocument] = []
        var seen: [String] = []
        for (index, part) in message.parts.enumerated() {
            let number = index + 1
            guard let contentType = part.header("Content-Type") else { continue }
            let mediaType = MIMEMessage.mediaType(contentType)
            seen.append(mediaType)
            guard mediaType == Self.mediaType else { continue }
            let partOrigin = DocumentOrigin(
                source: origin.source, part: number, contentType: Self.mediaType, firstLine: part.bodyLine)
            var body = part.body
            switch part.header("Content-Transfer-Encoding")?.lowercased().trimmingWhitespace {
            case nil, "", "7bit", "8bit", "binary":
                break
            case "quoted-printable":
                body = try QuotedPrintable.decode(body, origin: partOrigin)
            case "base64":
                guard let decoded = Base64.decode(body, ignoringWhitespace: true) else {
                    throw UserDataError(
                        .base64, partOrigin, line: part.bodyLine, "the body is not valid base64",
                        hint: "encode the part with `base64` or drop its Content-Transfer-Encoding header")
                }
                body = decoded
            case let other?:
                throw UserDataError(
                    .mime, partOrigin, line: part.headerLine("Content-Transfer-Encoding"),
                    "unknown Content-Transfer-Encoding '\(other)'", hint: "use 7bit, base64 or quoted-printable")
            }
            documents.append(RawDocument(origin: partOrigin, bytes: try decodeLayers(body, origin: partOrigin)))
        }
        guard !documents.isEmpty else {
            let found = seen.isEmpty ? "no part has a Content-Type" : "parts are " + seen.joined(separator: ", ")
            throw UserDataError(
                .noNodeConfigPart, origin, "MIME user data has no \(Self.mediaType) part (\(found))",
                hint: "give the NodeConfig part the header 'Content-Type: \(Self.mediaType)'")
        }
        return documents
    }
}

extension StringProtocol {
    /// Without leading and trailing whitespace. Indices, not reversed views: `String(_:)` of a doubly reversed
    /// sequence appends one Character at a time through unspecialized generics, for every header of the user data.
    var trimmingWhitespace: String {
        var start = startIndex
        while start < endIndex, self[start].isWhitespace { start = index(after: start) }
        var end = endIndex
        while end > start, self[index(before: end)].isWhitespace { end = index(before: end) }
        return String(self[start..<end])
    }

    /// Without trailing spaces and tabs (a boundary line's transport padding).
    var droppingTrailingBlanks: SubSequence {
        var end = endIndex
        while end > startIndex {
            let before = index(before: end)
            guard self[before] == " " || self[before] == "\t" else { break }
            end = before
        }
        return self[startIndex..<end]
    }
}
