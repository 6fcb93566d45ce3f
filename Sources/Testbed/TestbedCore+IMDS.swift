import Foundation
import Synchronization

/// IMDSv2 as EC2 serves it: a token from `PUT /latest/api/token`, then GETs with the token.
extension TestbedCore {
    static let tokenPath = "/latest/api/token"
    static let tokenHeader = "X-aws-ec2-metadata-token"
    static let ttlHeader = "X-aws-ec2-metadata-token-ttl-seconds"

    static let imdsErrors = ServiceErrors(
        contentType: "text/plain",
        throttle: { HTTPResponse(status: 429, contentType: "text/plain", text: "") },
        error: { status, _ in imdsError(status) }
    )

    /// The HTML-ish body IMDS answers errors with.
    static func imdsError(_ status: Int) -> HTTPResponse {
        let reason: String
        switch status {
        case 400: reason = "Bad Request"
        case 401: return HTTPResponse(status: 401, contentType: "text/plain", text: "")
        case 403: reason = "Forbidden"
        case 404: reason = "Not Found"
        case 405: reason = "Method Not Allowed"
        case 500: reason = "Internal Server Error"
        case 503: reason = "Service Unavailable"
        default: reason = "Error"
        }
        let body = """
            <?xml version="1.0" encoding="iso-8859-1"?>
            <!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
            \t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
            <html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">
             <head>
              <title>\(status) - \(reason)</title>
             </head>
             <body>
              <h1>\(status) - \(reason)</h1>
             </body>
            </html>

            """
        return HTTPResponse(status: status, contentType: "text/html", text: body)
    }

    /// IMDS serves every API version under its date (`/2021-03-23/meta-data/…`, what cloud-init's
    /// Ec2 datasource reads) as under `/latest/`; the testbed has one version, so a dated path is
    /// answered as its `/latest/` twin. Other paths are unchanged.
    static func latestPath(_ path: String) -> String {
        let parts = path.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        // "/2021-03-23/x" splits into "", "2021-03-23/x": look at the first segment after the slash.
        guard path.hasPrefix("/"), parts.count == 2 else { return path }
        let rest = parts[1]
        let segment = rest.prefix { $0 != "/" }
        let digits = segment.split(separator: "-", omittingEmptySubsequences: false)
        guard digits.map(\.count) == [4, 2, 2], digits.allSatisfy({ $0.allSatisfy(\.isASCII) && $0.allSatisfy(\.isNumber) })
        else { return path }
        return "/latest" + rest.dropFirst(segment.count)
    }

    func handleIMDS(_ request: HTTPRequest) async -> HTTPReply {
        if let (member, path) = fleet.member(imdsPath: request.path) {
            return await handleFleetIMDS(request, member: member, path: path)
        }
        let action = request.path == TestbedCore.tokenPath ? "GetToken" : nil
        let fault = takeFault(.imds, path: request.path, action: nil)
        return await recorded(endpoint: "imds", request: request, action: action, fault: fault) {
            await apply(fault, errors: TestbedCore.imdsErrors) { imdsResponse(request, now: Date()) }
        }
    }

    /// - Parameter documents: a fleet instance's documents; nil: the instance's, from the network model.
    func imdsResponse(_ request: HTTPRequest, now: Date, documents fleetDocuments: [String: String]? = nil)
        -> HTTPResponse
    {
        if request.path == TestbedCore.tokenPath {
            guard request.method == "PUT" else { return TestbedCore.imdsError(405) }
            // IMDS refuses token requests that went through a proxy.
            if request.header("X-Forwarded-For") != nil { return TestbedCore.imdsError(403) }
            guard let raw = request.header(TestbedCore.ttlHeader),
                let ttl = Int(raw.trimmingCharacters(in: .whitespaces)),
                (1...configuration.imdsTokenMaxTtlSeconds).contains(ttl)
            else {
                return TestbedCore.imdsError(400)
            }
            let token = issueToken(ttl: ttl, now: now)
            return HTTPResponse(
                status: 200, contentType: "text/plain", text: token,
                headers: [(name: TestbedCore.ttlHeader, value: String(ttl))])
        }
        guard request.method == "GET" || request.method == "HEAD" else { return TestbedCore.imdsError(405) }
        if let token = request.header(TestbedCore.tokenHeader) {
            guard isValidToken(token, now: now) else { return TestbedCore.imdsError(401) }
        } else if instance.imdsv2 {
            return TestbedCore.imdsError(401)
        }
        let documents = fleetDocuments ?? state.withLock { $0.network.imdsDocuments(now: now) }
        let path = TestbedCore.latestPath(request.path)
        guard let document = InstanceModel.lookup(path, in: documents) else { return TestbedCore.imdsError(404) }
        return HTTPResponse(status: 200, contentType: "text/plain", text: document)
    }
}
