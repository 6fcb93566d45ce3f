import SigV4
import WireJSON

/// What `DescribeCluster` says about a cluster, reduced to what a node needs.
public struct EKSCluster: Sendable, Equatable {
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
        let cluster: JSONObject
        do {
            guard let decoded = try JSONObject(parsing: response.body).optionalObject("cluster") else {
                throw malformed(operation, endpoint: endpoint, "the response has no 'cluster' object")
            }
            cluster = decoded
        } catch let error as AWSError {
            throw error
        } catch {
            throw malformed(operation, endpoint: endpoint, "the response is not the expected JSON (\(error))")
        }
        let status: String
        let apiEndpoint: String?
        let ca: String?
        let network: JSONObject?
        do {
            status = try cluster.optionalString("status") ?? "UNKNOWN"
            apiEndpoint = try cluster.optionalString("endpoint")
            ca = try cluster.optionalObject("certificateAuthority")?.optionalString("data")
            network = try cluster.optionalObject("kubernetesNetworkConfig")
        } catch {
            throw malformed(operation, endpoint: endpoint, "the response is not the expected JSON (\(error))")
        }
        guard let apiEndpoint, let ca else {
            throw AWSError(
                .service, operation: operation, endpoint: endpoint,
                message: "cluster '\(name)' has no endpoint or certificate authority yet (status \(status))",
                hint: "wait until the cluster is ACTIVE")
        }
        do {
            return EKSCluster(
                name: try cluster.optionalString("name") ?? name, endpoint: apiEndpoint, certificateAuthority: ca,
                serviceIPv4CIDR: try network?.optionalString("serviceIpv4Cidr"),
                serviceIPv6CIDR: try network?.optionalString("serviceIpv6Cidr"),
                ipFamily: try network?.optionalString("ipFamily"), status: status,
                version: try cluster.optionalString("version"), platformVersion: try cluster.optionalString("platformVersion"))
        } catch {
            throw malformed(operation, endpoint: endpoint, "the response is not the expected JSON (\(error))")
        }
    }
}
