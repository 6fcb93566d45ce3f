import AWS
import ExecCredential
import Foundation
import SigV4
import Support
import TestSupport
import Testing

@Suite("EKS bearer token and ExecCredential")
struct TokenTests {
    static func token(_ input: TokenVector.Input) throws -> String {
        var environment: [String: String] = [:]
        if input.sts == "legacy" { environment["AWS_STS_REGIONAL_ENDPOINTS"] = "legacy" }
        // Endpoint overrides never reach the token (the authenticator accepts real STS hosts only).
        environment["AWS_ENDPOINT_URL"] = "http://127.0.0.1:1"
        return try ExecCredential.token(
            clusterName: input.cluster, region: input.region,
            credentials: SigV4Credentials(accessKeyID: input.akid, secretAccessKey: input.secret, sessionToken: input.session),
            date: try #require(SigV4Signer.parseAmzDate(input.time)), environment: environment)
    }

    @Test("every botocore vector: the same token, byte for byte")
    func vectors() throws {
        let vectors = TokenVector.all
        #expect(vectors.count >= 5)
        for vector in vectors {
            #expect(try Self.token(vector.input) == vector.token, "\(vector.input.cluster) \(vector.input.region)")
        }
    }

    /// botocore as `aws eks get-token` drives it: STS client, the x-k8s-aws-id header injected
    /// before signing, the clock frozen per input. One process answers every input (JSON lines).
    static let botocoreScript = #"""
        import base64, datetime, json, os, sys
        import botocore.auth, botocore.session
        for line in sys.stdin:
            item = json.loads(line)
            os.environ.clear()
            os.environ.update({"AWS_CONFIG_FILE": "/dev/null", "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                               "AWS_EC2_METADATA_DISABLED": "true"})
            if item["sts"] == "legacy":
                os.environ["AWS_STS_REGIONAL_ENDPOINTS"] = "legacy"
            when = datetime.datetime.strptime(item["time"], "%Y%m%dT%H%M%SZ")
            botocore.auth.get_current_datetime = lambda when=when: when
            session = botocore.session.get_session()
            client = session.create_client("sts", region_name=item["region"], aws_access_key_id=item["akid"],
                                           aws_secret_access_key=item["secret"], aws_session_token=item["session"])
            def inject(request, cluster=item["cluster"], **kwargs):
                request.headers["x-k8s-aws-id"] = cluster
            client.meta.events.register("before-sign.sts.GetCallerIdentity", inject)
            url = client.generate_presigned_url("get_caller_identity", Params={}, ExpiresIn=60, HttpMethod="GET")
            token = "k8s-aws-v1." + base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
            print(json.dumps({"token": token}), flush=True)
        """#

    @Test(
        "differential: 200 random inputs give botocore's token",
        .enabled(if: ChildProcess.pythonHas("botocore"), "botocore is not installed"))
    func differential() async throws {
        var generator = SeededGenerator(seed: 0x5EED_70CE)
        let regions = [
            "us-east-1", "us-west-2", "eu-central-1", "ap-southeast-2", "sa-east-1", "ca-central-1", "cn-north-1",
            "cn-northwest-1", "us-gov-west-1", "me-south-1",
        ]
        let keyCharacters = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/+=")
        let nameCharacters = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.")
        func random(_ characters: [Character], _ range: ClosedRange<Int>) -> String {
            String((0..<Int.random(in: range, using: &generator)).map { _ in characters.randomElement(using: &generator)! })
        }
        var inputs: [TokenVector.Input] = []
        for index in 0..<200 {
            let region = regions.randomElement(using: &generator)!
            let seconds = Int.random(in: 946_684_800...4_102_444_799, using: &generator)  // 2000…2099
            let date = Date(timeIntervalSince1970: TimeInterval(seconds))
            inputs.append(
                TokenVector.Input(
                    cluster: "c" + random(nameCharacters, 0...60), region: region,
                    akid: (index % 2 == 0 ? "ASIA" : "AKIA") + random(Array("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), 16...16),
                    secret: random(keyCharacters, 40...40), session: index % 2 == 0 ? random(keyCharacters, 20...300) : nil,
                    time: SigV4Signer.amzDate(date),
                    sts: region == "us-east-1" && index % 3 == 0 ? "legacy" : "regional"))
        }
        let lines = try inputs.map { input -> String in
            var object: [String: Any] = [
                "cluster": input.cluster, "region": input.region, "akid": input.akid, "secret": input.secret,
                "time": input.time, "sts": input.sts,
            ]
            object["session"] = input.session ?? NSNull()
            return String(decoding: try JSONSerialization.data(withJSONObject: object), as: UTF8.self)
        }
        let result = try await ChildProcess.run(
            ["python3", "-c", Self.botocoreScript], stdin: lines.joined(separator: "\n") + "\n", timeout: 120)
        #expect(result.status == 0, "\(result.stderr)")
        let expected = result.stdout.split(separator: "\n").compactMap { line -> String? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: String])?["token"]
        }
        #expect(expected.count == inputs.count)
        var mismatches = 0
        for (input, token) in zip(inputs, expected) where try Self.token(input) != token {
            mismatches += 1
            if mismatches <= 3 { Issue.record("differs for \(input.cluster) \(input.region) \(input.time) \(input.sts)") }
        }
        #expect(mismatches == 0)
    }

    @Test("ExecCredential: apiVersion from KUBERNETES_EXEC_INFO, 14 minutes, RFC 3339")
    func document() throws {
        #expect(try ExecCredential.requestedAPIVersion(execInfo: nil) == ExecCredential.v1beta1)
        #expect(
            try ExecCredential.requestedAPIVersion(
                execInfo:
                    #"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#)
                == ExecCredential.v1)
        #expect(
            try ExecCredential.requestedAPIVersion(
                execInfo: #"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}"#)
                == ExecCredential.v1beta1)
        #expect(throws: ExecInfoError.self) { try ExecCredential.requestedAPIVersion(execInfo: "{bad") }
        #expect(throws: ExecInfoError.self) {
            try ExecCredential.requestedAPIVersion(execInfo: #"{"apiVersion":"client.authentication.k8s.io/v2"}"#)
        }
        let date = try #require(SigV4Signer.parseAmzDate("20240101T000000Z")).addingTimeInterval(14 * 60)
        #expect(ExecCredential.timestamp(date) == "2024-01-01T00:14:00Z")
        #expect(ExecCredential.timestamp(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29T00:00:00Z")
        let json = ExecCredential.document(apiVersion: ExecCredential.v1, token: "k8s-aws-v1.x", expiration: date)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["apiVersion"] as? String == ExecCredential.v1)
        #expect((object["status"] as? [String: String])?["expirationTimestamp"] == "2024-01-01T00:14:00Z")
    }

    @Test("sts:AssumeRole against moto", .enabled(if: MotoServer.isAvailable, "moto_server is not installed"))
    func assumeRole() async throws {
        let moto = try await MotoServer.start()
        let transport = AsyncHTTPTransport(connectTimeout: .seconds(2))
        let client = AWSClient(
            region: "us-west-2",
            credentials: EnvironmentCredentialProvider(environment: [
                "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            ])!,
            transport: transport,
            endpoints: EndpointResolver(environment: ["AWS_ENDPOINT_URL": moto.endpoint]), policy: .aws(environment: [:]))
        let assumed: AssumedRole
        do {
            assumed = try await client.assumeRole(
                roleARN: "arn:aws:iam::123456789012:role/eks-admin", sessionName: "EKSGetTokenAuth")
        } catch {
            await transport.shutdown()
            throw error
        }
        await transport.shutdown()
        #expect(assumed.credentials.accessKeyID.hasPrefix("ASIA"))
        #expect(assumed.credentials.sessionToken?.isEmpty == false)
        #expect(assumed.expiration != nil)
    }
}
