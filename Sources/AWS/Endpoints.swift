public import FoundationEssentials
import Support

/// The AWS services nodeboot calls.
public enum AWSService: String, Sendable, CaseIterable {
    case ec2, eks, sts

    /// Suffix of `AWS_ENDPOINT_URL_<SERVICE>`.
    var environmentSuffix: String { rawValue.uppercased() }
    /// Name in the SigV4 credential scope.
    public var signingName: String { rawValue }
}

/// Where a service call goes and which region signs it.
public struct ServiceEndpoint: Sendable, Equatable {
    public var url: URL
    public var signingRegion: String
}

/// Endpoint resolution as the AWS SDKs do it: `AWS_ENDPOINT_URL_<SERVICE>`, then `AWS_ENDPOINT_URL`
/// (both ignored with `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`), then the regional default of the
/// region's partition; `AWS_USE_FIPS_ENDPOINT` and `AWS_STS_REGIONAL_ENDPOINTS=legacy` honoured.
public struct EndpointResolver: Sendable {
    public var environment: [String: String]

    public init(environment: [String: String]) { self.environment = environment }

    /// Regions whose STS calls went to `sts.amazonaws.com` under the legacy setting.
    static let legacyGlobalSTSRegions: Set<String> = [
        "ap-northeast-1", "ap-south-1", "ap-southeast-1", "ap-southeast-2", "aws-global", "ca-central-1",
        "eu-central-1", "eu-north-1", "eu-west-1", "eu-west-2", "eu-west-3", "sa-east-1", "us-east-1",
        "us-east-2", "us-west-1", "us-west-2",
    ]

    /// DNS suffix of a region's partition.
    public static func dnsSuffix(region: String) -> String {
        if region.hasPrefix("cn-") { return "amazonaws.com.cn" }
        if region.hasPrefix("us-isob-") { return "sc2s.sgov.gov" }
        if region.hasPrefix("us-iso-") { return "c2s.ic.gov" }
        if region.hasPrefix("eu-isoe-") { return "cloud.adc-e.uk" }
        if region.hasPrefix("us-isof-") { return "csp.hci.ic.gov" }
        return "amazonaws.com"
    }

    public func endpoint(for service: AWSService, region: String) throws(AWSError) -> ServiceEndpoint {
        if environment["AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"]?.lowercased() != "true" {
            for name in ["AWS_ENDPOINT_URL_\(service.environmentSuffix)", "AWS_ENDPOINT_URL"] {
                guard let value = environment[name], !value.isEmpty else { continue }
                guard let url = URL(string: value), let scheme = url.scheme?.lowercased(),
                    scheme == "http" || scheme == "https", url.host != nil
                else {
                    throw AWSError(
                        .configuration, operation: "\(service.rawValue) endpoint", endpoint: value,
                        message: "\(name) is not an http(s) URL", hint: "use a URL like https://ec2.us-west-2.amazonaws.com")
                }
                return ServiceEndpoint(url: url, signingRegion: region)
            }
        }
        guard Self.isValidRegion(region) else {
            throw AWSError(
                .configuration, operation: "\(service.rawValue) endpoint", endpoint: "-",
                message: "'\(region)' is not a region name", hint: "set AWS_REGION to a region such as us-west-2")
        }
        let suffix = Self.dnsSuffix(region: region)
        let fips = environment["AWS_USE_FIPS_ENDPOINT"]?.lowercased() == "true"
        let host: String
        var signingRegion = region
        switch service {
        case .sts
        where environment["AWS_STS_REGIONAL_ENDPOINTS"]?.lowercased() == "legacy"
            && Self.legacyGlobalSTSRegions.contains(region) && !fips:
            host = "sts.amazonaws.com"
            signingRegion = "us-east-1"
        case .eks where fips:
            host = "fips.eks.\(region).\(suffix)"
        default:
            host = fips ? "\(service.rawValue)-fips.\(region).\(suffix)" : "\(service.rawValue).\(region).\(suffix)"
        }
        // A host built from a validated region is always a valid URL.
        guard let url = URL(string: "https://\(host)") else {
            throw AWSError(.configuration, operation: "\(service.rawValue) endpoint", endpoint: host, message: "invalid host")
        }
        return ServiceEndpoint(url: url, signingRegion: signingRegion)
    }

    /// `xx-name-N` style, lower-case letters, digits and dashes.
    public static func isValidRegion(_ region: String) -> Bool {
        !region.isEmpty && region.count <= 32
            && region.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) || $0 == 0x2D }
            && region.first != "-" && region.last != "-"
    }
}

/// `HTTP_PROXY`, `HTTPS_PROXY` and `NO_PROXY` (either case), as curl and the AWS SDKs read them.
public struct ProxySettings: Sendable, Equatable {
    public var http: AsyncHTTPTransport.Proxy?
    public var https: AsyncHTTPTransport.Proxy?
    public var noProxy: [String]

    public init(environment: [String: String]) {
        func value(_ name: String) -> String? {
            let v = environment[name] ?? environment[name.lowercased()]
            return v?.isEmpty == false ? v : nil
        }
        http = value("HTTP_PROXY").flatMap(Self.parse)
        https = value("HTTPS_PROXY").flatMap(Self.parse)
        noProxy = (value("NO_PROXY") ?? "").split(separator: ",")
            .map { $0.trimmed.lowercased() }.filter { !$0.isEmpty }
    }

    /// `http://host:port`, `https://host:port` (spoken to in plain HTTP, as Go does for CONNECT), or `host:port`.
    static func parse(_ text: String) -> AsyncHTTPTransport.Proxy? {
        let withScheme = text.contains("://") ? text : "http://" + text
        guard let url = URL(string: withScheme), let host = url.host, !host.isEmpty else { return nil }
        let port = url.port ?? (url.scheme?.lowercased() == "https" ? 443 : 80)
        return AsyncHTTPTransport.Proxy(host: host, port: port)
    }

    /// The proxy for a URL, or `nil` to go direct.
    public func proxy(for url: URL) -> AsyncHTTPTransport.Proxy? {
        guard let host = url.host?.lowercased() else { return nil }
        let proxy = url.scheme?.lowercased() == "https" ? https : http
        guard let proxy else { return nil }
        let bareHost = host.hasPrefix("[") ? String(host.dropFirst().dropLast()) : host
        for entry in noProxy {
            if entry == "*" { return nil }
            var pattern = entry
            if let port = url.port, pattern.hasSuffix(":\(port)") { pattern = String(pattern.dropLast(":\(port)".count)) }
            if pattern.hasPrefix("*.") { pattern.removeFirst() }
            if pattern.hasPrefix(".") {
                if bareHost.hasSuffix(pattern) || bareHost == String(pattern.dropFirst()) { return nil }
            } else if bareHost == pattern || bareHost.hasSuffix("." + pattern) {
                return nil
            } else if pattern.contains("/"), Self.ipv4(bareHost, inCIDR: pattern) {
                return nil
            }
        }
        return proxy
    }

    static func ipv4(_ host: String, inCIDR cidr: String) -> Bool {
        let parts = cidr.split(separator: "/")
        guard parts.count == 2, let bits = Int(parts[1]), (0...32).contains(bits),
            let network = ipv4Value(String(parts[0])), let address = ipv4Value(host)
        else { return false }
        let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
        return network & mask == address & mask
    }

    static func ipv4Value(_ text: String) -> UInt32? {
        let octets = text.split(separator: ".", omittingEmptySubsequences: false)
        guard octets.count == 4 else { return nil }
        var value: UInt32 = 0
        for octet in octets {
            guard let byte = UInt8(octet) else { return nil }
            value = value << 8 | UInt32(byte)
        }
        return value
    }
}
