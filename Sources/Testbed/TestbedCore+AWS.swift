import Foundation
import Logging
import SigV4

/// The AWS endpoint: one port for EC2, EKS and STS, told apart by the SigV4 credential scope,
/// plus the `/_testbed/` control API.
extension TestbedCore {
    enum Service: String {
        case ec2, eks, sts

        var faultEndpoint: FaultRule.Endpoint {
            switch self {
            case .ec2: .ec2
            case .eks: .eks
            case .sts: .sts
            }
        }
    }

    /// A request to an AWS service, parsed.
    struct AWSCall {
        var request: HTTPRequest
        var service: Service
        var query: [(name: String, value: String)]
        /// Query and form parameters together.
        var parameters: [(name: String, value: String)]
        var action: String?

        func parameter(_ name: String) -> String? {
            parameters.first { $0.name == name }?.value
        }

        /// `Name.1`, `Name.2`, … in order.
        func list(_ name: String) -> [String] {
            var values: [String] = []
            var index = 1
            while let value = parameter("\(name).\(index)") {
                values.append(value)
                index += 1
            }
            return values
        }
    }

    func handleAWS(_ request: HTTPRequest) async -> HTTPReply {
        if request.path.hasPrefix("/_testbed/") { return .response(control(request)) }
        let call = parse(request)
        let fault = takeFault(call.service.faultEndpoint, path: request.path, action: call.action)
        if fault == nil, let throttled = rateLimited(call, request) { return throttled }
        var signer: String?
        return await recorded(
            endpoint: call.service.rawValue, request: request, action: call.action, fault: fault,
            accessKeyId: { signer }
        ) {
            await apply(fault, errors: errors(for: call.service)) {
                switch authenticate(call, now: Date()) {
                case .failure(let error): return error.response
                case .success(let identity):
                    signer = identity.accessKeyID
                    return await dispatch(call, identity: identity)
                }
            }
        }
    }

    func parse(_ request: HTTPRequest) -> AWSCall {
        let query = SigV4Signer.parseQuery(Substring(request.rawQuery))
        var parameters = query
        let contentType = request.header("Content-Type")?.lowercased() ?? ""
        if request.method == "POST", contentType.hasPrefix("application/x-www-form-urlencoded") || contentType.isEmpty {
            // Form encoding writes spaces as '+', and a literal '+' as %2B.
            let form = String(decoding: request.body, as: UTF8.self).replacingOccurrences(of: "+", with: "%20")
            parameters += SigV4Signer.parseQuery(Substring(form))
        }
        let scopeService = TestbedCore.credentialScopeService(request, query: query)
        let service: Service
        if let scopeService, let known = Service(rawValue: scopeService) {
            service = known
        } else if request.path.hasPrefix("/clusters") {
            service = .eks
        } else if parameters.first(where: { $0.name == "Version" })?.value == "2011-06-15"
            || parameters.first(where: { $0.name == "Action" })?.value == "GetCallerIdentity"
        {
            service = .sts
        } else {
            service = .ec2
        }
        var call = AWSCall(request: request, service: service, query: query, parameters: parameters)
        call.action = service == .eks ? TestbedCore.eksOperation(request) : call.parameter("Action")
        return call
    }

    /// The service named in the `Authorization` header's or `X-Amz-Credential`'s scope.
    static func credentialScopeService(_ request: HTTPRequest, query: [(name: String, value: String)]) -> String? {
        var credential: Substring?
        if let authorization = request.header("Authorization"), let range = authorization.range(of: "Credential=") {
            credential = authorization[range.upperBound...].prefix { $0 != "," && $0 != " " }
        } else if let value = query.first(where: { $0.name == "X-Amz-Credential" })?.value {
            credential = Substring(value)
        }
        guard let parts = credential?.split(separator: "/", omittingEmptySubsequences: false), parts.count == 5 else {
            return nil
        }
        return String(parts[3])
    }

    /// Checks the signature against the role's and the static keys; an error response on failure.
    func authenticate(_ call: AWSCall, now: Date) -> Result<SigV4Verifier.Identity, ErrorResponse> {
        let request = SigV4Request(
            method: call.request.method, path: call.request.path, query: call.query, headers: call.request.headers,
            body: call.request.body)
        let roleCredentials = role.credentials
        let keys = staticKeys
        let result = SigV4Verifier.verify(request, now: now) { accessKeyID in
            if accessKeyID == roleCredentials.accessKeyID { return roleCredentials }
            if let member = fleetCredentials(accessKeyID) { return member }
            if let key = keys[accessKeyID] {
                return SigV4Credentials(accessKeyID: key.accessKeyId, secretAccessKey: key.secretAccessKey)
            }
            return nil
        }
        switch result {
        case .failure(let failure):
            return .failure(ErrorResponse(authFailure(failure, service: call.service)))
        case .success(let identity):
            let member = fleet.member(accessKeyID: identity.accessKeyID)
            let isRole = identity.accessKeyID == roleCredentials.accessKeyID || member != nil
            if isRole, now >= member?.role.expiration ?? role.expiration {
                let failure = SigV4Verifier.Failure(
                    code: "ExpiredToken", message: "The security token included in the request is expired", status: 400)
                return .failure(ErrorResponse(authFailure(failure, service: call.service)))
            }
            return .success(identity)
        }
    }

    struct ErrorResponse: Error {
        var response: HTTPResponse
        init(_ response: HTTPResponse) { self.response = response }
    }

    /// A verification failure written the way the service writes it.
    func authFailure(_ failure: SigV4Verifier.Failure, service: Service) -> HTTPResponse {
        switch service {
        case .ec2:
            switch failure.code {
            case "InvalidClientTokenId":
                return TestbedCore.ec2Error(
                    401, "AuthFailure", "AWS was not able to validate the provided access credentials")
            case "MissingAuthenticationToken":
                return TestbedCore.ec2Error(401, failure.code, failure.message)
            default:
                return TestbedCore.ec2Error(failure.status, failure.code, failure.message)
            }
        case .sts:
            return TestbedCore.stsError(failure.status, failure.code, failure.message)
        case .eks:
            let code: String
            switch failure.code {
            case "InvalidClientTokenId": code = "UnrecognizedClientException"
            case "SignatureDoesNotMatch": code = "InvalidSignatureException"
            default: code = failure.code.hasSuffix("Exception") ? failure.code : failure.code + "Exception"
            }
            return TestbedCore.eksError(failure.status, code, failure.message)
        }
    }

    func errors(for service: Service) -> ServiceErrors {
        switch service {
        case .ec2: TestbedCore.ec2Errors
        case .eks: TestbedCore.eksErrors
        case .sts: TestbedCore.stsErrors
        }
    }

    func dispatch(_ call: AWSCall, identity: SigV4Verifier.Identity) async -> HTTPResponse {
        switch call.service {
        case .ec2: return await ec2(call)
        case .eks: return eks(call)
        case .sts: return sts(call, identity: identity)
        }
    }

    // MARK: Control API

    func control(_ request: HTTPRequest) -> HTTPResponse {
        func json(_ status: Int, _ text: String) -> HTTPResponse {
            HTTPResponse(status: status, contentType: "application/json", text: text + "\n")
        }
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .iso8601
        encoder.outputFormatting = [.sortedKeys]
        if let response = networkControl(request) { return response }
        if let response = rateLimitControl(request) ?? fleetControl(request) { return response }
        switch (request.method, request.path) {
        case ("PUT", "/_testbed/faults"):
            let rules: [FaultRule]
            do {
                rules = try JSONDecoder().decode([FaultRule].self, from: Data(request.body))
            } catch let error as DecodingError {
                return json(400, JSONValue.object([("message", .string("faults: \(describe(error))"))]).compact())
            } catch {
                return json(400, JSONValue.object([("message", .string("faults: \(error)"))]).compact())
            }
            let problems = rules.enumerated().flatMap { $0.element.validationErrors(at: "faults[\($0.offset)]") }
            guard problems.isEmpty else {
                return json(400, JSONValue.object([("message", .string(problems.joined(separator: "; ")))]).compact())
            }
            setFaults(rules)
            logger.info("testbed faults set: \(rules.count) rule(s)")
            return json(200, JSONValue.object([("faults", .number(Double(rules.count)))]).compact())
        case ("GET", "/_testbed/faults"):
            guard let data = try? encoder.encode(faults()) else {  // encoding plain values cannot fail
                return json(500, "{}")
            }
            return json(200, String(decoding: data, as: UTF8.self))
        case ("POST", "/_testbed/imds/expire-tokens"):
            expireTokens()
            logger.info("testbed imds tokens expired")
            return HTTPResponse(status: 204)
        case ("GET", "/_testbed/requests"):
            guard let data = try? encoder.encode(records()) else {  // encoding plain values cannot fail
                return json(500, "[]")
            }
            return json(200, String(decoding: data, as: UTF8.self))
        case ("DELETE", "/_testbed/requests"):
            clearRecords()
            return HTTPResponse(status: 204)
        case ("POST", let path) where path.hasPrefix("/_testbed/kube/nodes/") && path.hasSuffix("/ready"):
            let name = SigV4Signer.percentDecode(
                path.dropFirst("/_testbed/kube/nodes/".count).dropLast("/ready".count))
            guard let node = markNodeReady(name, now: Date()) else {
                return json(404, JSONValue.object([("message", .string("no node named '\(name)'"))]).compact())
            }
            logger.info("testbed kube node \(name) marked ready")
            return json(200, node.compact())
        default:
            return json(
                404,
                JSONValue.object([
                    (
                        "message",
                        .string(
                            "unknown testbed control call \(request.method) \(request.path); known: PUT|GET /_testbed/faults, POST /_testbed/imds/expire-tokens, GET|DELETE /_testbed/requests, POST /_testbed/kube/nodes/NAME/ready, GET /_testbed/ec2/network, GET|POST /_testbed/ec2/network-interfaces, PUT /_testbed/ec2/lag, GET|PUT /_testbed/rate-limits, GET /_testbed/fleet"
                        )
                    )
                ]).compact())
        }
    }
}
