import Foundation
import SigV4
import Synchronization

/// The Kubernetes API server: discovery, `/version` and nodes (list, get, create, update, patch,
/// delete, watch), with `k8s-aws-v1` bearer tokens checked as aws-iam-authenticator does.
extension TestbedCore {
    /// An authenticated Kubernetes user.
    struct KubeUser: Equatable {
        var username: String
        var groups: [String]
        var accessKeyID: String

        var isAdmin: Bool { groups.contains("system:masters") }
        /// The node name of a `system:node:<name>` user in `system:nodes`.
        var nodeName: String? {
            guard groups.contains("system:nodes"), username.hasPrefix("system:node:") else { return nil }
            return String(username.dropFirst("system:node:".count))
        }
    }

    /// What a request asks for.
    struct KubeRoute {
        enum Target: Equatable {
            case version, apiVersions, apiGroups, coreResources
            case nodes
            case node(String, status: Bool)
            case unknown
        }

        var target: Target
        var verb: String
        var watch: Bool
    }

    static let kubeErrors = ServiceErrors(
        contentType: "application/json",
        throttle: { KubeStatus.forFault(429).response },
        error: { status, _ in KubeStatus.forFault(status).response }
    )

    func handleKube(_ request: HTTPRequest) async -> HTTPReply {
        let query = TestbedCore.kubeQuery(request.rawQuery)
        let route = TestbedCore.kubeRoute(request, query: query)
        let fault = takeFault(.kube, path: request.path, action: route.verb)
        var user: KubeUser?
        var reason: String?
        return await recorded(
            endpoint: "kube", request: request, action: route.verb, fault: fault, accessKeyId: { user?.accessKeyID },
            username: { user?.username }, reason: { reason }
        ) {
            await applyReply(fault, errors: TestbedCore.kubeErrors) {
                switch authenticateKube(request, now: Date()) {
                case .failure(let failure):
                    reason = failure.reason
                    return .response(KubeStatus.unauthorized.response)
                case .success(let authenticated):
                    user = authenticated
                    do throws(KubeStatus) {
                        return try routeKube(request, route: route, query: query, user: authenticated)
                    } catch {
                        return .response(error.response)
                    }
                }
            }
        }
    }

    // MARK: Authentication

    func authenticateKube(_ request: HTTPRequest, now: Date) -> Result<KubeUser, KubeTokenVerifier.Failure> {
        let token: String
        switch KubeTokenVerifier.bearerToken(request.header("Authorization")) {
        case .failure(let failure): return .failure(failure)
        case .success(let value): token = value
        }
        let verifier = KubeTokenVerifier(clusterName: kubeClusterName, region: instance.region)
        let roleCredentials = role.credentials
        let keys = staticKeys
        let result = verifier.verify(token, now: now) { accessKeyID in
            if accessKeyID == roleCredentials.accessKeyID { return roleCredentials }
            if let member = fleetCredentials(accessKeyID) { return member }
            if let key = keys[accessKeyID] {
                return SigV4Credentials(accessKeyID: key.accessKeyId, secretAccessKey: key.secretAccessKey)
            }
            return nil
        }
        let caller: KubeTokenVerifier.Caller
        switch result {
        case .failure(let failure): return .failure(failure)
        case .success(let value): caller = value
        }
        if let fleetUser = fleetKubeUser(caller.accessKeyID, now: now) { return fleetUser }
        let isRole = caller.accessKeyID == roleCredentials.accessKeyID
        if isRole, now >= role.expiration {
            return .failure(KubeTokenVerifier.Failure("STS: ExpiredToken: the instance role's credentials have expired"))
        }
        return mapUser(accessKeyID: caller.accessKeyID, isRole: isRole)
    }

    /// The identity mapping: `kubeAPI.users` first, then (unless turned off) the role as the node
    /// and the static keys as `kubernetes-admin`.
    func mapUser(accessKeyID: String, isRole: Bool) -> Result<KubeUser, KubeTokenVerifier.Failure> {
        let sessionName = isRole ? instance.instanceID : ""
        if let mapping = configuration.kubeAPI.users.first(where: { $0.accessKeyId == accessKeyID }) {
            let username = mapping.username.replacingOccurrences(
                of: "{{EC2PrivateDNSName}}", with: configuration.privateDnsName
            ).replacingOccurrences(of: "{{AccessKeyID}}", with: accessKeyID).replacingOccurrences(
                of: "{{SessionName}}", with: sessionName)
            return .success(KubeUser(username: username, groups: mapping.groups, accessKeyID: accessKeyID))
        }
        guard configuration.kubeAPI.defaultMappings else {
            return .failure(
                KubeTokenVerifier.Failure(
                    "access key \(accessKeyID) is valid but not mapped to a user (kubeAPI.users; defaultMappings is false)"))
        }
        if isRole {
            return .success(
                KubeUser(
                    username: "system:node:\(configuration.privateDnsName)",
                    groups: ["system:bootstrappers", "system:nodes"], accessKeyID: accessKeyID))
        }
        return .success(KubeUser(username: "kubernetes-admin", groups: ["system:masters"], accessKeyID: accessKeyID))
    }

    // MARK: Routing

    static func kubeQuery(_ raw: String) -> [String: String] {
        var query: [String: String] = [:]
        // Go encodes spaces in query values as '+'.
        for (name, value) in SigV4Signer.parseQuery(Substring(raw.replacingOccurrences(of: "+", with: "%20")))
        where query[name] == nil {
            query[name] = value
        }
        return query
    }

    static func kubeRoute(_ request: HTTPRequest, query: [String: String]) -> KubeRoute {
        let watchParameter = ["1", "true"].contains(query["watch"]?.lowercased() ?? "")
        let segments = request.path.split(separator: "/", omittingEmptySubsequences: true).map {
            SigV4Signer.percentDecode($0)
        }
        let target: KubeRoute.Target
        var watch = watchParameter
        switch segments {
        case ["version"]: target = .version
        case ["api"]: target = .apiVersions
        case ["apis"]: target = .apiGroups
        case ["api", "v1"]: target = .coreResources
        case ["api", "v1", "nodes"]: target = .nodes
        case ["api", "v1", "watch", "nodes"]:
            target = .nodes
            watch = true
        default:
            if segments.count == 4, segments[0...2] == ["api", "v1", "nodes"] {
                target = .node(segments[3], status: false)
            } else if segments.count == 5, segments[0...2] == ["api", "v1", "nodes"], segments[4] == "status" {
                target = .node(segments[3], status: true)
            } else if segments.count == 5, segments[0...3] == ["api", "v1", "watch", "nodes"] {
                target = .node(segments[4], status: false)
                watch = true
            } else {
                target = .unknown
            }
        }
        let verb: String
        switch request.method {
        case "GET", "HEAD":
            if watch {
                verb = "watch"
            } else if target == .nodes {
                verb = "list"
            } else {
                verb = "get"
            }
        case "POST": verb = "create"
        case "PUT": verb = "update"
        case "PATCH": verb = "patch"
        case "DELETE": verb = "delete"
        default: verb = request.method.lowercased()
        }
        return KubeRoute(target: target, verb: verb, watch: watch)
    }

    func routeKube(_ request: HTTPRequest, route: KubeRoute, query: [String: String], user: KubeUser) throws(KubeStatus)
        -> HTTPReply
    {
        let table = TableRequest(accept: request.header("Accept"), includeObject: query["includeObject"])
        switch route.target {
        case .version, .apiVersions, .apiGroups, .coreResources:
            guard request.method == "GET" || request.method == "HEAD" else { throw .methodNotAllowed }
            return .response(kubeJSON(200, discovery(route.target)))
        case .unknown:
            throw .unknownPath
        case .nodes:
            switch route.verb {
            case "list":
                try authorize(user, route.verb, name: nil)
                return .response(try listNodes(query: query, table: table))
            case "watch":
                try authorize(user, route.verb, name: nil)
                return try watchNodes(query: query, name: nil, table: table)
            case "create":
                let body = try parseBody(request)
                let name = body[path: ["metadata", "name"]]?.stringValue
                try authorize(user, route.verb, name: name)
                return .response(kubeJSON(201, try createNode(body)))
            default:
                throw .methodNotAllowed
            }
        case .node(let name, let status):
            switch route.verb {
            case "get":
                try authorize(user, route.verb, name: name)
                guard let node = kubeStore.node(name) else { throw .notFound(name) }
                if let table { return .response(kubeJSON(200, TestbedCore.nodeTable([node], table: table))) }
                return .response(kubeJSON(200, node))
            case "watch" where !status:
                try authorize(user, route.verb, name: name)
                return try watchNodes(query: query, name: name, table: table)
            case "update":
                try authorize(user, route.verb, name: name)
                return .response(kubeJSON(200, try updateNode(name, body: try parseBody(request), status: status)))
            case "patch":
                try authorize(user, route.verb, name: name)
                return .response(kubeJSON(200, try patchNode(name, request: request, status: status)))
            case "delete" where !status:
                try authorize(user, route.verb, name: name)
                return .response(kubeJSON(200, try deleteNode(name)))
            default:
                throw .methodNotAllowed
            }
        }
    }

    /// RBAC as EKS sets it up, for nodes: `system:masters` may do anything; a node
    /// (`system:node:<name>` in `system:nodes`) may read every node and change only its own.
    func authorize(_ user: KubeUser, _ verb: String, name: String?) throws(KubeStatus) {
        if user.isAdmin { return }
        if let own = user.nodeName {
            if ["get", "list", "watch"].contains(verb) { return }
            if let name, name == own { return }
            let why = name.map { "node \"\(own)\" is not allowed to modify node \"\($0)\"" }
            throw .forbidden(user: user.username, verb: verb, name: name, why: why)
        }
        throw .forbidden(user: user.username, verb: verb, name: name)
    }

    func kubeJSON(_ status: Int, _ value: JSONValue) -> HTTPResponse {
        HTTPResponse(status: status, contentType: "application/json", text: value.compact() + "\n")
    }

    func parseBody(_ request: HTTPRequest) throws(KubeStatus) -> JSONValue {
        guard let body = JSONValue.parse(request.body), body.objectFields != nil else {
            throw .badRequest("the body of the request is not a JSON object")
        }
        return body
    }

    // MARK: Discovery

    func discovery(_ target: KubeRoute.Target) -> JSONValue {
        switch target {
        case .version:
            let version = servedClusterVersion
            return .object([
                ("major", .string(version.major)), ("minor", .string(version.minor)),
                ("gitVersion", .string(version.git)),
                ("gitCommit", .string("0000000000000000000000000000000000000000")),
                ("gitTreeState", .string("clean")), ("buildDate", .string("2024-01-01T00:00:00Z")),
                ("goVersion", .string("go1.22.5")), ("compiler", .string("gc")),
                ("platform", .string(TestbedCore.platform)),
            ])
        case .apiVersions:
            return .object([
                ("kind", .string("APIVersions")), ("versions", .array([.string("v1")])),
                (
                    "serverAddressByClientCIDRs",
                    .array([
                        .object([("clientCIDR", .string("0.0.0.0/0")), ("serverAddress", .string(advertisedKubeAddress))])
                    ])
                ),
            ])
        case .apiGroups:
            return .object([("kind", .string("APIGroupList")), ("apiVersion", .string("v1")), ("groups", .array([]))])
        default:
            let verbs = ["create", "delete", "get", "list", "patch", "update", "watch"].map(JSONValue.string)
            return .object([
                ("kind", .string("APIResourceList")), ("groupVersion", .string("v1")),
                (
                    "resources",
                    .array([
                        .object([
                            ("name", .string("nodes")), ("singularName", .string("node")), ("namespaced", .bool(false)),
                            ("kind", .string("Node")), ("verbs", .array(verbs)), ("shortNames", .array([.string("no")])),
                        ]),
                        .object([
                            ("name", .string("nodes/status")), ("singularName", .string("")),
                            ("namespaced", .bool(false)), ("kind", .string("Node")),
                            ("verbs", .array(["get", "patch", "update"].map(JSONValue.string))),
                        ]),
                    ])
                ),
            ])
        }
    }

    static var platform: String {
        #if arch(arm64)
            "linux/arm64"
        #else
            "linux/amd64"
        #endif
    }

    /// `/version` from the served cluster's `version` (`1.31` → `v1.31.0-eks-testbed`).
    var servedClusterVersion: (major: String, minor: String, git: String) {
        let version = configuration.clusters.first { $0.name == kubeClusterName }?.version ?? "1.31"
        let parts = version.split(separator: ".").map(String.init)
        let major = parts.first ?? "1"
        let minor = parts.count > 1 ? parts[1] : "0"
        let patch = parts.count > 2 ? parts[2] : "0"
        return (major, minor, "v\(major).\(minor).\(patch)-eks-testbed")
    }

    // MARK: Nodes

    func listNodes(query: [String: String], table: TableRequest?) throws(KubeStatus) -> HTTPResponse {
        let filter = try TestbedCore.filter(query, name: nil)
        let (items, version) = kubeStore.state.withLock { state in
            (state.nodes.keys.sorted().compactMap { state.nodes[$0] }, state.resourceVersion)
        }
        let matching = items.filter(filter.matches)
        if let table {
            return kubeJSON(200, TestbedCore.nodeTable(matching, table: table, resourceVersion: version))
        }
        return kubeJSON(
            200,
            .object([
                ("kind", .string("NodeList")), ("apiVersion", .string("v1")),
                ("metadata", .object([("resourceVersion", .string(String(version)))])),
                ("items", .array(matching.map { $0.removing(["kind"]).removing(["apiVersion"]) })),
            ]))
    }

    static func filter(_ query: [String: String], name: String?) throws(KubeStatus) -> KubeStore.Filter {
        var filter = KubeStore.Filter()
        if let text = query["labelSelector"], !text.isEmpty {
            filter.labelSelector = try LabelSelector.parse(text).get()
        }
        var fields = query["fieldSelector"] ?? ""
        if let name { fields = fields.isEmpty ? "metadata.name=\(name)" : fields + ",metadata.name=\(name)" }
        if !fields.isEmpty { filter.fieldSelector = try FieldSelector.parse(fields).get() }
        return filter
    }

    func watchNodes(query: [String: String], name: String?, table: TableRequest?) throws(KubeStatus) -> HTTPReply {
        let filter = try TestbedCore.filter(query, name: name)
        let start: KubeStore.WatchStart
        switch query["resourceVersion"] ?? "" {
        case "", "0": start = .currentState
        case let text:
            guard let version = Int(text), version >= 0 else {
                throw .badRequest("resourceVersion: Invalid value: \"\(text)\": must be a number")
            }
            start = .after(version)
        }
        let timeout = query["timeoutSeconds"].flatMap { Int($0) }.flatMap { $0 > 0 ? Duration.seconds($0) : nil }
        let headers = [(name: "Content-Type", value: "application/json")]
        guard let events = kubeStore.watch(filter, from: start) else {
            // Kubernetes answers an expired version inside the watch: one ERROR event, then the end.
            guard case .after(let version) = start else { throw .badRequest("watch could not start") }
            let status = KubeStatus.expired(version, oldest: kubeStore.oldestWatchableVersion).json
            let line = JSONValue.object([("type", .string("ERROR")), ("object", status)]).compact() + "\n"
            let (chunks, continuation) = AsyncStream.makeStream(of: [UInt8].self)
            continuation.yield(Array(line.utf8))
            continuation.finish()
            return .stream(watchStream(HTTPStream(status: 200, headers: headers, chunks: chunks, timeout: nil)))
        }
        let chunks = events.map { @Sendable event -> [UInt8] in
            let object = table.map { TestbedCore.nodeTable([event.object], table: $0) } ?? event.object
            return Array((JSONValue.object([("type", .string(event.type)), ("object", object)]).compact() + "\n").utf8)
        }
        return .stream(watchStream(HTTPStream(status: 200, headers: headers, chunks: chunks, timeout: timeout)))
    }

    /// Counts the watch as open until its response is over.
    func watchStream(_ stream: HTTPStream) -> HTTPStream {
        var stream = stream
        openWatches.withLock { $0 += 1 }
        stream.onFinish = { self.openWatches.withLock { $0 -= 1 } }
        return stream
    }

    /// Ends every watch and waits (at most `timeout`) until their responses are closed cleanly,
    /// with the final chunk, before the listeners go.
    func endWatches(timeout: Duration) async {
        kubeStore.close()
        let deadline = ContinuousClock.now + timeout
        while openWatches.withLock({ $0 }) > 0, ContinuousClock.now < deadline {
            do {
                try await Task.sleep(for: .milliseconds(5))
            } catch {
                return  // cancelled: shut down at once
            }
        }
    }

    func createNode(_ body: JSONValue) throws(KubeStatus) -> JSONValue {
        if let kind = body["kind"]?.stringValue, kind != "Node" {
            throw .badRequest("the object is a \(kind), not a Node")
        }
        if let apiVersion = body["apiVersion"]?.stringValue, apiVersion != "v1" {
            throw .badRequest(
                "the API version in the data (\(apiVersion)) does not match the expected API version (v1)")
        }
        var name = body[path: ["metadata", "name"]]?.stringValue ?? ""
        if name.isEmpty, let prefix = body[path: ["metadata", "generateName"]]?.stringValue, !prefix.isEmpty {
            name = prefix + Testbed.random(5, from: "bcdfghjklmnpqrstvwxz2456789")
        }
        guard !name.isEmpty else {
            throw .invalid("", "metadata.name: Required value: name or generateName is required")
        }
        try TestbedCore.validateName(name)
        var node = body.setting(["metadata", "name"], to: .string(name))
            .setting(["metadata", "uid"], to: .string(UUID().uuidString.lowercased()))
            .setting(["metadata", "creationTimestamp"], to: .string(ISO8601.format(Date())))
            .setting(["kind"], to: .string("Node")).setting(["apiVersion"], to: .string("v1"))
        if node["spec"]?.objectFields == nil { node = node.setting(["spec"], to: .object([])) }
        if node["status"]?.objectFields == nil { node = node.setting(["status"], to: .object([])) }
        let created = TestbedCore.normalized(node)
        let result = try kubeStore.update(name) { (old, _) throws(KubeStatus) -> JSONValue? in
            guard old == nil else { throw .alreadyExists(name) }
            return created
        }
        return result.new ?? created
    }

    /// A lowercase RFC 1123 subdomain, as node names must be.
    static func validateName(_ name: String) throws(KubeStatus) {
        let labels = name.split(separator: ".", omittingEmptySubsequences: false)
        let valid =
            name.count <= 253
            && labels.allSatisfy { label in
                guard let first = label.first, let last = label.last else { return false }
                func alnum(_ c: Character) -> Bool { c.isASCII && (c.isLowercase || c.isNumber) }
                return alnum(first) && alnum(last) && label.allSatisfy { alnum($0) || $0 == "-" }
            }
        guard valid else {
            throw .invalid(
                name,
                "metadata.name: Invalid value: \"\(name)\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character"
            )
        }
    }

    func updateNode(_ name: String, body: JSONValue, status: Bool) throws(KubeStatus) -> JSONValue {
        let bodyName = body[path: ["metadata", "name"]]?.stringValue ?? ""
        guard bodyName == name else {
            throw .badRequest("the name of the object (\(bodyName)) does not match the name on the URL (\(name))")
        }
        let result = try kubeStore.update(name) { (old, _) throws(KubeStatus) -> JSONValue? in
            guard let old else { throw .notFound(name) }
            if let version = body[path: ["metadata", "resourceVersion"]]?.stringValue, !version.isEmpty,
                version != old[path: ["metadata", "resourceVersion"]]?.stringValue
            {
                throw .conflict(name)
            }
            if status { return old.setting(["status"], to: body["status"] ?? .object([])) }
            return TestbedCore.keepingIdentity(body, of: old)
        }
        return result.new ?? body
    }

    func patchNode(_ name: String, request: HTTPRequest, status: Bool) throws(KubeStatus) -> JSONValue {
        let contentType = (request.header("Content-Type") ?? "").split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        let patch = JSONValue.parse(request.body)
        let result = try kubeStore.update(name) { (old, _) throws(KubeStatus) -> JSONValue? in
            guard let old else { throw .notFound(name) }
            var patched: JSONValue
            switch contentType {
            case "application/merge-patch+json", "application/strategic-merge-patch+json":
                guard let patch, patch.objectFields != nil else {
                    throw .badRequest("the patch is not a JSON object")
                }
                patched = old.mergePatched(with: patch)
            case "application/json-patch+json":
                guard let patch else { throw .badRequest("the patch is not JSON") }
                switch old.jsonPatched(with: patch) {
                case .success(let value): patched = value
                case .failure(let error): throw .badRequest("the JSON patch cannot be applied: \(error.message)")
                }
            default:
                throw .unsupportedMediaType(contentType ?? "none")
            }
            guard patched.objectFields != nil else { throw .badRequest("the patched object is not a JSON object") }
            guard patched[path: ["metadata", "name"]]?.stringValue == name else {
                throw .invalid(name, "metadata.name: Invalid value: the name of a node cannot be changed")
            }
            if let version = patched[path: ["metadata", "resourceVersion"]]?.stringValue, !version.isEmpty,
                version != old[path: ["metadata", "resourceVersion"]]?.stringValue
            {
                throw .conflict(name)
            }
            if status { return old.setting(["status"], to: patched["status"] ?? .object([])) }
            return TestbedCore.keepingIdentity(patched, of: old)
        }
        return result.new ?? .null
    }

    func deleteNode(_ name: String) throws(KubeStatus) -> JSONValue {
        let result = try kubeStore.update(name) { (old, _) throws(KubeStatus) -> JSONValue? in
            guard old != nil else { throw .notFound(name) }
            return nil
        }
        var details: [(String, JSONValue)] = [("name", .string(name)), ("kind", .string("nodes"))]
        if let uid = result.old?[path: ["metadata", "uid"]] { details.append(("uid", uid)) }
        return .object([
            ("kind", .string("Status")), ("apiVersion", .string("v1")), ("metadata", .object([])),
            ("status", .string("Success")), ("details", .object(details)),
        ])
    }

    /// Sets the node's `Ready` condition to `True` (as a kubelet would); nil when there is no such node.
    func markNodeReady(_ name: String, now: Date) -> JSONValue? {
        // The only failure is NotFound, which the nil answer reports.
        let result = try? kubeStore.update(name) { (old, _) throws(KubeStatus) -> JSONValue? in
            guard let old else { throw .notFound(name) }
            let time = JSONValue.string(ISO8601.format(now))
            var conditions: [JSONValue] = []
            if case .array(let items) = old[path: ["status", "conditions"]] { conditions = items }
            let previous = conditions.first { $0["type"]?.stringValue == "Ready" }
            let transition = previous?["status"]?.stringValue == "True" ? previous?["lastTransitionTime"] ?? time : time
            let ready = JSONValue.object([
                ("type", .string("Ready")), ("status", .string("True")), ("lastHeartbeatTime", time),
                ("lastTransitionTime", transition), ("reason", .string("KubeletReady")),
                ("message", .string("kubelet is posting ready status")),
            ])
            conditions.removeAll { $0["type"]?.stringValue == "Ready" }
            conditions.append(ready)
            return old.setting(["status", "conditions"], to: .array(conditions))
        }
        return result?.new
    }

    /// `new` with the server-owned metadata of `old` (name, uid, creation time).
    static func keepingIdentity(_ new: JSONValue, of old: JSONValue) -> JSONValue {
        var node = new.setting(["kind"], to: .string("Node")).setting(["apiVersion"], to: .string("v1"))
        for field in ["name", "uid", "creationTimestamp"] {
            if let value = old[path: ["metadata", field]] { node = node.setting(["metadata", field], to: value) }
        }
        return normalized(node)
    }

    /// Field order as the API server writes a Node.
    static func normalized(_ node: JSONValue) -> JSONValue {
        var result = node.ordered(["kind", "apiVersion", "metadata", "spec", "status"])
        if result[path: ["metadata", "resourceVersion"]] == nil {
            // A place for the version the store stamps.
            result = result.setting(["metadata", "resourceVersion"], to: .string(""))
        }
        if let metadata = result["metadata"] {
            result = result.setting(
                ["metadata"],
                to: metadata.ordered([
                    "name", "generateName", "uid", "resourceVersion", "creationTimestamp", "labels", "annotations",
                ]))
        }
        return result
    }
}
