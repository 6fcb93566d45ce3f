import Foundation
import SigV4
import TestSupport
import Testbed
import Testing

// A testbed on host loopback reached from a VM through a forward (scripts/vm-test.py): the API
// server is advertised at an address that is not its listener's.
@Suite("Kubernetes API server advertised elsewhere", .enabled(if: Kube.curlAvailable, "curl not found on PATH"))
struct AdvertiseTests {
    func advertised(_ url: String) -> TestbedConfiguration {
        var configuration = TestbedConfiguration.default
        configuration.kubeAPI.advertiseEndpoint = url
        return configuration
    }

    /// curl to the advertised URL, connected to the listener: the certificate is checked against
    /// the advertised host.
    func version(_ testbed: Testbed, advertised host: String, port: Int) async throws -> ChildProcess.Result {
        let listener = try #require(URL(string: testbed.kubeEndpoint)?.port)
        let bracketed = host.contains(":") ? "[\(host)]" : host
        return try await ChildProcess.run([
            "curl", "-sS", "--max-time", "10", "--cacert", try Kube.caFile(testbed),
            "--connect-to", "\(host):\(port):127.0.0.1:\(listener)", "https://\(bracketed):\(port)/version",
            "-H", "Authorization: Bearer \(Kube.adminToken(testbed))",
        ])
    }

    @Test("DescribeCluster and /api report the advertised address; the certificate names its IP")
    func ipAddress() async throws {
        try await withTestbed(advertised("https://169.254.0.30")) { testbed throws in
            #expect(testbed.advertisedKubeEndpoint == "https://169.254.0.30:443")
            #expect(testbed.kubeEndpoint.hasPrefix("https://127.0.0.1:"))  // the listener, for host-side clients
            let described = try #require(
                try JSONSerialization.jsonObject(with: try await HTTP.describeCluster(testbed).body) as? [String: Any])
            #expect((described["cluster"] as? [String: Any])?["endpoint"] as? String == "https://169.254.0.30:443")

            let api = try await Kube.call(testbed, "/api", token: Kube.adminToken(testbed))
            let addresses = api.json?["serverAddressByClientCIDRs"] as? [[String: Any]]
            #expect(addresses?.first?["serverAddress"] as? String == "169.254.0.30:443")

            let byIP = try await version(testbed, advertised: "169.254.0.30", port: 443)
            #expect(byIP.status == 0, "\(byIP.stderr)")
            #expect(byIP.stdout.contains("v1.31.0-eks-testbed"))
            // The listener's own names still work (host-side clients).
            #expect(try await Kube.call(testbed, "/version", token: Kube.adminToken(testbed)).status == 200)
            // A name the certificate does not carry is refused (curl 60: SSL certificate problem).
            let other = try await version(testbed, advertised: "169.254.0.31", port: 443)
            #expect(other.status == 60, "\(other.stderr)")
        }
    }

    @Test("a DNS name with a port: reported as given, named in the certificate; a configured endpoint still wins")
    func dnsName() async throws {
        var configuration = advertised("https://kube.testbed.internal:6443/")
        try await withTestbed(configuration) { testbed throws in
            #expect(testbed.advertisedKubeEndpoint == "https://kube.testbed.internal:6443")
            let text = try await HTTP.describeCluster(testbed).text
            #expect(text.contains(#""endpoint":"https://kube.testbed.internal:6443""#))
            let byName = try await version(testbed, advertised: "kube.testbed.internal", port: 6443)
            #expect(byName.status == 0, "\(byName.stderr)")
        }
        configuration.clusters = [.init(name: "my-cluster", endpoint: "https://example.com")]
        try await withTestbed(configuration) { testbed throws in
            #expect(try await HTTP.describeCluster(testbed).text.contains(#""endpoint":"https://example.com""#))
        }
    }

    @Test(
        "advertiseEndpoint must be an https URL with a host and nothing after the port",
        arguments: ["http://169.254.0.30", "169.254.0.30:443", "https://", "https://h/path", "https://h?x=1", "https://u@h"])
    func refused(url: String) async throws {
        let error = await #expect(throws: TestbedError.self) { try await Testbed.start(advertised(url)) }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("kubeAPI.advertiseEndpoint") == true, "\(String(describing: error))")
    }
}

@Suite("IMDS API versions")
struct IMDSVersionTests {
    @Test("a dated API version answers as /latest/ (cloud-init's Ec2 datasource reads /2021-03-23/…)")
    func datedVersion() async throws {
        try await withTestbed { testbed throws in
            let token = try await HTTP.token(testbed, ttl: "60").text
            for version in ["2021-03-23", "2009-04-04"] {
                let id = try await HTTP.imds(testbed, "/\(version)/meta-data/instance-id", token: token)
                #expect(id.status == 200)
                #expect(id.text == "i-1234567890abcdef0")
                let listing = try await HTTP.imds(testbed, "/\(version)/meta-data/", token: token)
                #expect(listing.text.split(separator: "\n").contains("instance-id"))
                let document = try await HTTP.imds(testbed, "/\(version)/dynamic/instance-identity/document", token: token)
                #expect(document.text.contains("\"region\""))
            }
            let latest = try await HTTP.imds(testbed, "/latest/user-data", token: token)
            #expect(try await HTTP.imds(testbed, "/2021-03-23/user-data", token: token).text == latest.text)
            // Not a date: unchanged (404); a dated path still needs a token.
            #expect(try await HTTP.imds(testbed, "/2021-3-23/meta-data/instance-id", token: token).status == 404)
            #expect(try await HTTP.imds(testbed, "/2021-03-23/meta-data/instance-id", token: nil).status == 401)
        }
    }
}
