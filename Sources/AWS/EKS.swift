import FoundationEssentials
import SigV4

/// What `DescribeCluster` says about a cluster, reduced to what a node needs.
public struct EKSCluster: Sendable, Equatable, Codable {
    public var name: String
    public var endpoint: String
    /// Base64 PEM bundle, as the API gives it.
    public var certificateAuthority: String
    public var serviceIPv4CIDR: String?
    public var serviceIPv6CIDR: String?
    public var ipFamily: String?
    public var status: String
    public var version: String?
    public var platformVersion: String?
}

extension AWSClient {
    /// `eks:DescribeCluster`.
    public func describeCluster(name: String) async throws -> EKSCluster {
        let operation = "EKS DescribeCluster"
        let endpoint = endpointText(.eks)
        guard !name.isEmpty, name.utf8.allSatisfy({ $0 < 0x80 && $0 != 0x2F && $0 != 0x3F && $0 != 0x23 && $0 > 0x20 }) else {
            throw AWSError(
                .configuration, operation: operation, endpoint: endpoint, message: "'\(name)' is not a cluster name",
                hint: "cluster names are letters, digits, '-' and '_'")
        }
        let response = try await perform(
            Call(
                service: .eks, name: "DescribeCluster", action: "eks:DescribeCluster", method: "GET",
                path: "/clusters/\(SigV4Signer.uriEncode(name))", body: [], contentType: nil, errorProtocol: .restJSON,
                notFoundHint:
                    "no cluster '\(name)' in region \(region): check spec.cluster.name and the region (AWS_REGION or the instance's)"
            ))
        struct Envelope: Decodable {
            struct Cluster: Decodable {
                struct CA: Decodable { var data: String? }
                struct Network: Decodable {
                    var serviceIpv4Cidr: String?
                    var serviceIpv6Cidr: String?
                    var ipFamily: String?
                }
                var name: String?
                var endpoint: String?
                var certificateAuthority: CA?
                var kubernetesNetworkConfig: Network?
                var status: String?
                var version: String?
                var platformVersion: String?
            }
            var cluster: Cluster?
        }
        let cluster: Envelope.Cluster
        do {
            guard let decoded = try JSONDecoder().decode(Envelope.self, from: Data(response.body)).cluster else {
                throw malformed(operation, endpoint: endpoint, "the response has no 'cluster' object")
            }
            cluster = decoded
        } catch let error as AWSError {
            throw error
        } catch {
            throw malformed(operation, endpoint: endpoint, "the response is not the expected JSON (\(error))")
        }
        let status = cluster.status ?? "UNKNOWN"
        guard let apiEndpoint = cluster.endpoint, let ca = cluster.certificateAuthority?.data else {
            throw AWSError(
                .service, operation: operation, endpoint: endpoint,
                message: "cluster '\(name)' has no endpoint or certificate authority yet (status \(status))",
                hint: "wait until the cluster is ACTIVE")
        }
        return EKSCluster(
            name: cluster.name ?? name, endpoint: apiEndpoint, certificateAuthority: ca,
            serviceIPv4CIDR: cluster.kubernetesNetworkConfig?.serviceIpv4Cidr,
            serviceIPv6CIDR: cluster.kubernetesNetworkConfig?.serviceIpv6Cidr,
            ipFamily: cluster.kubernetesNetworkConfig?.ipFamily, status: status, version: cluster.version,
            platformVersion: cluster.platformVersion)
    }
}
