import FoundationEssentials
import KubeAPI
import Support

/// The register phase's explanations: each failure of the API server's side as a sentence
/// naming the server and the request, with the fix an operator can apply.
extension ClusterAccess {
    /// The `NodeBootError` an operator can act on: what failed, and the fix for that kind of
    /// failure (access entry, CA, endpoint, network path). `elapsed`: since the phase began.
    func explain(_ error: KubeError, failures: Int, elapsed: Duration) -> NodeBootError {
        let server = kubeconfig.server
        let host = URL(string: server)?.host() ?? server
        let retried =
            failures > 1 ? " (after \(failures) attempts in \(elapsed.tenthsOfSeconds) s)" : ""
        switch error.kind {
        case .unauthorized:
            return NodeBootError(
                .kube,
                "the API server \(server) refused this node's token (401 Unauthorized) for \(error.request)"
                    + (tokens == nil ? "" : ", also after a fresh token from '\(commandLine)'"),
                hint: accessEntryHint, cause: error)
        case .forbidden:
            return NodeBootError(
                .kube,
                "the API server \(server) does not allow this node to \(error.request) (403 Forbidden): \(error.message)",
                hint:
                    "the API server knows this node's identity but does not let it do this: the role's EKS access entry must be of type EC2_LINUX (it maps the role to system:node:<private DNS name> in system:nodes), not STANDARD, and the node name must be the instance's private DNS name",
                cause: error)
        case .tls:
            return NodeBootError(
                .kube, "TLS with the API server \(server) failed: \(error.message)",
                hint:
                    "the cluster CA in \(caSource)\(fingerprintText) does not match the API server's certificate: set spec.cluster.certificateAuthority to the cluster's CA (aws eks describe-cluster --name \(clusterName) --query cluster.certificateAuthority.data) and the endpoint to the cluster's",
                cause: error)
        case .unreachable(.dns):
            return NodeBootError(
                .kube, "cannot resolve the API server host \(host)\(retried): \(error.message)",
                hint:
                    "cannot resolve \(host): check the endpoint (spec.cluster.apiServerEndpoint) and, for a private endpoint, that the VPC has DNS resolution and DNS hostnames enabled",
                cause: error)
        case .unreachable(.connectionRefused):
            return NodeBootError(
                .kube, "the API server \(server) refused the connection\(retried): \(error.message)",
                hint:
                    "nothing listens at \(server): check the endpoint (spec.cluster.apiServerEndpoint, aws eks describe-cluster --name \(clusterName) --query cluster.endpoint)",
                cause: error)
        case .unreachable(.timeout), .unreachable(.connection):
            return NodeBootError(
                .kube, "no answer from the API server \(server)\(retried): \(error.message)",
                hint:
                    "check the endpoint; with a private endpoint the cluster security group must allow HTTPS (443) from this node's security group; with a public-only endpoint the subnet needs a route to the internet (NAT gateway) and the node's address must be in publicAccessCidrs",
                cause: error)
        case .credentials:
            return NodeBootError(
                .kube, "no token for the API server: \(error.message)",
                hint: "run '\(commandLine)' on the node to see why", cause: error)
        case .cancelled:
            return NodeBootError(.internal, "node registration was cancelled", cause: error)
        case .configuration:
            return NodeBootError(.input, "kubeconfig \(kubeconfigFile): \(error.message)", cause: error)
        case .invalidName:
            return NodeBootError(
                .input, "\(error.request): \(error.message)",
                hint: "the node name is the instance's private DNS name, or its instance ID", cause: error)
        default:
            var message = "the API server \(server) failed \(error.request)\(retried): "
            message += error.status.map { "\($0) " } ?? ""
            message += (error.reason.map { "\($0): " } ?? "") + error.message
            return NodeBootError(
                .kube, message,
                hint: error.isTransient
                    ? "the API server is unhealthy or throttling; nodeboot init retries on the next run" : nil,
                cause: error)
        }
    }

    var accessEntryHint: String {
        "the API server does not accept this node's identity: the node's IAM role is not mapped — create an EKS access entry of type EC2_LINUX for the role (aws eks create-access-entry --cluster-name \(clusterName) --principal-arn ROLE_ARN --type EC2_LINUX), or map it in the aws-auth ConfigMap"
    }
}
