import Foundation
import SigV4
import TestSupport
import Testbed
import Testing

/// Tokens made by botocore, as `aws eks get-token` makes them, against the testbed's API server.
@Suite(
    "Kubernetes API authentication with botocore-made tokens",
    .enabled(if: Kube.curlAvailable, "curl not found on PATH"),
    .enabled(if: Kube.botocoreAvailable, "botocore not installed (pip install botocore)"))
struct KubeBotocoreAuthTests {
    enum Case: String, CaseIterable, CustomTestStringConvertible {
        case role, staticKeys, wrongCluster, sixteenMinutesOld, fourteenMinutesOld, tampered, padded, unknownKey
        var testDescription: String { rawValue }
    }

    @Test("a botocore token is accepted or refused as aws-iam-authenticator and STS would", arguments: Case.allCases)
    func botocore(_ c: Case) async throws {
        try await withTestbed { testbed throws in
            var spec = Kube.botocoreSpec(testbed.roleCredentials, region: testbed.region)
            var expected: (status: Int, user: String?, reason: String?)
            let node = "system:node:\(testbed.configuration.privateDnsName)"
            switch c {
            case .role:
                expected = (200, node, nil)
            case .staticKeys:
                spec = Kube.botocoreSpec(
                    SigV4Credentials(accessKeyID: "testing", secretAccessKey: "testing"), region: testbed.region)
                expected = (200, "kubernetes-admin", nil)
            case .wrongCluster:
                spec.cluster = "another-cluster"
                expected = (401, nil, "SignatureDoesNotMatch")
            case .sixteenMinutesOld:
                spec.ageSeconds = 16 * 60
                expected = (401, nil, "expired (15 minute expiration)")
            case .fourteenMinutesOld:
                // X-Amz-Expires is 60, but STS honours presigned GetCallerIdentity for 15 minutes.
                spec.ageSeconds = 14 * 60
                expected = (200, node, nil)
            case .tampered:
                spec.tamper = true
                expected = (401, nil, "SignatureDoesNotMatch")
            case .padded:
                spec.padded = true
                expected = (401, nil, "not unpadded base64url")
            case .unknownKey:
                spec = Kube.botocoreSpec(
                    SigV4Credentials(accessKeyID: "AKIAUNKNOWNKEY000000", secretAccessKey: "whatever"),
                    region: testbed.region)
                expected = (401, nil, "InvalidClientTokenId")
            }
            let token = try #require(try await Kube.botocoreTokens([spec]).first)
            if c == .padded { #expect(token.hasSuffix("=")) }
            let result = try await Kube.call(testbed, "/api/v1/nodes", token: token)
            #expect(result.status == expected.status, "\(result.body)")
            let record = try #require(await testbed.requests().last)
            #expect(record.username == expected.user)
            if let reason = expected.reason {
                #expect(result.json?["reason"] as? String == "Unauthorized")
                #expect(result.json?["message"] as? String == "Unauthorized")
                #expect(record.reason?.contains(reason) == true, "\(record.reason ?? "no reason")")
                #expect(record.reason?.contains(token) == false)
            } else {
                #expect(result.json?["kind"] as? String == "NodeList")
            }
        }
    }

    @Test("the role's botocore token works until the role credentials expire")
    func expiredRole() async throws {
        var configuration = TestbedConfiguration.default
        configuration.role.expiration = "2020-01-01T00:00:00Z"
        try await withTestbed(configuration) { testbed throws in
            let token = try #require(
                try await Kube.botocoreTokens([Kube.botocoreSpec(testbed.roleCredentials, region: testbed.region)]).first)
            #expect(try await Kube.call(testbed, "/version", token: token).status == 401)
            #expect(await testbed.requests().last?.reason?.contains("ExpiredToken") == true)
        }
    }

    @Test("kubeAPI.users maps an access key to a user; defaultMappings false leaves the role unmapped")
    func mappings() async throws {
        var configuration = TestbedConfiguration.default
        configuration.kubeAPI.users = [
            .init(accessKeyId: "testing", username: "alice-{{AccessKeyID}}", groups: ["system:masters"])
        ]
        configuration.kubeAPI.defaultMappings = false
        try await withTestbed(configuration) { testbed throws in
            let tokens = try await Kube.botocoreTokens([
                Kube.botocoreSpec(SigV4Credentials(accessKeyID: "testing", secretAccessKey: "testing"), region: testbed.region),
                Kube.botocoreSpec(testbed.roleCredentials, region: testbed.region),
            ])
            #expect(try await Kube.call(testbed, "/api/v1/nodes", token: tokens[0]).status == 200)
            #expect(await testbed.requests().last?.username == "alice-testing")
            #expect(try await Kube.call(testbed, "/api/v1/nodes", token: tokens[1]).status == 401)
            #expect(await testbed.requests().last?.reason?.contains("not mapped") == true)
        }
    }
}

/// The token rules of aws-iam-authenticator's verifier, one per case, with tokens the project's
/// own SigV4 signer makes (so that only the rule under test is broken).
@Suite("Kubernetes API token rules", .enabled(if: Kube.curlAvailable, "curl not found on PATH"))
struct KubeTokenRuleTests {
    struct Case: Sendable, CustomTestStringConvertible {
        var name: String
        var host = "sts.us-west-2.amazonaws.com"
        var region = "us-west-2"
        var scheme = "https"
        var path = "/"
        var extraQuery: [(name: String, value: String)] = []
        var action = "GetCallerIdentity"
        var clusterHeader = true
        var expires = 60
        var expected: String?  // nil = accepted; else a part of the logged reason
        var testDescription: String { name }
    }

    static let cases: [Case] = [
        Case(name: "regional host", expected: nil),
        Case(name: "global host, us-east-1 scope", host: "sts.amazonaws.com", region: "us-east-1", expected: nil),
        Case(name: "another region of the partition", host: "sts.eu-west-1.amazonaws.com", region: "eu-west-1", expected: nil),
        Case(name: "FIPS host", host: "sts-fips.us-west-2.amazonaws.com", expected: nil),
        Case(name: "dual-stack host", host: "sts.us-west-2.api.aws", expected: nil),
        Case(
            name: "China host from an aws-partition verifier", host: "sts.cn-north-1.amazonaws.com.cn", region: "cn-north-1",
            expected: "not an STS endpoint"),
        Case(
            name: "scope region differs from the host's", host: "sts.us-east-2.amazonaws.com", region: "us-west-2",
            expected: "credential scope region"),
        Case(name: "a host with a port", host: "sts.us-west-2.amazonaws.com:443", expected: "not an STS endpoint"),
        Case(name: "a look-alike host", host: "sts.us-west-2.amazonaws.com.evil.example", expected: "not an STS endpoint"),
        Case(name: "http scheme", scheme: "http", expected: "not https"),
        Case(name: "another path", path: "/other", expected: "not /"),
        Case(
            name: "a query key repeated in other case", extraQuery: [(name: "action", value: "GetCallerIdentity")],
            expected: "repeats"),
        Case(name: "a query key not allowed", extraQuery: [(name: "X-Amz-Extra", value: "1")], expected: "not allowed"),
        Case(name: "another Action", action: "GetSessionToken", expected: "not GetCallerIdentity"),
        Case(name: "x-k8s-aws-id not signed", clusterHeader: false, expected: "does not include x-k8s-aws-id"),
        Case(name: "X-Amz-Expires over 900", expires: 901, expected: "out of range"),
    ]

    @Test("token rules", arguments: cases)
    func rule(_ c: Case) async throws {
        try await withTestbed { testbed throws in
            var headers: [(name: String, value: String)] = [(name: "Host", value: c.host)]
            if c.clusterHeader { headers.append((name: "x-k8s-aws-id", value: testbed.kubeClusterName)) }
            let request = SigV4Request(
                method: "GET", path: c.path,
                query: [(name: "Action", value: c.action), (name: "Version", value: "2011-06-15")] + c.extraQuery,
                headers: headers)
            let query = SigV4Signer(credentials: testbed.roleCredentials, region: c.region, service: "sts")
                .presignedQuery(request, date: Date(), expires: c.expires)
            let token = Kube.tokenFor(url: "\(c.scheme)://\(c.host)\(c.path)?\(query)")
            let result = try await Kube.call(testbed, "/version", token: token)
            let record = try #require(await testbed.requests().last)
            if let expected = c.expected {
                #expect(result.status == 401, "curl \(result.curlStatus): \(result.curlError)")
                #expect(record.reason?.contains(expected) == true, "\(record.reason ?? "no reason")")
            } else {
                #expect(result.status == 200, "\(record.reason ?? "") curl \(result.curlStatus): \(result.curlError)")
                #expect(record.username == "system:node:\(testbed.configuration.privateDnsName)")
            }
        }
    }

    @Test("a token that is not k8s-aws-v1, not bearer, or too long is 401")
    func malformed() async throws {
        try await withTestbed { testbed throws in
            let good = Kube.nodeToken(testbed)
            for (header, reason) in [
                ("Bearer abc", "does not start with k8s-aws-v1."),
                ("Basic dXNlcjpwYXNz", "not a bearer token"),
                ("Bearer " + good + String(repeating: "A", count: 4100), "longer than 4096"),
                ("Bearer k8s-aws-v1.+" + good.dropFirst("k8s-aws-v1.".count + 1), "not unpadded base64url"),
            ] {
                let result = try await Kube.call(testbed, "/version", token: nil, headers: ["Authorization": header])
                #expect(result.status == 401)
                #expect(await testbed.requests().last?.reason?.contains(reason) == true, "\(reason)")
            }
            // The same token, well formed, is fine; a Swift-signed token for another cluster is not.
            #expect(try await Kube.call(testbed, "/version", token: good).status == 200)
            let other = Kube.token(testbed.roleCredentials, region: testbed.region, cluster: "other")
            #expect(try await Kube.call(testbed, "/version", token: other).status == 401)
            // 14 minutes 50 seconds old: still good; STS's window is 15 minutes, not X-Amz-Expires.
            let old = Kube.token(testbed.roleCredentials, region: testbed.region, date: Date().addingTimeInterval(-890))
            #expect(try await Kube.call(testbed, "/version", token: old).status == 200)
            // More than 15 minutes in the future: STS refuses it.
            let future = Kube.token(testbed.roleCredentials, region: testbed.region, date: Date().addingTimeInterval(1000))
            #expect(try await Kube.call(testbed, "/version", token: future).status == 401)
        }
    }
}
