import Foundation
import SigV4
import Testbed

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// What a test client saw.
struct HTTPResult: Sendable {
    var status: Int
    var headers: [String: String]
    var body: Data
    var text: String { String(decoding: body, as: UTF8.self) }

    func header(_ name: String) -> String? {
        headers.first { $0.key.lowercased() == name.lowercased() }?.value
    }
}

/// A small HTTP client for tests (URLSession, one session per request, no caching, no retries).
enum HTTP {
    static func send(
        _ url: String, method: String = "GET", headers: [String: String] = [:], body: Data? = nil,
        timeout: TimeInterval = 10
    ) async throws -> HTTPResult {
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.timeoutIntervalForResource = timeout
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        let session = URLSession(configuration: configuration)
        defer { session.finishTasksAndInvalidate() }
        guard let target = URL(string: url) else { throw URLError(.badURL) }
        var request = URLRequest(url: target)
        request.httpMethod = method
        request.timeoutInterval = timeout
        for (name, value) in headers { request.setValue(value, forHTTPHeaderField: name) }
        request.httpBody = body
        let (data, response) = try await session.data(for: request)
        guard let http = response as? HTTPURLResponse else { throw URLError(.badServerResponse) }
        var fields: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            fields[String(describing: name)] = String(describing: value)
        }
        return HTTPResult(status: http.statusCode, headers: fields, body: data)
    }

    // MARK: IMDS

    static func token(_ testbed: Testbed, ttl: String? = "21600", extra: [String: String] = [:]) async throws
        -> HTTPResult
    {
        var headers = extra
        if let ttl { headers["X-aws-ec2-metadata-token-ttl-seconds"] = ttl }
        return try await send(testbed.imdsEndpoint + "/latest/api/token", method: "PUT", headers: headers)
    }

    static func imds(_ testbed: Testbed, _ path: String, token: String?, timeout: TimeInterval = 10) async throws
        -> HTTPResult
    {
        var headers: [String: String] = [:]
        if let token { headers["X-aws-ec2-metadata-token"] = token }
        return try await send(testbed.imdsEndpoint + path, headers: headers, timeout: timeout)
    }

    /// A fresh token, or a failed expectation.
    static func validToken(_ testbed: Testbed) async throws -> String {
        let response = try await token(testbed)
        guard response.status == 200 else { throw TestFailure("token PUT answered \(response.status)") }
        return response.text
    }

    // MARK: AWS (signed with the SigV4 signer)

    /// A Query API call (EC2 or STS) as a signed form POST.
    static func query(
        _ testbed: Testbed, service: String, _ parameters: [(String, String)],
        credentials: SigV4Credentials? = nil, timeout: TimeInterval = 10
    ) async throws -> HTTPResult {
        let form = parameters.map { SigV4Signer.uriEncode($0.0) + "=" + SigV4Signer.uriEncode($0.1) }
            .joined(separator: "&")
        return try await signed(
            testbed, service: service, method: "POST", path: "/", body: Array(form.utf8),
            contentType: "application/x-www-form-urlencoded; charset=utf-8", credentials: credentials,
            timeout: timeout)
    }

    static func signed(
        _ testbed: Testbed, service: String, method: String, path: String, body: [UInt8] = [],
        contentType: String? = nil, credentials: SigV4Credentials? = nil, timeout: TimeInterval = 10
    ) async throws -> HTTPResult {
        let host = String(testbed.awsEndpoint.dropFirst("http://".count))
        var headers: [(name: String, value: String)] = [(name: "Host", value: host)]
        if let contentType { headers.append((name: "Content-Type", value: contentType)) }
        let request = SigV4Request(method: method, path: path, headers: headers, body: body)
        let signer = SigV4Signer(
            credentials: credentials ?? testbed.roleCredentials, region: testbed.region, service: service)
        let signedRequest = signer.sign(request, date: Date())
        var fields: [String: String] = [:]
        for header in signedRequest.headers where header.name != "Host" { fields[header.name] = header.value }
        return try await send(
            testbed.awsEndpoint + path, method: method, headers: fields, body: body.isEmpty ? nil : Data(body),
            timeout: timeout)
    }

    static func describeCluster(_ testbed: Testbed, _ name: String = "my-cluster", timeout: TimeInterval = 10)
        async throws -> HTTPResult
    {
        try await signed(testbed, service: "eks", method: "GET", path: "/clusters/\(name)", timeout: timeout)
    }

    static func describeInstances(_ testbed: Testbed, timeout: TimeInterval = 10) async throws -> HTTPResult {
        try await query(
            testbed, service: "ec2",
            [("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("InstanceId.1", "i-1234567890abcdef0")],
            timeout: timeout)
    }

    static func getCallerIdentity(_ testbed: Testbed, timeout: TimeInterval = 10) async throws -> HTTPResult {
        try await query(
            testbed, service: "sts", [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")], timeout: timeout)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The text of the first `<name>…</name>` in an XML document.
func xmlValue(_ name: String, in text: String) -> String? {
    guard let open = text.range(of: "<\(name)>"),
        let close = text.range(of: "</\(name)>", range: open.upperBound..<text.endIndex)
    else { return nil }
    return String(text[open.upperBound..<close.lowerBound])
}

/// Runs a testbed for the body and always shuts it down.
func withTestbed<T>(
    _ configuration: TestbedConfiguration = .default, _ body: (Testbed) async throws -> T
) async throws -> T {
    let testbed = try await Testbed.start(configuration)
    do {
        let result = try await body(testbed)
        try await testbed.shutdown()
        return result
    } catch {
        try await testbed.shutdown()
        throw error
    }
}
