import Support

/// An AWS call (IMDS included) that did not give a usable answer. The description is a full
/// sentence naming the operation and endpoint; `hint` says what the operator can do.
public struct AWSError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The service answered with an error code (`code`, `status`, `requestID` are set).
        case service
        /// IMDS has no such path (404).
        case notFound
        /// No HTTP answer: refused, reset, timed out (after retries).
        case unreachable
        /// The answer could not be read (truncated, not XML/JSON, fields missing).
        case malformedResponse
        /// No credentials anywhere in the chain.
        case noCredentials
        /// Misconfiguration on this side (bad endpoint URL, IMDS disabled, no region).
        case configuration
    }

    public var kind: Kind
    /// e.g. `EC2 DescribeInstances`, `IMDS GET /latest/meta-data/mac`.
    public var operation: String
    public var endpoint: String
    public var code: String?
    public var status: Int?
    public var requestID: String?
    public var message: String
    public var hint: String?

    public init(
        _ kind: Kind, operation: String, endpoint: String, message: String, code: String? = nil,
        status: Int? = nil, requestID: String? = nil, hint: String? = nil
    ) {
        self.kind = kind
        self.operation = operation
        self.endpoint = endpoint
        self.message = message
        self.code = code
        self.status = status
        self.requestID = requestID
        self.hint = hint
    }

    public var description: String {
        var text = summary
        if let hint { text += ". Hint: \(hint)" }
        return text
    }

    /// The description without the hint: for callers that show the hint on a line of its own.
    public var summary: String {
        var text = "\(operation) at \(endpoint) failed: "
        if let code { text += "\(code): " }
        text += message
        var details: [String] = []
        if let status { details.append("HTTP \(status)") }
        if let requestID { details.append("request id \(requestID)") }
        if !details.isEmpty { text += " (\(details.joined(separator: ", ")))" }
        return text
    }

    /// Throttling codes retried by every AWS SDK.
    public static let throttlingCodes: Set<String> = [
        "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
        "RequestLimitExceeded", "TooManyRequestsException", "ProvisionedThroughputExceededException",
        "RequestThrottled", "SlowDown", "EC2ThrottledException", "PriorRequestNotComplete",
    ]

    /// Transient server-side codes.
    public static let transientCodes: Set<String> = [
        "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure", "ServiceUnavailable",
        "ServiceUnavailableException",
    ]

    public var isThrottling: Bool { code.map(Self.throttlingCodes.contains) ?? false || status == 429 }

    /// Whether another attempt may succeed: throttling, 5xx, transient codes, no answer.
    public var isRetryable: Bool {
        switch kind {
        case .unreachable: return true
        case .service:
            if isThrottling { return true }
            if let code, Self.transientCodes.contains(code) { return true }
            return (status ?? 0) >= 500
        default: return false
        }
    }

    /// A hint for the errors operators meet most, given the IAM action the call needs.
    static func hint(code: String, action: String, context: String?) -> String? {
        switch code {
        case "UnauthorizedOperation", "AccessDenied", "AccessDeniedException":
            return "the node's IAM role (or the credentials in use) lacks '\(action)'; add it to the role's policy"
        case "ResourceNotFoundException":
            return context
        case "ExpiredToken", "ExpiredTokenException", "RequestExpired":
            return
                "the credentials have expired; instance-role credentials are refreshed from IMDS automatically, so check the system clock (chrony) and any static AWS_* variables"
        case "SignatureDoesNotMatch":
            return "the secret access key does not match the access key id, or the system clock is off by more than 5 minutes"
        case "InvalidClientTokenId", "UnrecognizedClientException", "AuthFailure":
            return "the access key id is not valid here: check the credentials, the region and the partition"
        case "InsufficientFreeAddressesInSubnet":
            return "the subnet has too few free IPv4 addresses; free addresses in it or give the node a larger subnet"
        case "InsufficientCidrBlocks":
            return
                "the subnet has no free aligned /28 block for a prefix (it may still have free addresses); reserve a CIDR range in the subnet for prefixes (subnet CIDR reservation)"
        case "PrivateIpAddressLimitExceeded":
            return "the network interface already holds as many IPv4 addresses and prefixes as the instance type allows"
        case "AttachmentLimitExceeded":
            return "the instance already has as many network interfaces as its type allows (MAX_ENI lowers the number used)"
        case _ where throttlingCodes.contains(code):
            return "AWS is throttling this account; stagger node launches or raise AWS_MAX_ATTEMPTS"
        default:
            return nil
        }
    }

    /// The hint for a request that got no answer through a proxy: the proxy is what to check.
    static func proxyHint(_ proxy: String) -> String {
        "the HTTP proxy \(proxy) (HTTPS_PROXY/HTTP_PROXY, e.g. from spec.instance.environment.default) cannot be reached or did not answer: check its host name and port, or exempt the endpoint with NO_PROXY"
    }

    /// The error a caller sees once retries are over: an `AWSError` keeps its code, with the retry
    /// summary appended; no answer at all (or any other failure) becomes `.unreachable` or
    /// `.service` naming the operation and endpoint.
    static func final(_ error: any Error, operation: String, endpoint: String, unreachableHint: String) -> any Error {
        var last = error
        var suffix = ""
        if let exhausted = error as? RetryExhausted {
            last = exhausted.last
            suffix = " " + exhausted.summary
        }
        switch last {
        case var error as AWSError:
            error.message += suffix
            return error
        case let error as TransportError where error.kind == .responseTooLarge:
            return AWSError(
                .malformedResponse, operation: operation, endpoint: endpoint, message: "\(error)",
                hint: "the response is larger than any the agent accepts")
        case let error as TransportError:
            return AWSError(
                .unreachable, operation: operation, endpoint: endpoint, message: "\(error)\(suffix)",
                hint: error.proxy.map(proxyHint) ?? unreachableHint)
        case is CancellationError:
            return last
        default:
            return AWSError(.service, operation: operation, endpoint: endpoint, message: "\(last)\(suffix)")
        }
    }
}
