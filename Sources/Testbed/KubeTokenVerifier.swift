import Foundation
import SigV4

/// Checks an EKS bearer token (`k8s-aws-v1.` + base64url of a presigned STS GetCallerIdentity
/// URL) the way aws-iam-authenticator's server does, then, in place of calling STS, verifies the
/// URL's SigV4 query signature as STS would, with `x-k8s-aws-id: <cluster>` as the verifier adds it.
struct KubeTokenVerifier: Sendable {
    static let prefix = "k8s-aws-v1."
    static let maximumTokenLength = 4096
    /// Presigned GetCallerIdentity URLs are good for 15 minutes after `X-Amz-Date`, whatever
    /// `X-Amz-Expires` says.
    static let validity: TimeInterval = 15 * 60
    static let allowedQueryKeys: Set<String> = [
        "action", "version", "x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-expires",
        "x-amz-security-token", "x-amz-signature", "x-amz-signedheaders",
    ]

    /// The cluster name the verifier sends as `x-k8s-aws-id`.
    var clusterName: String
    /// The verifier's region: its partition decides which STS hosts are accepted.
    var region: String

    /// Who signed the URL, as STS would report it.
    struct Caller: Equatable {
        var accessKeyID: String
    }

    /// Why a token was refused: for the log, never for the client (who sees `Unauthorized`).
    struct Failure: Error, Equatable, CustomStringConvertible {
        var reason: String
        init(_ reason: String) { self.reason = reason }
        var description: String { reason }
    }

    /// The token from an `Authorization` header value (`Bearer <token>`).
    static func bearerToken(_ authorization: String?) -> Result<String, Failure> {
        guard let authorization else { return .failure(Failure("no Authorization header (anonymous access is disabled)")) }
        let parts = authorization.trimmingCharacters(in: .whitespaces).split(separator: " ", maxSplits: 2)
        guard parts.count >= 2, parts[0].lowercased() == "bearer", !parts[1].isEmpty else {
            return .failure(Failure("the Authorization header is not a bearer token"))
        }
        return .success(String(parts[1]))
    }

    func verify(
        _ token: String, now: Date, credentials: (String) -> SigV4Credentials?
    ) -> Result<Caller, Failure> {
        guard token.utf8.count <= KubeTokenVerifier.maximumTokenLength else {
            return .failure(Failure("token is longer than \(KubeTokenVerifier.maximumTokenLength) bytes"))
        }
        guard token.hasPrefix(KubeTokenVerifier.prefix) else {
            return .failure(Failure("token does not start with \(KubeTokenVerifier.prefix)"))
        }
        guard let bytes = RawURLBase64.decode(token.dropFirst(KubeTokenVerifier.prefix.count)) else {
            return .failure(Failure("token is not unpadded base64url (RawURLEncoding)"))
        }
        let url = String(decoding: bytes, as: UTF8.self)
        guard let parsed = PresignedURL(url) else { return .failure(Failure("token URL does not parse")) }
        guard parsed.scheme == "https" else {
            return .failure(Failure("token URL scheme is '\(parsed.scheme)', not https"))
        }
        guard let hostRegion = STSHosts.region(ofHost: parsed.host, verifierRegion: region) else {
            return .failure(
                Failure("token URL host '\(parsed.host)' is not an STS endpoint of partition \(Partition(region: region).name)"))
        }
        guard parsed.path == "/" else { return .failure(Failure("token URL path is '\(parsed.path)', not /")) }

        var lower: [String: String] = [:]
        for (name, value) in parsed.query {
            let key = name.lowercased()
            guard KubeTokenVerifier.allowedQueryKeys.contains(key) else {
                return .failure(Failure("token URL has a query parameter that is not allowed: \(name)"))
            }
            guard lower[key] == nil else { return .failure(Failure("token URL repeats the query parameter \(key)")) }
            lower[key] = value
        }
        guard lower["action"] == "GetCallerIdentity" else {
            return .failure(Failure("token URL Action is not GetCallerIdentity"))
        }
        let signedHeaders = (lower["x-amz-signedheaders"] ?? "").split(separator: ";").map { $0.lowercased() }
        guard signedHeaders.contains("x-k8s-aws-id") else {
            return .failure(Failure("token URL X-Amz-SignedHeaders does not include x-k8s-aws-id"))
        }
        guard let expires = lower["x-amz-expires"].flatMap({ Int($0) }) else {
            return .failure(Failure("token URL X-Amz-Expires is missing or not a number"))
        }
        guard (0...900).contains(expires) else {
            return .failure(Failure("token URL X-Amz-Expires \(expires) is out of range (0-900)"))
        }
        guard let rawDate = lower["x-amz-date"], let date = KubeTokenVerifier.parseDate(rawDate) else {
            return .failure(Failure("token URL X-Amz-Date is missing or not YYYYMMDDTHHMMSSZ"))
        }
        guard now <= date.addingTimeInterval(KubeTokenVerifier.validity) else {
            return .failure(Failure("token X-Amz-Date \(rawDate) is expired (15 minute expiration)"))
        }
        return verifySignature(
            parsed, host: parsed.host, hostRegion: hostRegion, date: date, now: now, credentials: credentials)
    }

    /// What STS does with the presigned URL: its own time window, the credential scope, the key
    /// and session token, and the signature over `host` and `x-k8s-aws-id`.
    func verifySignature(
        _ url: PresignedURL, host: String, hostRegion: String, date: Date, now: Date,
        credentials: (String) -> SigV4Credentials?
    ) -> Result<Caller, Failure> {
        if date.timeIntervalSince(now) > KubeTokenVerifier.validity {
            return .failure(Failure("STS: signature not yet current: X-Amz-Date is more than 15 minutes ahead"))
        }
        let request = SigV4Request(
            method: "GET", path: url.path, query: url.query,
            headers: [(name: "Host", value: host), (name: "x-k8s-aws-id", value: clusterName)])
        // The 15-minute window was checked above, as STS checks it for GetCallerIdentity; the
        // verifier then checks the signature as of the signing time (its X-Amz-Expires rule
        // would otherwise cut the window to the 60 s clients ask for).
        switch SigV4Verifier.verify(request, now: date, credentials: credentials) {
        case .failure(let failure):
            return .failure(Failure("STS: \(failure.code): \(failure.message)"))
        case .success(let identity):
            guard identity.presigned else { return .failure(Failure("STS: the URL is not presigned")) }
            guard identity.service == "sts" else {
                return .failure(
                    Failure("STS: SignatureDoesNotMatch: credential scope service '\(identity.service)' is not sts"))
            }
            guard identity.region == hostRegion else {
                return .failure(
                    Failure(
                        "STS: SignatureDoesNotMatch: credential scope region '\(identity.region)' is not the host's (\(hostRegion))"
                    ))
            }
            return .success(Caller(accessKeyID: identity.accessKeyID))
        }
    }

    /// Go's `time.Parse("20060102T150405Z", …)`: exactly that shape, each field in range.
    static func parseDate(_ text: String) -> Date? {
        guard let date = SigV4Signer.parseAmzDate(text), SigV4Signer.amzDate(date) == text else { return nil }
        return date
    }
}

/// The parts of a presigned URL the verifier looks at, as Go's `url.Parse` splits them.
struct PresignedURL {
    var scheme: String
    /// The authority as written (a port stays, and then matches no STS host).
    var host: String
    var path: String
    var query: [(name: String, value: String)]

    init?(_ text: String) {
        guard !text.unicodeScalars.contains(where: { $0.value < 0x20 || $0.value == 0x7f }) else { return nil }
        guard let colon = text.firstIndex(of: ":") else { return nil }
        scheme = text[..<colon].lowercased()
        guard !scheme.isEmpty, scheme.allSatisfy({ $0.isLetter || $0.isNumber || "+-.".contains($0) }) else {
            return nil
        }
        var rest = text[text.index(after: colon)...]
        if let hash = rest.firstIndex(of: "#") { rest = rest[..<hash] }
        var rawQuery: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            rawQuery = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        if rest.hasPrefix("//") {
            rest = rest.dropFirst(2)
            let end = rest.firstIndex(of: "/") ?? rest.endIndex
            var authority = rest[..<end]
            if let at = authority.lastIndex(of: "@") { authority = authority[authority.index(after: at)...] }
            host = String(authority)
            rest = rest[end...]
        } else {
            host = ""
        }
        path = SigV4Signer.percentDecode(rest)
        // Go's ParseQuery: '&' separates, ';' is an error, '+' is a space.
        guard !rawQuery.contains(";") else { return nil }
        query = SigV4Signer.parseQuery(Substring(rawQuery.replacingOccurrences(of: "+", with: "%20")))
    }
}

/// Base64 with the URL alphabet and no padding (Go's `base64.RawURLEncoding`): `=` is an error,
/// CR and LF are skipped, as Go's decoder does.
enum RawURLBase64 {
    static func decode(_ text: Substring) -> [UInt8]? {
        var values: [UInt8] = []
        values.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"): values.append(byte - UInt8(ascii: "A"))
            case UInt8(ascii: "a")...UInt8(ascii: "z"): values.append(byte - UInt8(ascii: "a") + 26)
            case UInt8(ascii: "0")...UInt8(ascii: "9"): values.append(byte - UInt8(ascii: "0") + 52)
            case UInt8(ascii: "-"): values.append(62)
            case UInt8(ascii: "_"): values.append(63)
            case UInt8(ascii: "\r"), UInt8(ascii: "\n"): continue
            default: return nil
            }
        }
        guard values.count % 4 != 1 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(values.count * 3 / 4)
        var index = 0
        while index < values.count {
            let chunk = values[index..<min(index + 4, values.count)]
            let a = chunk[chunk.startIndex]
            let b = chunk[chunk.startIndex + 1]
            out.append(a << 2 | b >> 4)
            if chunk.count > 2 {
                let c = chunk[chunk.startIndex + 2]
                out.append(b << 4 | c >> 2)
                if chunk.count > 3 { out.append(c << 6 | chunk[chunk.startIndex + 3]) }
            }
            index += 4
        }
        return out
    }

    static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
    }
}

/// An AWS partition, as the verifier's region places it.
struct Partition: Equatable {
    var name: String
    var domain: String
    var dualStackDomain: String?

    init(region: String) {
        if region.hasPrefix("cn-") {
            self.init(name: "aws-cn", domain: "amazonaws.com.cn", dualStackDomain: "api.amazonwebservices.com.cn")
        } else if region.hasPrefix("us-gov-") {
            self.init(name: "aws-us-gov", domain: "amazonaws.com", dualStackDomain: "api.aws")
        } else if region.hasPrefix("us-isob-") {
            self.init(name: "aws-iso-b", domain: "sc2s.sgov.gov", dualStackDomain: nil)
        } else if region.hasPrefix("us-iso-") {
            self.init(name: "aws-iso", domain: "c2s.ic.gov", dualStackDomain: nil)
        } else {
            self.init(name: "aws", domain: "amazonaws.com", dualStackDomain: "api.aws")
        }
    }

    init(name: String, domain: String, dualStackDomain: String?) {
        self.name = name
        self.domain = domain
        self.dualStackDomain = dualStackDomain
    }
}

/// The STS hosts a token URL may name: the global `sts.amazonaws.com` (partition aws only), and
/// for any region of the verifier's partition `sts.<region>.<domain>`, its FIPS form
/// `sts-fips.<region>.<domain>` and the dual-stack forms on the partition's dual-stack domain.
enum STSHosts {
    /// The signing region the host implies (us-east-1 for the global host), or nil when the
    /// host is not an STS endpoint of the verifier's partition.
    static func region(ofHost host: String, verifierRegion: String) -> String? {
        let partition = Partition(region: verifierRegion)
        if host == "sts.amazonaws.com" { return partition.name == "aws" ? "us-east-1" : nil }
        let labels = host.split(separator: ".", omittingEmptySubsequences: false)
        guard labels.count >= 3, labels[0] == "sts" || labels[0] == "sts-fips" else { return nil }
        let region = String(labels[1])
        guard isRegionLabel(region), Partition(region: region) == partition else { return nil }
        let domain = labels.dropFirst(2).joined(separator: ".")
        guard domain == partition.domain || (partition.dualStackDomain.map { domain == $0 } ?? false) else {
            return nil
        }
        return region
    }

    /// `^[[:alnum:]]([[:alnum:]-]*[[:alnum:]])?$`
    static func isRegionLabel(_ label: String) -> Bool {
        let characters = Array(label.unicodeScalars)
        guard let first = characters.first, let last = characters.last else { return false }
        func alnum(_ c: Unicode.Scalar) -> Bool { c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c)) }
        return alnum(first) && alnum(last) && characters.allSatisfy { alnum($0) || $0 == "-" }
    }
}
