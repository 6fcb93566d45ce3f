import Foundation
import Support
import Testing

@testable import SigV4

/// The AWS Signature Version 4 test suite (`../shared/conformance/sigv4`), every case.
///
/// botocore skips `normalize-path/get-space` (its HTTP parser rejects the request line) and the
/// three repeated-query-key cases (its params are a dict). This parser and signer handle all of
/// them, so nothing is skipped here.
@Suite("SigV4 conformance suite")
struct SigV4SuiteTests {
    static let suiteDir = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("shared/conformance/sigv4")

    static var cases: [String] {
        guard let walker = FileManager.default.enumerator(atPath: suiteDir.path) else { return [] }
        return walker.compactMap { $0 as? String }.filter { $0.hasSuffix(".req") }
            .map { String($0.dropLast(4)) }.sorted()
    }

    static func read(_ name: String, _ ext: String) throws -> String {
        try String(contentsOf: suiteDir.appendingPathComponent(name + ext), encoding: .utf8)
    }

    /// Parses a raw `.req`: request line, headers with folded continuation lines, body.
    static func parse(_ raw: String) throws -> SigV4Request {
        let text = raw.replacingOccurrences(of: "\r\n", with: "\n")
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let requestLine = try #require(lines.first)
        let method = try #require(requestLine.split(separator: " ").first)
        let httpRange = try #require(requestLine.range(of: " HTTP/", options: .backwards))
        let target = requestLine[requestLine.index(requestLine.startIndex, offsetBy: method.count + 1)..<httpRange.lowerBound]
        var request = SigV4Request(method: String(method), path: String(target))
        if let question = target.firstIndex(of: "?") {
            request.path = String(target[..<question])
            request.query = SigV4Signer.parseQuery(target[target.index(after: question)...])
        }
        var index = 1
        while index < lines.count, !lines[index].isEmpty {
            let line = lines[index]
            if line.first == " " || line.first == "\t", !request.headers.isEmpty {
                request.headers[request.headers.count - 1].value += " " + line.trimmingCharacters(in: .whitespaces)
            } else if let colon = line.firstIndex(of: ":") {
                request.headers.append((String(line[..<colon]), String(line[line.index(after: colon)...])))
            }
            index += 1
        }
        if index + 1 < lines.count {
            request.body = Array(lines[(index + 1)...].joined(separator: "\n").utf8)
        }
        return request
    }

    @Test("canonical request, string to sign and Authorization match", arguments: cases)
    func signs(name: String) throws {
        let request = try Self.parse(Self.read(name, ".req"))
        let amzDate = try #require(request.header("X-Amz-Date"))
        let date = try #require(SigV4Signer.parseAmzDate(amzDate))
        // get-vanilla-with-session-token signs a token that only its .sreq shows.
        let signed = try Self.parse(Self.read(name, ".sreq"))
        let token = name.hasSuffix("get-vanilla-with-session-token") ? signed.header("X-Amz-Security-Token") : nil
        let signer = SigV4Signer(
            credentials: SigV4Credentials(
                accessKeyID: "AKIDEXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
                sessionToken: token),
            region: "us-east-1", service: "service")
        var withToken = request
        if let token { withToken.headers.append(("X-Amz-Security-Token", token)) }
        let parts = signer.signatureParts(
            withToken, amzDate: amzDate, payloadHash: Hex.sha256(request.body))
        #expect(parts.canonicalRequest == (try Self.read(name, ".creq")))
        #expect(parts.stringToSign == (try Self.read(name, ".sts")))
        let result = signer.sign(request, date: date, signSessionToken: !name.hasSuffix("post-sts-header-after"))
        #expect(result.header("Authorization") == (try Self.read(name, ".authz")))

        // The verifier accepts what the signer produced, and rejects a changed secret.
        let lookup: (String) -> SigV4Credentials? = { $0 == "AKIDEXAMPLE" ? signer.credentials : nil }
        let verified = SigV4Verifier.verify(result, now: date, credentials: lookup)
        #expect((try? verified.get())?.accessKeyID == "AKIDEXAMPLE")
        var wrong = signer.credentials
        wrong.secretAccessKey += "x"
        let rejected = SigV4Verifier.verify(result, now: date, credentials: { _ in wrong })
        guard case .failure(let failure) = rejected else {
            Issue.record("a wrong secret was accepted")
            return
        }
        #expect(failure.code == "SignatureDoesNotMatch")
    }

    @Test("the suite is all there")
    func suiteIsPresent() {
        #expect(Self.cases.count == 34)
    }
}
