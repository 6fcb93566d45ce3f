import Foundation
import SigV4

/// EKS's REST-JSON API (`GET /clusters/{name}`) and STS's Query API (`GetCallerIdentity`).
extension TestbedCore {
    // MARK: EKS

    static let eksErrors = ServiceErrors(
        contentType: "application/json",
        throttle: { eksError(429, "ThrottlingException", "Rate exceeded") },
        error: { status, code in
            switch status {
            case 503: eksError(status, code ?? "ServiceUnavailableException", "Service unavailable.")
            case 500...: eksError(status, code ?? "ServerException", "An internal error has occurred.")
            case 404: eksError(status, code ?? "ResourceNotFoundException", "Not found.")
            case 403: eksError(status, code ?? "AccessDeniedException", "Access denied.")
            case 429: eksError(status, code ?? "TooManyRequestsException", "Too many requests.")
            default: eksError(status, code ?? "InvalidRequestException", "The request was rejected by the testbed.")
            }
        }
    )

    static func eksError(_ status: Int, _ code: String, _ message: String) -> HTTPResponse {
        HTTPResponse(
            status: status, contentType: "application/json",
            text: JSONValue.object([("message", .string(message))]).compact(),
            headers: [(name: "x-amzn-ErrorType", value: code), (name: "x-amzn-RequestId", value: RequestID.make())])
    }

    static func eksOperation(_ request: HTTPRequest) -> String? {
        let segments = request.path.split(separator: "/")
        guard request.method == "GET", segments.first == "clusters" else { return nil }
        switch segments.count {
        case 1: return "ListClusters"
        case 2: return "DescribeCluster"
        default: return nil
        }
    }

    func eks(_ call: AWSCall) -> HTTPResponse {
        let segments = call.request.path.split(separator: "/")
        switch call.action {
        case "ListClusters":
            let names = configuration.clusters.map { JSONValue.string($0.name) }
            return eksJSON(.object([("clusters", .array(names))]))
        case "DescribeCluster":
            let name = SigV4Signer.percentDecode(segments[1])
            guard let cluster = configuration.clusters.first(where: { $0.name == name }) else {
                return TestbedCore.eksError(404, "ResourceNotFoundException", "No cluster found for name: \(name).")
            }
            return eksJSON(.object([("cluster", clusterDocument(cluster))]))
        default:
            return TestbedCore.eksError(
                404, "UnknownOperationException", "The testbed does not serve \(call.request.method) \(call.request.path)")
        }
    }

    func eksJSON(_ value: JSONValue) -> HTTPResponse {
        HTTPResponse(
            status: 200, contentType: "application/json", text: value.compact(),
            headers: [(name: "x-amzn-RequestId", value: RequestID.make())])
    }

    func clusterDocument(_ cluster: TestbedConfiguration.Cluster) -> JSONValue {
        let region = instance.region
        let account = instance.accountID
        let primary = instance.interfaces[0]
        var network: [(String, JSONValue)] = []
        if let cidr = cluster.serviceIpv4Cidr { network.append(("serviceIpv4Cidr", .string(cidr))) }
        if let cidr = cluster.serviceIpv6Cidr { network.append(("serviceIpv6Cidr", .string(cidr))) }
        network.append(("ipFamily", .string(cluster.ipFamily ?? (cluster.serviceIpv6Cidr != nil ? "ipv6" : "ipv4"))))
        let securityGroups = cluster.securityGroupIds ?? primary.securityGroupIDs
        return .object([
            ("name", .string(cluster.name)),
            ("arn", .string("arn:aws:eks:\(region):\(account):cluster/\(cluster.name)")),
            ("createdAt", .number(1_700_000_000)),
            ("version", .string(cluster.version)),
            ("endpoint", .string(cluster.endpoint ?? advertisedKubeEndpoint)),
            ("roleArn", .string(cluster.roleArn ?? "arn:aws:iam::\(account):role/eks-cluster-role")),
            (
                "resourcesVpcConfig",
                .object([
                    ("subnetIds", .array((cluster.subnetIds ?? [primary.subnetID]).map(JSONValue.string))),
                    ("securityGroupIds", .array(securityGroups.map(JSONValue.string))),
                    (
                        "clusterSecurityGroupId",
                        .string(cluster.clusterSecurityGroupId ?? securityGroups.first ?? "sg-0123456789abcdef0")
                    ),
                    ("vpcId", .string(cluster.vpcId ?? primary.vpcID)),
                    ("endpointPublicAccess", .bool(true)),
                    ("endpointPrivateAccess", .bool(true)),
                    ("publicAccessCidrs", .array([.string("0.0.0.0/0")])),
                ])
            ),
            ("kubernetesNetworkConfig", .object(network)),
            (
                "identity",
                .object([
                    (
                        "oidc",
                        .object([
                            ("issuer", .string("https://oidc.eks.\(region).amazonaws.com/id/0123456789ABCDEF0123456789ABCDEF"))
                        ])
                    )
                ])
            ),
            ("status", .string(cluster.status)),
            (
                "certificateAuthority",
                .object([("data", .string(cluster.certificateAuthority ?? Data(kubeCAPEM.utf8).base64EncodedString()))])
            ),
            ("platformVersion", .string(cluster.platformVersion)),
            ("tags", .object(cluster.tags.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })),
            ("accessConfig", .object([("authenticationMode", .string("API_AND_CONFIG_MAP"))])),
        ])
    }

    // MARK: STS

    static let stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

    static let stsErrors = ServiceErrors(
        contentType: "text/xml",
        throttle: { stsError(400, "Throttling", "Rate exceeded") },
        error: { status, code in
            switch status {
            case 503: stsError(status, code ?? "ServiceUnavailable", "Service unavailable.", type: "Receiver")
            case 500...: stsError(status, code ?? "InternalFailure", "An internal error has occurred.", type: "Receiver")
            case 403: stsError(status, code ?? "AccessDenied", "Access denied.")
            default: stsError(status, code ?? "InvalidParameterValue", "The request was rejected by the testbed.")
            }
        }
    )

    static func stsError(_ status: Int, _ code: String, _ message: String, type: String = "Sender") -> HTTPResponse {
        let id = RequestID.make()
        let body =
            "<ErrorResponse xmlns=\"\(stsNamespace)\">\n  <Error>\n    " + XML.element("Type", type) + "\n    "
            + XML.element("Code", code) + "\n    " + XML.element("Message", message) + "\n  </Error>\n  "
            + XML.element("RequestId", id) + "\n</ErrorResponse>\n"
        return HTTPResponse(
            status: status, contentType: "text/xml", text: body, headers: [(name: "x-amzn-RequestId", value: id)])
    }

    func sts(_ call: AWSCall, identity: SigV4Verifier.Identity) -> HTTPResponse {
        guard call.action == "GetCallerIdentity" else {
            return TestbedCore.stsError(
                400, "InvalidAction", "Could not find operation \(call.action ?? "(none)") for version 2011-06-15")
        }
        let account = instance.accountID
        let arn: String
        let userID: String
        if identity.accessKeyID == role.credentials.accessKeyID {
            arn = "arn:aws:sts::\(account):assumed-role/\(configuration.role.name)/\(instance.instanceID)"
            userID = "AROA5BOGHHXZELSK34VU4:\(instance.instanceID)"
        } else if let member = fleet.member(accessKeyID: identity.accessKeyID) {
            arn = "arn:aws:sts::\(account):assumed-role/\(configuration.role.name)/\(member.info.instanceId)"
            userID = "AROA5BOGHHXZELSK34VU4:\(member.info.instanceId)"
        } else {
            let user = staticKeys[identity.accessKeyID]?.userName ?? identity.accessKeyID
            arn = "arn:aws:iam::\(account):user/\(user)"
            userID = identity.accessKeyID
        }
        let id = RequestID.make()
        let body =
            "<GetCallerIdentityResponse xmlns=\"\(TestbedCore.stsNamespace)\">\n  <GetCallerIdentityResult>\n    "
            + XML.element("Arn", arn) + "\n    " + XML.element("UserId", userID) + "\n    "
            + XML.element("Account", account) + "\n  </GetCallerIdentityResult>\n  <ResponseMetadata>\n    "
            + XML.element("RequestId", id) + "\n  </ResponseMetadata>\n</GetCallerIdentityResponse>\n"
        return HTTPResponse(
            status: 200, contentType: "text/xml", text: body, headers: [(name: "x-amzn-RequestId", value: id)])
    }
}
