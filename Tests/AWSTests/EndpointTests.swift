import AWS
import Foundation
import Testing

@Suite("endpoint and proxy resolution")
struct EndpointTests {
    struct EndpointCase: Sendable, CustomTestStringConvertible {
        var service: AWSService
        var region: String
        var environment: [String: String] = [:]
        var url: String
        var signingRegion: String
        var testDescription: String { "\(service) \(region) \(environment) -> \(url)" }
    }

    static let endpointCases: [EndpointCase] = [
        EndpointCase(service: .ec2, region: "us-west-2", url: "https://ec2.us-west-2.amazonaws.com", signingRegion: "us-west-2"),
        EndpointCase(
            service: .eks, region: "eu-central-1", url: "https://eks.eu-central-1.amazonaws.com", signingRegion: "eu-central-1"),
        EndpointCase(
            service: .sts, region: "cn-north-1", url: "https://sts.cn-north-1.amazonaws.com.cn", signingRegion: "cn-north-1"),
        EndpointCase(
            service: .sts, region: "us-east-1", environment: ["AWS_STS_REGIONAL_ENDPOINTS": "legacy"],
            url: "https://sts.amazonaws.com", signingRegion: "us-east-1"),
        EndpointCase(
            service: .sts, region: "eu-west-1", environment: ["AWS_STS_REGIONAL_ENDPOINTS": "legacy"],
            url: "https://sts.amazonaws.com", signingRegion: "us-east-1"),
        EndpointCase(
            service: .sts, region: "af-south-1", environment: ["AWS_STS_REGIONAL_ENDPOINTS": "legacy"],
            url: "https://sts.af-south-1.amazonaws.com", signingRegion: "af-south-1"),
        EndpointCase(
            service: .ec2, region: "us-east-1", environment: ["AWS_USE_FIPS_ENDPOINT": "true"],
            url: "https://ec2-fips.us-east-1.amazonaws.com", signingRegion: "us-east-1"),
        EndpointCase(
            service: .eks, region: "us-east-1", environment: ["AWS_USE_FIPS_ENDPOINT": "true"],
            url: "https://fips.eks.us-east-1.amazonaws.com", signingRegion: "us-east-1"),
        EndpointCase(
            service: .ec2, region: "us-west-2", environment: ["AWS_ENDPOINT_URL": "http://localhost:5000"],
            url: "http://localhost:5000", signingRegion: "us-west-2"),
        EndpointCase(
            service: .eks, region: "us-west-2",
            environment: ["AWS_ENDPOINT_URL": "http://a:1", "AWS_ENDPOINT_URL_EKS": "http://b:2"],
            url: "http://b:2", signingRegion: "us-west-2"),
        EndpointCase(
            service: .ec2, region: "us-west-2",
            environment: ["AWS_ENDPOINT_URL": "http://a:1", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true"],
            url: "https://ec2.us-west-2.amazonaws.com", signingRegion: "us-west-2"),
    ]

    @Test("default endpoints follow the region's partition; overrides win", arguments: endpointCases)
    func resolves(_ c: EndpointCase) throws {
        let endpoint = try EndpointResolver(environment: c.environment).endpoint(for: c.service, region: c.region)
        #expect(endpoint.url.absoluteString == c.url)
        #expect(endpoint.signingRegion == c.signingRegion)
    }

    @Test("a malformed endpoint override or region is a configuration error naming it")
    func rejectsBadInput() {
        #expect {
            try EndpointResolver(environment: ["AWS_ENDPOINT_URL_EC2": "not a url"]).endpoint(for: .ec2, region: "us-west-2")
        } throws: { error in
            let error = error as? AWSError
            return error?.kind == .configuration && error?.description.contains("AWS_ENDPOINT_URL_EC2") == true
        }
        #expect(throws: AWSError.self) {
            try EndpointResolver(environment: [:]).endpoint(for: .ec2, region: "us-west-2/../evil")
        }
    }

    struct ProxyCase: Sendable, CustomTestStringConvertible {
        var environment: [String: String]
        var url: String
        var proxy: String?
        var testDescription: String { "\(environment) \(url) -> \(proxy ?? "direct")" }
    }

    // nodeadm's imds_test proxy table, extended with NO_PROXY.
    static let proxyCases: [ProxyCase] = [
        ProxyCase(
            environment: ["HTTPS_PROXY": "http://example-proxy:8080"], url: "https://ec2.amazonaws.com",
            proxy: "example-proxy:8080"),
        ProxyCase(environment: [:], url: "https://ec2.amazonaws.com", proxy: nil),
        ProxyCase(environment: ["HTTPS_PROXY": "http://example-proxy:8080"], url: "http://localhost:5000/", proxy: nil),
        ProxyCase(environment: ["HTTP_PROXY": "http://p:3128"], url: "http://0.0.0.0:5000/", proxy: "p:3128"),
        ProxyCase(environment: ["https_proxy": "p:3128"], url: "https://eks.us-west-2.amazonaws.com", proxy: "p:3128"),
        ProxyCase(
            environment: ["HTTPS_PROXY": "http://p:3128", "NO_PROXY": ".amazonaws.com"],
            url: "https://eks.us-west-2.amazonaws.com", proxy: nil),
        ProxyCase(
            environment: ["HTTPS_PROXY": "http://p:3128", "NO_PROXY": "169.254.169.254,ec2.us-west-2.amazonaws.com"],
            url: "https://ec2.us-west-2.amazonaws.com", proxy: nil),
        ProxyCase(environment: ["HTTPS_PROXY": "http://p:3128", "NO_PROXY": "10.0.0.0/8"], url: "https://10.1.2.3/", proxy: nil),
        ProxyCase(environment: ["HTTPS_PROXY": "http://p:3128", "NO_PROXY": "*"], url: "https://sts.amazonaws.com", proxy: nil),
        ProxyCase(
            environment: ["HTTPS_PROXY": "http://p:3128", "NO_PROXY": "example.com"], url: "https://sts.amazonaws.com",
            proxy: "p:3128"),
    ]

    @Test("HTTP(S)_PROXY applies to AWS APIs; NO_PROXY exempts hosts", arguments: proxyCases)
    func proxies(_ c: ProxyCase) throws {
        let proxy = ProxySettings(environment: c.environment).proxy(for: try #require(URL(string: c.url)))
        #expect(proxy.map { "\($0.host):\($0.port)" } == c.proxy)
    }

    @Test("IMDS endpoint: override, IPv6 mode, disabled")
    func imdsEndpoint() throws {
        #expect(try IMDSClient.endpoint(environment: [:]) == "http://169.254.169.254")
        #expect(
            try IMDSClient.endpoint(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE": "IPv6"]) == "http://[fd00:ec2::254]")
        #expect(
            try IMDSClient.endpoint(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "http://localhost:1338"])
                == "http://localhost:1338")
        #expect(throws: AWSError.self) { try IMDSClient.endpoint(environment: ["AWS_EC2_METADATA_DISABLED": "true"]) }
        #expect(throws: AWSError.self) { try IMDSClient.endpoint(environment: ["AWS_EC2_METADATA_SERVICE_ENDPOINT": "ftp://x"]) }
    }
}
