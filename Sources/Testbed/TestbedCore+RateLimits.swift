import Foundation
import Logging

/// AWS-like throttling of the AWS endpoint (``RateLimits``) and its control calls.
extension TestbedCore {
    /// The throttling answer when the call's token bucket is empty (recorded with fault
    /// `rateLimit`), else nil: the call goes on.
    func rateLimited(_ call: AWSCall, _ request: HTTPRequest) -> HTTPReply? {
        guard !rateLimiter.take(service: call.service.rawValue, action: call.action) else { return nil }
        let response = errors(for: call.service).throttle()
        // The key the credential scope names, unchecked: which caller was throttled.
        let accessKey = TestbedCore.credentialScopeAccessKey(request, query: call.query)
        record(
            RecordedRequest(
                endpoint: call.service.rawValue, method: request.method, path: request.path, action: call.action,
                status: response.status, fault: "rateLimit", accessKeyId: accessKey, time: Date(), durationMs: 0))
        return .response(response)
    }

    /// The access key id in the `Authorization` header's or `X-Amz-Credential`'s scope.
    static func credentialScopeAccessKey(_ request: HTTPRequest, query: [(name: String, value: String)]) -> String? {
        var credential: Substring?
        if let authorization = request.header("Authorization"), let range = authorization.range(of: "Credential=") {
            credential = authorization[range.upperBound...].prefix { $0 != "," && $0 != " " }
        } else if let value = query.first(where: { $0.name == "X-Amz-Credential" })?.value {
            credential = Substring(value)
        }
        return credential?.split(separator: "/").first.map(String.init)
    }

    /// `PUT|GET /_testbed/rate-limits`; nil for other paths.
    func rateLimitControl(_ request: HTTPRequest) -> HTTPResponse? {
        guard request.path == "/_testbed/rate-limits" else { return nil }
        func json(_ status: Int, _ value: JSONValue) -> HTTPResponse {
            HTTPResponse(status: status, contentType: "application/json", text: value.compact() + "\n")
        }
        switch request.method {
        case "GET":
            return json(200, rateLimiter.status())
        case "PUT":
            let limits: RateLimits
            do {
                limits = try JSONDecoder().decode(RateLimits.self, from: Data(request.body))
            } catch let error as DecodingError {
                return json(400, .object([("message", .string("rateLimits: \(describe(error))"))]))
            } catch {
                return json(400, .object([("message", .string("rateLimits: \(error)"))]))
            }
            let problems = limits.validationErrors()
            guard problems.isEmpty else {
                return json(400, .object([("message", .string(problems.joined(separator: "; ")))]))
            }
            rateLimiter.set(limits)
            logger.info("testbed rate limits set: \(limits.isEmpty ? "off" : "on")")
            return json(200, rateLimiter.status())
        default:
            return json(405, .object([("message", .string("use GET or PUT on /_testbed/rate-limits"))]))
        }
    }
}
