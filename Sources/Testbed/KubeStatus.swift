/// A Kubernetes `Status` failure, as the API server answers errors (kubectl prints `message`).
struct KubeStatus: Error, Sendable, Equatable {
    var code: Int
    var reason: String
    var message: String
    /// `details`: `name`, `kind` (the resource), or nil for none.
    var name: String? = nil
    var kind: String? = nil

    var json: JSONValue {
        var fields: [(String, JSONValue)] = [
            ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object([])),
            ("status", .string("Failure")), ("message", .string(message)), ("reason", .string(reason)),
        ]
        if name != nil || kind != nil {
            var details: [(String, JSONValue)] = []
            if let name { details.append(("name", .string(name))) }
            if let kind { details.append(("kind", .string(kind))) }
            fields.append(("details", .object(details)))
        }
        fields.append(("code", .number(Double(code))))
        return .object(fields)
    }

    var response: HTTPResponse {
        HTTPResponse(status: code, contentType: "application/json", text: json.compact() + "\n")
    }

    static let unauthorized = KubeStatus(code: 401, reason: "Unauthorized", message: "Unauthorized")

    static func badRequest(_ message: String) -> KubeStatus {
        KubeStatus(code: 400, reason: "BadRequest", message: message)
    }

    static func notFound(_ name: String) -> KubeStatus {
        KubeStatus(code: 404, reason: "NotFound", message: "nodes \"\(name)\" not found", name: name, kind: "nodes")
    }

    static let unknownPath = KubeStatus(
        code: 404, reason: "NotFound", message: "the server could not find the requested resource")

    static func alreadyExists(_ name: String) -> KubeStatus {
        KubeStatus(
            code: 409, reason: "AlreadyExists", message: "nodes \"\(name)\" already exists", name: name, kind: "nodes")
    }

    static func conflict(_ name: String) -> KubeStatus {
        KubeStatus(
            code: 409, reason: "Conflict",
            message:
                "Operation cannot be fulfilled on nodes \"\(name)\": the object has been modified; please apply your changes to the latest version and try again",
            name: name, kind: "nodes")
    }

    static func invalid(_ name: String, _ detail: String) -> KubeStatus {
        KubeStatus(
            code: 422, reason: "Invalid", message: "Node \"\(name)\" is invalid: \(detail)", name: name, kind: "Node")
    }

    static let methodNotAllowed = KubeStatus(
        code: 405, reason: "MethodNotAllowed", message: "the server does not allow this method on the requested resource")

    static func unsupportedMediaType(_ type: String) -> KubeStatus {
        KubeStatus(
            code: 415, reason: "UnsupportedMediaType",
            message: "the body of the request was in an unknown format - accepted media types include: "
                + "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, "
                + "application/strategic-merge-patch+json (got \(type))")
    }

    static func forbidden(user: String, verb: String, name: String?, why: String? = nil) -> KubeStatus {
        let object = name.map { "nodes \"\($0)\" is forbidden" } ?? "nodes is forbidden"
        let because = why.map { ": \($0)" } ?? ""
        return KubeStatus(
            code: 403, reason: "Forbidden",
            message:
                "\(object): User \"\(user)\" cannot \(verb) resource \"nodes\" in API group \"\" at the cluster scope\(because)",
            name: name, kind: "nodes")
    }

    static func expired(_ version: Int, oldest: Int) -> KubeStatus {
        KubeStatus(code: 410, reason: "Expired", message: "too old resource version: \(version) (\(oldest))")
    }

    /// The Status a fault's `status` answers with.
    static func forFault(_ code: Int) -> KubeStatus {
        switch code {
        case 400: badRequest("the testbed injected a 400 fault")
        case 401: unauthorized
        case 403: KubeStatus(code: 403, reason: "Forbidden", message: "forbidden (injected by the testbed)")
        case 404: unknownPath
        case 405: methodNotAllowed
        case 409: KubeStatus(code: 409, reason: "Conflict", message: "conflict (injected by the testbed)")
        case 429:
            KubeStatus(code: 429, reason: "TooManyRequests", message: "Too many requests, please try again later.")
        case 500: KubeStatus(code: 500, reason: "InternalError", message: "Internal error occurred: injected by the testbed")
        case 503:
            KubeStatus(code: 503, reason: "ServiceUnavailable", message: "the server is currently unable to handle the request")
        case 504:
            KubeStatus(code: 504, reason: "Timeout", message: "the server was unable to return a response in the time allotted")
        default: KubeStatus(code: code, reason: "Unknown", message: "the testbed injected a \(code) fault")
        }
    }
}
