import Foundation
import SigV4
import Testbed
import Testing

@Suite("IMDSv2 endpoint")
struct IMDSTests {
    @Test("a GET without a token is refused with 401 and an empty body")
    func noToken() async throws {
        try await withTestbed { testbed throws in
            let response = try await HTTP.imds(testbed, "/latest/meta-data/instance-id", token: nil)
            #expect(response.status == 401)
            #expect(response.body.isEmpty)
        }
    }

    @Test("a GET with a token the testbed never issued is refused with 401")
    func unknownToken() async throws {
        try await withTestbed { testbed throws in
            let response = try await HTTP.imds(testbed, "/latest/meta-data/instance-id", token: "AQAEAbogus")
            #expect(response.status == 401)
        }
    }

    @Test("a token PUT needs a TTL between 1 and 21600 seconds", arguments: [nil, "0", "21601", "-5", "abc", ""])
    func badTTL(ttl: String?) async throws {
        try await withTestbed { testbed throws in
            let response = try await HTTP.token(testbed, ttl: ttl)
            #expect(response.status == 400, "TTL \(ttl ?? "missing")")
        }
    }

    @Test("a token PUT echoes the TTL and the token works for GETs")
    func tokenWorks() async throws {
        try await withTestbed { testbed throws in
            let response = try await HTTP.token(testbed, ttl: "1")
            #expect(response.status == 200)
            #expect(response.header("X-aws-ec2-metadata-token-ttl-seconds") == "1")
            #expect(!response.text.isEmpty)
            let id = try await HTTP.imds(testbed, "/latest/meta-data/instance-id", token: response.text)
            #expect(id.status == 200)
            #expect(id.text == "i-1234567890abcdef0")
        }
    }

    @Test("a token PUT through a proxy (X-Forwarded-For) is refused with 403")
    func forwarded() async throws {
        try await withTestbed { testbed throws in
            let response = try await HTTP.token(testbed, extra: ["X-Forwarded-For": "10.0.0.1"])
            #expect(response.status == 403)
        }
    }

    @Test("a token stops working when its TTL has passed")
    func tokenExpires() async throws {
        try await withTestbed { testbed throws in
            let token = try await HTTP.token(testbed, ttl: "1").text
            #expect(try await HTTP.imds(testbed, "/latest/meta-data/mac", token: token).status == 200)
            try await Task.sleep(for: .milliseconds(2100))
            #expect(try await HTTP.imds(testbed, "/latest/meta-data/mac", token: token).status == 401)
        }
    }

    @Test("expireIMDSTokens makes every issued token answer 401, and new tokens work")
    func expireTokens() async throws {
        try await withTestbed { testbed throws in
            let first = try await HTTP.validToken(testbed)
            let second = try await HTTP.validToken(testbed)
            await testbed.expireIMDSTokens()
            #expect(try await HTTP.imds(testbed, "/latest/meta-data/mac", token: first).status == 401)
            #expect(try await HTTP.imds(testbed, "/latest/meta-data/mac", token: second).status == 401)
            let fresh = try await HTTP.validToken(testbed)
            #expect(try await HTTP.imds(testbed, "/latest/meta-data/mac", token: fresh).status == 200)
        }
    }

    @Test(
        "the default instance serves nodeadm's E2E values",
        arguments: [
            ("/latest/meta-data/instance-id", "i-1234567890abcdef0"),
            ("/latest/meta-data/instance-type", "m4.xlarge"),
            ("/latest/meta-data/mac", "0e:49:61:0f:c3:11"),
            ("/latest/meta-data/local-ipv4", "172.16.34.43"),
            ("/latest/meta-data/local-hostname", "ip-172-16-34-43.ec2.internal"),
            ("/latest/meta-data/hostname", "ip-172-16-34-43.ec2.internal"),
            ("/latest/meta-data/placement/region", "us-east-1"),
            ("/latest/meta-data/placement/availability-zone", "us-east-1a"),
            ("/latest/meta-data/services/domain", "amazonaws.com"),
            ("/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/network-card", "0"),
            ("/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/device-number", "0"),
            ("/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/local-ipv4s", "172.16.34.43"),
            ("/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/ipv6s", "2001:db8:8:4::2"),
            ("/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/vpc-ipv4-cidr-blocks", "192.0.2.0/24"),
            ("/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/interface-id", "eni-0f95d3625f5c521cc"),
            ("/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/mac", "0e:49:61:0f:c3:11"),
            ("/latest/meta-data/iam/security-credentials/", "baskinc-role"),
        ])
    func values(path: String, expected: String) async throws {
        try await withTestbed { testbed throws in
            let token = try await HTTP.validToken(testbed)
            let response = try await HTTP.imds(testbed, path, token: token)
            #expect(response.status == 200)
            #expect(response.text == expected)
        }
    }

    @Test("the network-card-index path is replaced by the config's path override")
    func pathOverride() async throws {
        try await withTestbed { testbed throws in
            let token = try await HTTP.validToken(testbed)
            let old = "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/network-card-index"
            #expect(try await HTTP.imds(testbed, old, token: token).status == 404)
        }
    }

    @Test("directory GETs list children one per line, subdirectories with a trailing slash")
    func listings() async throws {
        try await withTestbed { testbed throws in
            let token = try await HTTP.validToken(testbed)
            let root = try await HTTP.imds(testbed, "/latest/meta-data/", token: token)
            let entries = root.text.split(separator: "\n").map(String.init)
            for name in ["instance-id", "instance-type", "mac", "local-ipv4", "hostname", "iam/", "network/", "placement/"] {
                #expect(entries.contains(name), "meta-data/ lists \(name)")
            }
            #expect(!root.text.hasSuffix("\n"))
            let macs = try await HTTP.imds(testbed, "/latest/meta-data/network/interfaces/macs/", token: token)
            #expect(macs.text == "0e:49:61:0f:c3:11/")
            let iam = try await HTTP.imds(testbed, "/latest/meta-data/iam/", token: token)
            #expect(iam.text == "info\nsecurity-credentials/")
            let latest = try await HTTP.imds(testbed, "/latest/", token: token)
            #expect(latest.text == "dynamic/\nmeta-data/\nuser-data")
        }
    }

    @Test("the identity document merges the config over aemm's defaults")
    func identityDocument() async throws {
        try await withTestbed { testbed throws in
            let token = try await HTTP.validToken(testbed)
            let response = try await HTTP.imds(testbed, "/latest/dynamic/instance-identity/document", token: token)
            #expect(response.status == 200)
            let document = try #require(try JSONSerialization.jsonObject(with: response.body) as? [String: Any])
            #expect(document["region"] as? String == "us-west-2")
            #expect(document["availabilityZone"] as? String == "us-west-2f")
            #expect(document["instanceId"] as? String == "i-1234567890abcdef0")
            #expect(document["instanceType"] as? String == "m4.xlarge")
            #expect(document["accountId"] as? String == "0123456789")
            #expect(document["imageId"] as? String == "ami-0b69ea66ff7391e80")
            #expect(document["pendingTime"] as? String == "2019-10-31T07:02:24Z")
            #expect(testbed.region == "us-west-2")
        }
    }

    @Test("user data is served as the configured string, byte for byte")
    func userData() async throws {
        try await withTestbed { testbed throws in
            let token = try await HTTP.validToken(testbed)
            let response = try await HTTP.imds(testbed, "/latest/user-data", token: token)
            #expect(response.status == 200)
            let expected =
                "LS0tCmFwaVZlcnNpb246IG5vZGUuZWtzLmF3cy92MWFscGhhMQpraW5kOiBOb2RlQ29uZmlnCnNwZWM6CiAgY2x1c3RlcjoKICAgIG5hbWU6IG15LWNsdXN0ZXIKICAgIGFwaVNlcnZlckVuZHBvaW50OiBodHRwczovL2V4YW1wbGUuY29tCiAgICBjZXJ0aWZpY2F0ZUF1dGhvcml0eTogWTJWeWRHbG1hV05oZEdWQmRYUm9iM0pwZEhrPQogICAgY2lkcjogMTAuMTAwLjAuMC8xNgo="
            #expect(response.body == Data(expected.utf8))
            let decoded = try #require(Data(base64Encoded: response.body))
            #expect(String(decoding: decoded, as: UTF8.self).contains("cidr: 10.100.0.0/16"))
        }
    }

    @Test("the role's credentials document has IMDS's fields and the testbed's credentials")
    func credentials() async throws {
        try await withTestbed { testbed throws in
            let token = try await HTTP.validToken(testbed)
            let response = try await HTTP.imds(
                testbed, "/latest/meta-data/iam/security-credentials/baskinc-role", token: token)
            #expect(response.status == 200)
            let document = try #require(try JSONSerialization.jsonObject(with: response.body) as? [String: String])
            #expect(document["Code"] == "Success")
            #expect(document["Type"] == "AWS-HMAC")
            #expect(document["AccessKeyId"] == testbed.roleCredentials.accessKeyID)
            #expect(document["SecretAccessKey"] == testbed.roleCredentials.secretAccessKey)
            #expect(document["Token"] == testbed.roleCredentials.sessionToken)
            #expect(testbed.roleCredentials.accessKeyID.hasPrefix("ASIA"))
            let expiration = try #require(document["Expiration"])
            #expect(expiration.hasSuffix("Z"))
            #expect(ISO8601DateFormatter().date(from: expiration) != nil)
            #expect(ISO8601DateFormatter().date(from: document["LastUpdated"] ?? "") != nil)
            let keys = response.text.split(separator: "\n").compactMap { line in
                line.split(separator: "\"").dropFirst().first.map(String.init)
            }
            #expect(keys == ["Code", "LastUpdated", "Type", "AccessKeyId", "SecretAccessKey", "Token", "Expiration"])
        }
    }

    @Test("an unknown path answers 404")
    func notFound() async throws {
        try await withTestbed { testbed throws in
            let token = try await HTTP.validToken(testbed)
            #expect(try await HTTP.imds(testbed, "/latest/meta-data/no-such-thing", token: token).status == 404)
        }
    }

    @Test("extra network interfaces appear under macs/ with their device and card numbers")
    func extraInterfaces() async throws {
        var configuration = TestbedConfiguration.default
        configuration.networkInterfaces = [
            .init(mac: "0e:49:61:0f:c3:12", deviceNumber: 1, networkCard: 0, localIpv4s: ["172.16.34.50", "172.16.34.51"])
        ]
        try await withTestbed(configuration) { testbed throws in
            let token = try await HTTP.validToken(testbed)
            let macs = try await HTTP.imds(testbed, "/latest/meta-data/network/interfaces/macs/", token: token)
            #expect(macs.text == "0e:49:61:0f:c3:11/\n0e:49:61:0f:c3:12/")
            let base = "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:12/"
            #expect(try await HTTP.imds(testbed, base + "device-number", token: token).text == "1")
            #expect(try await HTTP.imds(testbed, base + "local-ipv4s", token: token).text == "172.16.34.50\n172.16.34.51")
        }
    }
}
