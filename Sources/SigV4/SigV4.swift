import Crypto
public import FoundationEssentials
import Support

/// Credentials that sign a request. Never logged; `description` hides the secrets.
public struct SigV4Credentials: Sendable, Hashable, CustomStringConvertible {
    public var accessKeyID: String
    public var secretAccessKey: String
    public var sessionToken: String?

    public init(accessKeyID: String, secretAccessKey: String, sessionToken: String? = nil) {
        self.accessKeyID = accessKeyID
        self.secretAccessKey = secretAccessKey
        self.sessionToken = sessionToken
    }

    public var description: String {
        "SigV4Credentials(accessKeyID: \(accessKeyID), secretAccessKey: <redacted>, sessionToken: \(sessionToken == nil ? "none" : "<redacted>"))"
    }
}

/// One HTTP request as the signer sees it.
///
/// `path` is the path exactly as it goes on the wire (percent-encoded or not);
/// the canonical URI encodes it once more, as AWS services other than S3 expect.
/// `query` holds decoded name/value pairs in wire order; repeated names are allowed.
public struct SigV4Request: Sendable {
    public var method: String
    public var path: String
    public var query: [(name: String, value: String)]
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]

    public init(
        method: String,
        path: String,
        query: [(name: String, value: String)] = [],
        headers: [(name: String, value: String)] = [],
        body: [UInt8] = []
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
    }

    /// The first value of a header, case-insensitively.
    public func header(_ name: String) -> String? {
        let lower = name.lowercased()
        return headers.first { $0.name.lowercased() == lower }?.value
    }

    /// The first value of a query parameter.
    public func queryValue(_ name: String) -> String? {
        query.first { $0.name == name }?.value
    }
}

/// AWS Signature Version 4 (`AWS4-HMAC-SHA256`): a pure value, the signing time is a parameter.
public struct SigV4Signer: Sendable {
    public static let algorithm = "AWS4-HMAC-SHA256"
    public static let unsignedPayload = "UNSIGNED-PAYLOAD"
    /// Headers never signed: they are changed by proxies or added after signing.
    static let unsignedHeaders: Set<String> = ["authorization", "user-agent", "expect", "x-amzn-trace-id"]

    public var credentials: SigV4Credentials
    public var region: String
    public var service: String

    public init(credentials: SigV4Credentials, region: String, service: String) {
        self.credentials = credentials
        self.region = region
        self.service = service
    }

    // MARK: Header signing

    /// Returns the request with `X-Amz-Date`, `X-Amz-Security-Token` (when the credentials have one)
    /// and `Authorization` added. A `Host` header must already be present.
    /// With `signSessionToken: false` the token is added after signing (some services want that).
    public func sign(_ request: SigV4Request, date: Date, signSessionToken: Bool = true) -> SigV4Request {
        var request = request
        let amzDate = SigV4Signer.amzDate(date)
        request.headers.removeAll { ["x-amz-date", "authorization"].contains($0.name.lowercased()) }
        request.headers.append((name: "X-Amz-Date", value: amzDate))
        if let token = credentials.sessionToken, signSessionToken {
            request.headers.removeAll { $0.name.lowercased() == "x-amz-security-token" }
            request.headers.append((name: "X-Amz-Security-Token", value: token))
        }
        let parts = signatureParts(request, amzDate: amzDate, payloadHash: Hex.sha256(request.body))
        request.headers.append((name: "Authorization", value: authorizationHeader(parts)))
        if let token = credentials.sessionToken, !signSessionToken {
            request.headers.append((name: "X-Amz-Security-Token", value: token))
        }
        return request
    }

    /// Authorization header value for already-computed parts.
    func authorizationHeader(_ parts: SignatureParts) -> String {
        "\(SigV4Signer.algorithm) Credential=\(credentials.accessKeyID)/\(parts.scope), SignedHeaders=\(parts.signedHeaders), Signature=\(parts.signature)"
    }

    // MARK: Query presigning

    /// Presigns a request in the query string (as botocore's `SigV4QueryAuth` does) and returns
    /// the full query string, in wire order, ending with `X-Amz-Signature`.
    /// The payload hash is that of the body (empty for a GET), as botocore signs every service but S3;
    /// `request.headers` must include `Host`.
    public func presignedQuery(_ request: SigV4Request, date: Date, expires: Int) -> String {
        var request = request
        let amzDate = SigV4Signer.amzDate(date)
        let scope = credentialScope(amzDate: amzDate)
        let signedHeaders = SigV4Signer.canonicalHeaders(request.headers).signed
        request.query.append(contentsOf: [
            (name: "X-Amz-Algorithm", value: SigV4Signer.algorithm),
            (name: "X-Amz-Credential", value: "\(credentials.accessKeyID)/\(scope)"),
            (name: "X-Amz-Date", value: amzDate),
            (name: "X-Amz-Expires", value: String(expires)),
            (name: "X-Amz-SignedHeaders", value: signedHeaders),
        ])
        if let token = credentials.sessionToken {
            request.query.append((name: "X-Amz-Security-Token", value: token))
        }
        let parts = signatureParts(request, amzDate: amzDate, payloadHash: Hex.sha256(request.body))
        request.query.append((name: "X-Amz-Signature", value: parts.signature))
        return request.query.map { "\(SigV4Signer.uriEncode($0.name))=\(SigV4Signer.uriEncode($0.value))" }
            .joined(separator: "&")
    }

    // MARK: The algorithm

    struct SignatureParts {
        var canonicalRequest: String
        var stringToSign: String
        var scope: String
        var signedHeaders: String
        var signature: String
    }

    func credentialScope(amzDate: String) -> String {
        "\(amzDate.prefix(8))/\(region)/\(service)/aws4_request"
    }

    func signatureParts(_ request: SigV4Request, amzDate: String, payloadHash: String) -> SignatureParts {
        let headers = SigV4Signer.canonicalHeaders(request.headers)
        let canonicalRequest = [
            request.method.uppercased(),
            SigV4Signer.canonicalURI(request.path),
            SigV4Signer.canonicalQuery(request.query),
            headers.canonical,
            headers.signed,
            payloadHash,
        ].joined(separator: "\n")
        let scope = credentialScope(amzDate: amzDate)
        let stringToSign = [
            SigV4Signer.algorithm, amzDate, scope, Hex.sha256(Array(canonicalRequest.utf8)),
        ].joined(separator: "\n")
        let key = signingKey(day: String(amzDate.prefix(8)))
        let signature = Hex.encode(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: key))
        return SignatureParts(
            canonicalRequest: canonicalRequest,
            stringToSign: stringToSign,
            scope: scope,
            signedHeaders: headers.signed,
            signature: signature
        )
    }

    func signingKey(day: String) -> SymmetricKey {
        func hmac(_ key: SymmetricKey, _ data: String) -> SymmetricKey {
            SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(data.utf8), using: key))
        }
        var key = SymmetricKey(data: Array("AWS4\(credentials.secretAccessKey)".utf8))
        for part in [day, region, service, "aws4_request"] {
            key = hmac(key, part)
        }
        return key
    }

    /// Lower-cased names, values trimmed with inner whitespace runs collapsed, repeated names joined by `,`.
    static func canonicalHeaders(_ headers: [(name: String, value: String)]) -> (canonical: String, signed: String) {
        var merged: [String: [String]] = [:]
        for (name, value) in headers {
            let lower = name.lowercased()
            guard !unsignedHeaders.contains(lower) else { continue }
            merged[lower, default: []].append(collapseWhitespace(value))
        }
        let names = merged.keys.sorted()
        let canonical = names.map { "\($0):\(merged[$0, default: []].joined(separator: ","))\n" }.joined()
        return (canonical, names.joined(separator: ";"))
    }

    static func collapseWhitespace(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }).joined(separator: " ")
    }

    /// Removes `.` and `..` segments and empty segments, keeps a trailing slash, then encodes
    /// every byte outside the unreserved set (a `%` already on the wire becomes `%25`).
    static func canonicalURI(_ path: String) -> String {
        var segments: [Substring] = []
        for segment in path.split(separator: "/", omittingEmptySubsequences: true) {
            switch segment {
            case ".": continue
            case "..": _ = segments.popLast()
            default: segments.append(segment)
            }
        }
        var normalized = "/" + segments.joined(separator: "/")
        if path.hasSuffix("/") && !segments.isEmpty { normalized += "/" }
        return uriEncode(normalized, keepSlash: true)
    }

    static func canonicalQuery(_ query: [(name: String, value: String)]) -> String {
        let encoded: [(name: String, value: String)] = query.map { (uriEncode($0.name), uriEncode($0.value)) }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        return sorted.map { $0.name + "=" + $0.value }.joined(separator: "&")
    }

    /// RFC 3986 encoding as SigV4 defines it: everything but `A-Za-z0-9-._~` is `%XX` (upper-case hex).
    public static func uriEncode(_ string: String, keepSlash: Bool = false) -> String {
        var out = ""
        out.reserveCapacity(string.utf8.count)
        for byte in string.utf8 {
            if isUnreserved(byte) || (keepSlash && byte == UInt8(ascii: "/")) {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out.append("%")
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0f)])
            }
        }
        return out
    }

    static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x41...0x5A, 0x61...0x7A, 0x30...0x39: true  // A-Z a-z 0-9
        case UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"): true
        default: false
        }
    }

    /// Decodes `%XX` escapes (and nothing else); invalid escapes are kept as they are.
    public static func percentDecode(_ string: Substring) -> String {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(string.utf8.count)
        var iterator = Array(string.utf8)[...]
        while let byte = iterator.popFirst() {
            if byte == UInt8(ascii: "%"), iterator.count >= 2,
                let high = hexValue(iterator[iterator.startIndex]),
                let low = hexValue(iterator[iterator.startIndex + 1])
            {
                bytes.append(high << 4 | low)
                iterator = iterator.dropFirst(2)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Splits a raw query string into decoded pairs, in order.
    public static func parseQuery(_ raw: Substring) -> [(name: String, value: String)] {
        raw.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            if let equals = pair.firstIndex(of: "=") {
                return (percentDecode(pair[..<equals]), percentDecode(pair[pair.index(after: equals)...]))
            }
            return (percentDecode(pair), "")
        }
    }

    private static let hexDigits: [Character] = Array("0123456789ABCDEF")

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// `YYYYMMDDTHHMMSSZ` in UTC.
    public static func amzDate(_ date: Date) -> String {
        UTCTime.basic(date)
    }

    /// Parses `YYYYMMDDTHHMMSSZ`.
    public static func parseAmzDate(_ string: String) -> Date? {
        let chars = Array(string.utf8)
        guard chars.count == 16, chars[8] == UInt8(ascii: "T"), chars[15] == UInt8(ascii: "Z") else { return nil }
        func number(_ range: Range<Int>) -> Int? { Int(String(decoding: chars[range], as: UTF8.self)) }
        guard let year = number(0..<4), let month = number(4..<6), let day = number(6..<8),
            let hour = number(9..<11), let minute = number(11..<13), let second = number(13..<15)
        else { return nil }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .gmt
        return calendar.date(
            from: DateComponents(year: year, month: month, day: day, hour: hour, minute: minute, second: second))
    }
}
