public import Foundation

/// One request the testbed answered (or blackholed), for assertions such as
/// "exactly one DescribeCluster call". Never holds tokens, signatures or bodies.
public struct RecordedRequest: Codable, Sendable, Equatable {
    /// `imds`, `ec2`, `eks`, `sts`, `kube`, or `aws` when the service could not be told.
    public var endpoint: String
    public var method: String
    /// The path without the query.
    public var path: String
    /// The operation: the Query API `Action` (EC2, STS), `DescribeCluster`/`ListClusters` (EKS),
    /// `GetToken` for the IMDS token PUT, the Kubernetes verb (`get`, `list`, `watch`, `create`,
    /// `update`, `patch`, `delete`) for kube; nil for other IMDS reads.
    public var action: String?
    /// The HTTP status answered; nil when the request was blackholed.
    public var status: Int?
    /// The fault applied (`latency`, `throttle`, `status`, `blackhole`, `garbage`, `truncated`).
    public var fault: String?
    /// The access key that signed the request (AWS endpoints), when its signature was checked.
    public var accessKeyId: String?
    /// The Kubernetes user the request authenticated as (kube).
    public var username: String?
    /// Why the request was refused, when the answer alone does not say (kube: the precise
    /// authentication failure behind a 401 `Unauthorized`). Never holds the token.
    public var reason: String?
    public var time: Date
    public var durationMs: Double

    public init(
        endpoint: String, method: String, path: String, action: String?, status: Int?, fault: String?,
        accessKeyId: String?, username: String? = nil, reason: String? = nil, time: Date, durationMs: Double
    ) {
        self.endpoint = endpoint
        self.method = method
        self.path = path
        self.action = action
        self.status = status
        self.fault = fault
        self.accessKeyId = accessKeyId
        self.username = username
        self.reason = reason
        self.time = time
        self.durationMs = durationMs
    }
}
