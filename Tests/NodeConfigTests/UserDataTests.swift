import Foundation
import NodeConfig
import TestSupport
import Testing

@Suite("user data decoding: base64, gzip, MIME")
struct UserDataTests {
    static let yaml = """
        apiVersion: node.eks.aws/v1alpha1
        kind: NodeConfig
        spec:
          cluster:
            name: my-cluster

        """

    /// Bytes made by Python, a peer that is not this code: base64, gzip, MIME with transfer encodings.
    static func python(_ script: String, input: String = yaml) async throws -> [UInt8] {
        let result = try await ChildProcess.run(
            [
                "python3", "-c",
                "import sys, base64, gzip, email.mime.multipart, email.mime.text, email.mime.application\n" + script,
            ],
            stdin: input)
        guard result.status == 0 else { throw TestSupportError("python failed: \(result.stderr)") }
        return Array(result.stdout.utf8)
    }

    @Test("plain YAML is one document")
    func plain() throws {
        let documents = try UserData.documents(Array(Self.yaml.utf8), source: "user data")
        #expect(documents == [RawDocument(origin: DocumentOrigin(source: "user data"), bytes: Array(Self.yaml.utf8))])
    }

    @Test("the aemm instance's base64 user data decodes to its NodeConfig")
    func base64Payload() throws {
        let url = Paths.packageRoot.appendingPathComponent("Sources/Testbed/Resources/aemm-default-config.json")
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        let userdata = try #require(
            ((object?["userdata"] as? [String: Any])?["values"] as? [String: Any])?["userdata"] as? String)
        let documents = try UserData.documents(Array(userdata.utf8), source: "user data")
        let text = String(decoding: try #require(documents.first).bytes, as: UTF8.self)
        #expect(text.contains("name: my-cluster"))
        #expect(text.contains("cidr: 10.100.0.0/16"))
    }

    @Test("gzip and base64(gzip) payloads are decompressed (made by Python's gzip)")
    func gzipPayloads() async throws {
        let gz = try await Self.python("sys.stdout.write(base64.b64encode(gzip.compress(sys.stdin.read().encode())).decode())")
        let documents = try UserData.documents(gz, source: "user data")
        #expect(documents.first?.bytes == Array(Self.yaml.utf8))
        let raw = try #require(Base64Decode(gz))
        #expect(try UserData.documents(raw, source: "user data").first?.bytes == Array(Self.yaml.utf8))
    }

    @Test("truncated gzip is an error naming the source")
    func truncatedGzip() async throws {
        let gz = try await Self.python("sys.stdout.write(base64.b64encode(gzip.compress(sys.stdin.read().encode())).decode())")
        let raw = try #require(Base64Decode(gz))
        #expect {
            try UserData.documents(Array(raw.prefix(raw.count - 12)), source: "user data")
        } throws: { error in
            let error = error as? UserDataError
            return error?.kind == .gzip && error?.description.hasPrefix("user data: gzip") == true
        }
    }

    @Test("nodeadm's MIME case: two NodeConfig parts kept, the shell script part ignored")
    func conformanceMIME() throws {
        let url = Paths.conformance.appendingPathComponent("nodeadm/mime-userdata-merge/config.yaml")
        let documents = try UserData.documents(Array(try Data(contentsOf: url)), source: "file config.yaml")
        #expect(documents.count == 2)
        #expect(documents.map(\.origin.part) == [1, 2])
        #expect(documents[0].origin.firstLine == 7)
        #expect(documents[0].origin.description == "file config.yaml part 1 (application/node.eks.aws)")
        let first = String(decoding: documents[0].bytes, as: UTF8.self)
        #expect(first.hasPrefix("---\napiVersion: node.eks.aws/v1alpha1\n"))
        #expect(first.hasSuffix("      - 1.1.1.1\n"))
        #expect(String(decoding: documents[1].bytes, as: UTF8.self).contains("cpu: 150m"))
    }

    @Test("MIME built by Python's email package: base64, quoted-printable and gzip parts decode to the same YAML")
    func pythonMIME() async throws {
        let message = try await Self.python(
            """
            y = sys.stdin.read()
            m = email.mime.multipart.MIMEMultipart(boundary='==BOUNDARY==')
            m.attach(email.mime.text.MIMEText('#!/bin/bash\\necho hi\\n', 'x-shellscript'))
            for enc in ('base64', 'quoted-printable'):
                p = email.mime.application.MIMEApplication(y.encode(), 'node.eks.aws', _encoder=lambda x: None)
                del p['Content-Transfer-Encoding']
                p.set_payload(base64.encodebytes(y.encode()).decode() if enc == 'base64' else __import__('quopri').encodestring(y.encode()).decode())
                p['Content-Transfer-Encoding'] = enc
                m.attach(p)
            g = email.mime.application.MIMEApplication(gzip.compress(y.encode()), 'node.eks.aws')
            m.attach(g)
            sys.stdout.write(m.as_string())
            """)
        let documents = try UserData.documents(message, source: "user data")
        #expect(documents.map(\.origin.part) == [2, 3, 4])
        for document in documents {
            #expect(String(decoding: document.bytes, as: UTF8.self) == Self.yaml, "\(document.origin)")
        }
    }

    struct BadCase: Sendable, CustomTestStringConvertible {
        var name: String
        var text: String
        var kind: UserDataError.Kind
        var says: String
        var testDescription: String { name }
    }

    static let badCases: [BadCase] = [
        BadCase(
            name: "MIME without boundary",
            text: "MIME-Version: 1.0\nContent-Type: multipart/mixed\n\n--x\n\nbody\n--x--\n", kind: .mime,
            says: "user data: line 2: the multipart Content-Type has no boundary parameter"),
        BadCase(
            name: "boundary never closed",
            text:
                "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: application/node.eks.aws\n\nkind: NodeConfig\n",
            kind: .mime, says: "the boundary is never closed"),
        BadCase(
            name: "part headers without the blank line",
            text:
                "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n\n--b\nContent-Type: application/node.eks.aws\napiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\n--b--\n",
            kind: .mime, says: "user data part 1: line 8: the part's headers are not followed by a blank line"),
        BadCase(
            name: "top-level headers without the blank line",
            text:
                "MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary=\"b\"\n--b\nContent-Type: application/node.eks.aws\n\nx\n--b--\n",
            kind: .mime, says: "line 3"),
        BadCase(
            name: "no NodeConfig part",
            text: "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: text/x-shellscript\n\n#!/bin/sh\n--b--\n",
            kind: .noNodeConfigPart, says: "parts are text/x-shellscript"),
        BadCase(
            name: "part body that is not base64",
            text:
                "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/node.eks.aws\nContent-Transfer-Encoding: base64\n\n!!not base64!!\n--b--\n",
            kind: .base64, says: "user data part 1 (application/node.eks.aws): line 7: the body is not valid base64"),
        BadCase(
            name: "bad quoted-printable escape",
            text:
                "Content-Type: multipart/mixed; boundary=b\n\n--b\nContent-Type: application/node.eks.aws\nContent-Transfer-Encoding: quoted-printable\n\nkind: =ZZ\n--b--\n",
            kind: .quotedPrintable, says: "invalid quoted-printable escape"),
        BadCase(
            name: "MIME-Version but no multipart content type",
            text: "MIME-Version: 1.0\nContent-Type: text/plain\n\nhello\n", kind: .mime,
            says: "without a multipart Content-Type"),
    ]

    @Test("malformed user data is an error naming the place", arguments: badCases)
    func malformed(_ c: BadCase) {
        #expect {
            try UserData.documents(Array(c.text.utf8), source: "user data")
        } throws: { error in
            guard let error = error as? UserDataError else { return false }
            return error.kind == c.kind && error.description.contains(c.says) && error.hint != nil
        }
    }

    @Test("10 MB of user data is refused before any parsing")
    func tooLarge() {
        #expect {
            try UserData.documents([UInt8](repeating: 0x61, count: 10 << 20), source: "user data")
        } throws: { error in
            (error as? UserDataError)?.kind == .tooLarge
        }
    }

    @Test("text that is not base64 stays as it is")
    func notBase64() throws {
        for text in ["apiVersion: x", "abc", "YWJj=ZA=="] {
            #expect(try UserData.documents(Array(text.utf8), source: "s").first?.bytes == Array(text.utf8))
        }
    }
}

/// Foundation's base64, as a second opinion in tests.
func Base64Decode(_ bytes: [UInt8]) -> [UInt8]? {
    Data(base64Encoded: Data(bytes), options: .ignoreUnknownCharacters).map { Array($0) }
}
