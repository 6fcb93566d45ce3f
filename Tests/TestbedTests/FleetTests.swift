import Foundation
import SigV4
import Testing

@testable import Testbed

@Suite("A fleet of instances in one testbed")
struct FleetTests {
    static func configuration(_ count: Int) -> TestbedConfiguration {
        var configuration = TestbedConfiguration.default
        configuration.fleet = FleetConfiguration(count: count)
        return configuration
    }

    /// A GET of a fleet instance's IMDS path with a token from its own prefix.
    static func imds(_ testbed: Testbed, _ instance: FleetInstance, _ path: String) async throws -> HTTPResult {
        let base = testbed.imdsEndpoint + instance.imdsPathPrefix
        let token = try await HTTP.send(
            base + "/latest/api/token", method: "PUT", headers: ["X-aws-ec2-metadata-token-ttl-seconds": "60"])
        #expect(token.status == 200)
        return try await HTTP.send(base + path, headers: ["X-aws-ec2-metadata-token": token.text])
    }

    /// The role credentials a fleet instance's IMDS hands out.
    static func credentials(_ testbed: Testbed, _ instance: FleetInstance) async throws -> SigV4Credentials {
        let document = try await imds(testbed, instance, "/latest/meta-data/iam/security-credentials/baskinc-role")
        let json = try JSONSerialization.jsonObject(with: document.body) as? [String: Any]
        guard let key = json?["AccessKeyId"] as? String, let secret = json?["SecretAccessKey"] as? String else {
            throw TestFailure("no credentials in \(document.text)")
        }
        return SigV4Credentials(accessKeyID: key, secretAccessKey: secret, sessionToken: json?["Token"] as? String)
    }

    @Test("each instance has its own id, address, DNS name, MAC and credentials under its IMDS prefix")
    func identities() async throws {
        try await withTestbed(Self.configuration(3)) { testbed throws in
            let fleet = testbed.fleet
            #expect(fleet.map(\.instanceId) == ["i-0f1ee700000000001", "i-0f1ee700000000002", "i-0f1ee700000000003"])
            #expect(fleet.map(\.privateIp) == ["172.17.0.10", "172.17.0.11", "172.17.0.12"])
            #expect(fleet[1].privateDnsName == "ip-172-17-0-11.us-west-2.compute.internal")
            #expect(Set(fleet.map(\.mac)).count == 3)
            let second = fleet[1]
            #expect(try await Self.imds(testbed, second, "/latest/meta-data/instance-id").text == second.instanceId)
            #expect(try await Self.imds(testbed, second, "/latest/meta-data/local-ipv4").text == second.privateIp)
            #expect(try await Self.imds(testbed, second, "/latest/meta-data/mac").text == second.mac)
            #expect(
                try await Self.imds(testbed, second, "/latest/meta-data/network/interfaces/macs/").text == second.mac + "/")
            let local = try await Self.imds(
                testbed, second, "/latest/meta-data/network/interfaces/macs/\(second.mac)/local-ipv4s")
            #expect(local.text == second.privateIp)
            let identity = try await Self.imds(testbed, second, "/latest/dynamic/instance-identity/document")
            let document = try JSONSerialization.jsonObject(with: identity.body) as? [String: Any]
            #expect(document?["instanceId"] as? String == second.instanceId)
            #expect(document?["privateIp"] as? String == second.privateIp)
            #expect(document?["region"] as? String == "us-west-2")
            // The user data is the configured instance's.
            let userData = try await Self.imds(testbed, second, "/latest/user-data")
            #expect(userData.status == 200)
            // The configured instance is still at the root; an unknown prefix is no path.
            let token = try await HTTP.validToken(testbed)
            #expect(try await HTTP.imds(testbed, "/latest/meta-data/instance-id", token: token).text == "i-1234567890abcdef0")
            #expect(try await HTTP.imds(testbed, "/i-0f1ee700000000009/latest/meta-data/instance-id", token: token).status == 404)
            // Every instance's credentials are its own.
            let keys = try await [Self.credentials(testbed, fleet[0]), Self.credentials(testbed, fleet[1])]
            #expect(keys[0].accessKeyID != keys[1].accessKeyID)
            #expect(!keys.contains { $0.accessKeyID == testbed.roleCredentials.accessKeyID })
            let log = await testbed.requests().filter { $0.path.hasPrefix(second.imdsPathPrefix + "/") }
            #expect(log.count >= 14)
        }
    }

    @Test("DescribeInstances answers for each instance, signed with its own credentials; STS names it")
    func describeInstances() async throws {
        try await withTestbed(Self.configuration(2)) { testbed throws in
            let instance = testbed.fleet[1]
            let credentials = try await Self.credentials(testbed, instance)
            let response = try await HTTP.query(
                testbed, service: "ec2",
                [("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("InstanceId.1", instance.instanceId)],
                credentials: credentials)
            #expect(response.status == 200)
            #expect(xmlValue("instanceId", in: response.text) == instance.instanceId)
            #expect(xmlValue("privateDnsName", in: response.text) == instance.privateDnsName)
            #expect(xmlValue("privateIpAddress", in: response.text) == instance.privateIp)
            #expect(xmlValue("macAddress", in: response.text) == instance.mac)
            #expect(xmlValue("networkInterfaceId", in: response.text) == instance.networkInterfaceId)
            #expect(xmlValue("instanceType", in: response.text) == "m4.xlarge")
            let missing = try await HTTP.query(
                testbed, service: "ec2",
                [("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("InstanceId.1", "i-0f1ee700000000003")],
                credentials: credentials)
            #expect(xmlValue("Code", in: missing.text) == "InvalidInstanceID.NotFound")
            let sts = try await HTTP.query(
                testbed, service: "sts", [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")],
                credentials: credentials)
            #expect(xmlValue("Arn", in: sts.text)?.hasSuffix(":assumed-role/baskinc-role/\(instance.instanceId)") == true)
            let signed = await testbed.requests().filter { $0.accessKeyId == credentials.accessKeyID }
            #expect(signed.count == 3)
        }
    }

    @Test(
        "the API server maps each instance's role keys to its own node user",
        .enabled(if: Kube.curlAvailable, "curl not found on PATH"))
    func nodeUsers() async throws {
        try await withTestbed(Self.configuration(2)) { testbed throws in
            let first = testbed.fleet[0]
            let second = testbed.fleet[1]
            let token = Kube.token(try await Self.credentials(testbed, first), region: testbed.region)
            func node(_ name: String) -> String {
                #"{"apiVersion":"v1","kind":"Node","metadata":{"name":"\#(name)"}}"#
            }
            let own = try await Kube.call(testbed, "POST", "/api/v1/nodes", token: token, body: node(first.privateDnsName))
            #expect(own.status == 201)
            let other = try await Kube.call(testbed, "POST", "/api/v1/nodes", token: token, body: node(second.privateDnsName))
            #expect(other.status == 403)
            let log = await testbed.requests().filter { $0.endpoint == "kube" }
            #expect(log.map(\.username) == Array(repeating: "system:node:\(first.privateDnsName)", count: 2))
        }
    }

    @Test("fleet.count is bounded; 0 is no fleet")
    func configuration() throws {
        #expect(Self.configuration(-1).validationErrors() == ["fleet.count: -1 is not between 0 and 10000"])
        #expect(Self.configuration(0).validationErrors().isEmpty)
        let decoded = try JSONDecoder().decode(TestbedConfiguration.self, from: Data(#"{"fleet": {"count": 5}}"#.utf8))
        #expect(decoded.fleet.count == 5)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(TestbedConfiguration.self, from: Data(#"{"fleet": {"size": 5}}"#.utf8))
        }
    }
}
