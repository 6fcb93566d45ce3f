public import FoundationEssentials
import Support

/// Checks a signed request the way an AWS endpoint does: header (`Authorization`) or query
/// (`X-Amz-Signature`) signatures, the date window, the session token. Used by the testbed.
public enum SigV4Verifier {
    /// Who signed, and for what.
    public struct Identity: Sendable, Equatable {
        public var accessKeyID: String
        public var region: String
        public var service: String
        public var signedHeaders: [String]
        public var date: Date
        public var presigned: Bool
    }

    /// Why a request was rejected, with the AWS error code an endpoint answers.
    public struct Failure: Error, Sendable, Equatable {
        public var code: String
        public var message: String
        public var status: Int

        public init(code: String, message: String, status: Int = 403) {
            self.code = code
            self.message = message
            self.status = status
        }
    }

    /// Maximum clock difference between signer and endpoint for header signatures.
    public static let allowedSkew: TimeInterval = 15 * 60

    public static func verify(
        _ request: SigV4Request,
        now: Date,
        credentials lookup: (String) -> SigV4Credentials?
    ) -> Result<Identity, Failure> {
        if let authorization = request.header("Authorization") {
            return verifyHeader(request, authorization: authorization, now: now, lookup: lookup)
        }
        if request.queryValue("X-Amz-Signature") != nil {
            return verifyQuery(request, now: now, lookup: lookup)
        }
        return .failure(
            Failure(code: "MissingAuthenticationToken", message: "Request is missing Authentication Token"))
    }

    struct Scope {
        var accessKeyID: String
        var day: String
        var region: String
        var service: String
    }

    static func parseCredential(_ value: String) -> Scope? {
        let parts = value.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, parts[4] == "aws4_request", !parts[0].isEmpty else { return nil }
        return Scope(accessKeyID: parts[0], day: parts[1], region: parts[2], service: parts[3])
    }

    static func verifyHeader(
        _ request: SigV4Request,
        authorization: String,
        now: Date,
        lookup: (String) -> SigV4Credentials?
    ) -> Result<Identity, Failure> {
        guard authorization.hasPrefix(SigV4Signer.algorithm + " ") else {
            return .failure(
                Failure(
                    code: "IncompleteSignature",
                    message: "Authorization header requires the \(SigV4Signer.algorithm) algorithm", status: 400))
        }
        var fields: [String: String] = [:]
        for item in authorization.dropFirst(SigV4Signer.algorithm.count + 1).split(separator: ",") {
            let trimmed = SigV4Signer.collapseWhitespace(String(item))
            guard let equals = trimmed.firstIndex(of: "=") else { continue }
            fields[String(trimmed[..<equals])] = String(trimmed[trimmed.index(after: equals)...])
        }
        guard let credential = fields["Credential"], let scope = parseCredential(credential),
            let signedHeaderList = fields["SignedHeaders"], let signature = fields["Signature"]
        else {
            return .failure(
                Failure(
                    code: "IncompleteSignature",
                    message: "Authorization header requires 'Credential', 'SignedHeaders' and 'Signature' parameters",
                    status: 400))
        }
        guard let amzDate = request.header("X-Amz-Date"), let date = SigV4Signer.parseAmzDate(amzDate) else {
            return .failure(
                Failure(
                    code: "IncompleteSignature", message: "Authorization header requires existence of a valid X-Amz-Date header",
                    status: 400))
        }
        if abs(date.timeIntervalSince(now)) > allowedSkew {
            return .failure(
                Failure(
                    code: "SignatureDoesNotMatch",
                    message: "Signature expired: \(amzDate) is now earlier or later than the allowed window of 15 minutes"))
        }
        let signedHeaders = signedHeaderList.split(separator: ";").map(String.init)
        guard signedHeaders.contains("host") else {
            return .failure(
                Failure(code: "SignatureDoesNotMatch", message: "'Host' must be a signed header", status: 403))
        }
        let headers = request.headers.filter { signedHeaders.contains($0.name.lowercased()) }
        let payloadHash = request.header("X-Amz-Content-Sha256") ?? Hex.sha256(request.body)
        var unsigned = request
        unsigned.headers = headers
        return check(
            unsigned, scope: scope, amzDate: amzDate, date: date, payloadHash: payloadHash, signature: signature,
            sessionToken: request.header("X-Amz-Security-Token"), presigned: false, signedHeaders: signedHeaders,
            lookup: lookup)
    }

    static func verifyQuery(
        _ request: SigV4Request,
        now: Date,
        lookup: (String) -> SigV4Credentials?
    ) -> Result<Identity, Failure> {
        guard request.queryValue("X-Amz-Algorithm") == SigV4Signer.algorithm,
            let credential = request.queryValue("X-Amz-Credential"), let scope = parseCredential(credential),
            let amzDate = request.queryValue("X-Amz-Date"), let date = SigV4Signer.parseAmzDate(amzDate),
            let signedHeaderList = request.queryValue("X-Amz-SignedHeaders"),
            let signature = request.queryValue("X-Amz-Signature")
        else {
            return .failure(
                Failure(
                    code: "AuthorizationQueryParametersError",
                    message:
                        "Query-string authentication requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders and X-Amz-Expires parameters",
                    status: 400))
        }
        let expires = request.queryValue("X-Amz-Expires").flatMap { Int($0) } ?? 0
        if now.timeIntervalSince(date) > TimeInterval(expires) {
            return .failure(Failure(code: "ExpiredToken", message: "Request has expired", status: 403))
        }
        if date.timeIntervalSince(now) > allowedSkew {
            return .failure(Failure(code: "SignatureDoesNotMatch", message: "Signature not yet current: \(amzDate)"))
        }
        let signedHeaders = signedHeaderList.split(separator: ";").map(String.init)
        var unsigned = request
        unsigned.headers = request.headers.filter { signedHeaders.contains($0.name.lowercased()) }
        unsigned.query = request.query.filter { $0.name != "X-Amz-Signature" }
        let payloadHash = request.header("X-Amz-Content-Sha256") ?? Hex.sha256(request.body)
        return check(
            unsigned, scope: scope, amzDate: amzDate, date: date, payloadHash: payloadHash, signature: signature,
            sessionToken: request.queryValue("X-Amz-Security-Token"), presigned: true, signedHeaders: signedHeaders,
            lookup: lookup)
    }

    // Parameters mirror the request parts they were read from.
    // swift-format-ignore
    static func check(
        _ request: SigV4Request, scope: Scope, amzDate: String, date: Date, payloadHash: String, signature: String,
        sessionToken: String?, presigned: Bool, signedHeaders: [String], lookup: (String) -> SigV4Credentials?
    ) -> Result<Identity, Failure> {
        guard let credentials = lookup(scope.accessKeyID) else {
            return .failure(
                Failure(
                    code: "InvalidClientTokenId", message: "The security token included in the request is invalid."))
        }
        if credentials.sessionToken != nil && credentials.sessionToken != sessionToken {
            return .failure(
                Failure(
                    code: "InvalidClientTokenId", message: "The security token included in the request is invalid."))
        }
        guard scope.day == String(amzDate.prefix(8)) else {
            return .failure(
                Failure(
                    code: "SignatureDoesNotMatch",
                    message: "Credential should be scoped to a valid region and date: \(scope.day) does not match \(amzDate)"))
        }
        let signer = SigV4Signer(credentials: credentials, region: scope.region, service: scope.service)
        let parts = signer.signatureParts(request, amzDate: amzDate, payloadHash: payloadHash)
        guard constantTimeEqual(parts.signature, signature) else {
            return .failure(
                Failure(
                    code: "SignatureDoesNotMatch",
                    message:
                        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
                ))
        }
        return .success(
            Identity(
                accessKeyID: scope.accessKeyID, region: scope.region, service: scope.service,
                signedHeaders: signedHeaders, date: date, presigned: presigned))
    }

    static func constantTimeEqual(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var diff: UInt8 = 0
        for i in x.indices { diff |= x[i] ^ y[i] }
        return diff == 0
    }
}
