/// One fault the testbed injects into the requests it matches.
///
/// JSON (in the configuration file's `faults`, or `PUT /_testbed/faults` on the AWS port):
///
/// ```json
/// {"endpoint": "ec2", "action": "DescribeInstances", "throttle": true, "count": 2}
/// {"endpoint": "imds", "path": "/latest/api/token", "status": 500}
/// {"endpoint": "eks", "path": "/clusters/my-cluster", "latencyMs": 1500}
/// {"endpoint": "sts", "blackhole": true}
/// {"endpoint": "kube", "path": "/api/v1/nodes", "action": "watch", "status": 500}
/// ```
///
/// - `endpoint`: `imds`, `ec2`, `eks`, `sts` or `kube` (required).
/// - `path`: a path prefix to match (IMDS path, EKS path such as `/clusters/my-cluster`, or
///   Kubernetes API path such as `/api/v1/nodes`).
/// - `action`: the Query API `Action` to match (EC2, STS), or the Kubernetes verb (`get`, `list`,
///   `watch`, `create`, `update`, `patch`, `delete`; discovery and `/version` are `get`).
/// - `latencyMs`: delay before answering (combines with every other effect).
/// - `status`: answer this HTTP status with the service's error body (`code` overrides the error code).
/// - `throttle`: answer the service's throttling error (EC2 `RequestLimitExceeded` 503,
///   EKS `ThrottlingException` 429, STS `Throttling` 400, IMDS 429, kube `TooManyRequests` 429).
/// - `blackhole`: accept the request and never answer; the connection stays open until the client
///   closes it or the testbed shuts down.
/// - `garbageBody`: answer 200 with a body that is neither XML nor JSON.
/// - `truncatedBody`: answer 200 with the real headers but a `Content-Length` larger than the bytes
///   sent, then close the connection.
/// - `count`: apply to the first N matching requests only; absent = every matching request.
/// - `probability`: apply to each matching request with this probability (0…1); absent = 1.
///
/// When several effects are set, the first of blackhole, throttle, status, garbage, truncated wins.
/// The first matching rule (in order) applies; its `count` is used up by that match.
public struct FaultRule: Codable, Sendable, Equatable {
    public enum Endpoint: String, Codable, Sendable, CaseIterable {
        case imds, ec2, eks, sts, kube
    }

    public var endpoint: Endpoint
    public var path: String?
    public var action: String?
    public var latencyMs: Int?
    public var status: Int?
    public var code: String?
    public var throttle: Bool?
    public var blackhole: Bool?
    public var garbageBody: Bool?
    public var truncatedBody: Bool?
    public var count: Int?
    public var probability: Double?

    public init(
        endpoint: Endpoint, path: String? = nil, action: String? = nil, latencyMs: Int? = nil, status: Int? = nil,
        code: String? = nil, throttle: Bool? = nil, blackhole: Bool? = nil, garbageBody: Bool? = nil,
        truncatedBody: Bool? = nil, count: Int? = nil, probability: Double? = nil
    ) {
        self.endpoint = endpoint
        self.path = path
        self.action = action
        self.latencyMs = latencyMs
        self.status = status
        self.code = code
        self.throttle = throttle
        self.blackhole = blackhole
        self.garbageBody = garbageBody
        self.truncatedBody = truncatedBody
        self.count = count
        self.probability = probability
    }

    public static func latency(_ endpoint: Endpoint, ms: Int, path: String? = nil, action: String? = nil) -> Self {
        FaultRule(endpoint: endpoint, path: path, action: action, latencyMs: ms)
    }

    public static func status(
        _ endpoint: Endpoint, _ status: Int, path: String? = nil, action: String? = nil, count: Int? = nil
    ) -> Self {
        FaultRule(endpoint: endpoint, path: path, action: action, status: status, count: count)
    }

    public static func throttle(_ endpoint: Endpoint, path: String? = nil, action: String? = nil, count: Int? = nil)
        -> Self
    {
        FaultRule(endpoint: endpoint, path: path, action: action, throttle: true, count: count)
    }

    public static func blackhole(_ endpoint: Endpoint, path: String? = nil, action: String? = nil, count: Int? = nil)
        -> Self
    {
        FaultRule(endpoint: endpoint, path: path, action: action, blackhole: true, count: count)
    }

    public static func garbage(_ endpoint: Endpoint, path: String? = nil, action: String? = nil, count: Int? = nil)
        -> Self
    {
        FaultRule(endpoint: endpoint, path: path, action: action, garbageBody: true, count: count)
    }

    public static func truncated(_ endpoint: Endpoint, path: String? = nil, action: String? = nil, count: Int? = nil)
        -> Self
    {
        FaultRule(endpoint: endpoint, path: path, action: action, truncatedBody: true, count: count)
    }

    /// What the rule does to a response, once matched.
    enum Effect: Equatable {
        case none, blackhole, throttle, status(Int), garbage, truncated
    }

    var effect: Effect {
        if blackhole == true { return .blackhole }
        if throttle == true { return .throttle }
        if let status { return .status(status) }
        if garbageBody == true { return .garbage }
        if truncatedBody == true { return .truncated }
        return .none
    }

    func matches(endpoint: Endpoint, path: String, action: String?) -> Bool {
        guard endpoint == self.endpoint else { return false }
        if let prefix = self.path, !path.hasPrefix(prefix) { return false }
        if let wanted = self.action, wanted != action { return false }
        return true
    }

    /// Problems that make the rule meaningless, each naming the field.
    func validationErrors(at location: String) -> [String] {
        var problems: [String] = []
        if let status, !(100...599).contains(status) {
            problems.append("\(location).status: \(status) is not an HTTP status (100-599)")
        }
        if let latencyMs, latencyMs < 0 { problems.append("\(location).latencyMs: must not be negative") }
        if let count, count < 0 { problems.append("\(location).count: must not be negative") }
        if let probability, !(0...1).contains(probability) {
            problems.append("\(location).probability: must be between 0 and 1")
        }
        if action != nil, endpoint == .imds || endpoint == .eks {
            problems.append("\(location).action: \(endpoint.rawValue) has no Action; match it with 'path'")
        }
        return problems
    }
}
