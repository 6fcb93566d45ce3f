import Foundation

/// A request for server-side printing (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`),
/// as `kubectl get` sends it.
struct TableRequest: Sendable {
    /// `meta.k8s.io/v1` or `meta.k8s.io/v1beta1`.
    var apiVersion: String
    /// `None`, `Metadata` (the default) or `Object`: what each row's `object` holds.
    var includeObject: String

    /// The first acceptable Table media type in `Accept`, or nil when the client wants plain objects.
    init?(accept: String?, includeObject: String?) {
        guard let accept else { return nil }
        for mediaType in accept.split(separator: ",") {
            var parameters: [String: String] = [:]
            for parameter in mediaType.split(separator: ";").dropFirst() {
                let pair = parameter.split(separator: "=", maxSplits: 1).map {
                    $0.trimmingCharacters(in: .whitespaces)
                }
                if pair.count == 2 { parameters[pair[0]] = pair[1] }
            }
            guard parameters["as"] == "Table", parameters["g"] == "meta.k8s.io",
                let version = parameters["v"], version == "v1" || version == "v1beta1"
            else { continue }
            self.apiVersion = "meta.k8s.io/\(version)"
            self.includeObject = includeObject ?? "Metadata"
            return
        }
        return nil
    }
}

extension TestbedCore {
    static let nodeColumns: [(name: String, description: String, priority: Int, format: String)] = [
        ("Name", "Name must be unique within a namespace.", 0, "name"),
        ("Status", "The status of the node", 0, ""),
        ("Roles", "The roles of the node", 0, ""),
        ("Age", "CreationTimestamp is a timestamp representing the server time when this object was created.", 0, ""),
        ("Version", "Kubelet Version reported by the node.", 0, ""),
        ("Internal-IP", "List of internal IPs in the node.", 1, ""),
        ("External-IP", "List of external IPs in the node.", 1, ""),
        ("OS-Image", "OS image reported by the node from /etc/os-release.", 1, ""),
        ("Kernel-Version", "Kernel Version reported by the node from 'uname -r'.", 1, ""),
        ("Container-Runtime", "ContainerRuntime Version reported by the node through runtime remote API.", 1, ""),
    ]

    /// Nodes as a `Table`, with the columns `kubectl get nodes` (`-o wide`) shows.
    static func nodeTable(
        _ nodes: [JSONValue], table: TableRequest, resourceVersion: Int? = nil, now: Date = Date()
    ) -> JSONValue {
        let columns = nodeColumns.map { column in
            JSONValue.object([
                ("name", .string(column.name)), ("type", .string("string")), ("format", .string(column.format)),
                ("description", .string(column.description)), ("priority", .number(Double(column.priority))),
            ])
        }
        let rows = nodes.map { node -> JSONValue in
            var row: [(String, JSONValue)] = [("cells", .array(nodeCells(node, now: now).map(JSONValue.string)))]
            switch table.includeObject {
            case "None": break
            case "Object": row.append(("object", node))
            default:
                row.append(
                    (
                        "object",
                        .object([
                            ("kind", .string("PartialObjectMetadata")), ("apiVersion", .string("meta.k8s.io/v1")),
                            ("metadata", node["metadata"] ?? .object([])),
                        ])
                    ))
            }
            return .object(row)
        }
        var metadata: [(String, JSONValue)] = []
        if let resourceVersion { metadata.append(("resourceVersion", .string(String(resourceVersion)))) }
        return .object([
            ("kind", .string("Table")), ("apiVersion", .string(table.apiVersion)), ("metadata", .object(metadata)),
            ("columnDefinitions", .array(columns)), ("rows", .array(rows)),
        ])
    }

    static func nodeCells(_ node: JSONValue, now: Date) -> [String] {
        let name = node[path: ["metadata", "name"]]?.stringValue ?? ""
        var status = "Unknown"
        if case .array(let conditions) = node[path: ["status", "conditions"]],
            let ready = conditions.first(where: { $0["type"]?.stringValue == "Ready" })
        {
            switch ready["status"]?.stringValue {
            case "True": status = "Ready"
            case "False": status = "NotReady"
            default: status = "Unknown"
            }
        }
        if node[path: ["spec", "unschedulable"]] == .bool(true) { status += ",SchedulingDisabled" }
        var roles: [String] = []
        for (key, value) in node[path: ["metadata", "labels"]]?.objectFields ?? [] {
            if key.hasPrefix("node-role.kubernetes.io/") {
                let role = String(key.dropFirst("node-role.kubernetes.io/".count))
                if !role.isEmpty { roles.append(role) }
            } else if key == "kubernetes.io/role", let role = value.stringValue, !role.isEmpty {
                roles.append(role)
            }
        }
        let age =
            node[path: ["metadata", "creationTimestamp"]]?.stringValue.flatMap(ISO8601.parse).map {
                humanDuration(now.timeIntervalSince($0))
            } ?? "<unknown>"
        func address(_ type: String) -> String {
            guard case .array(let addresses) = node[path: ["status", "addresses"]] else { return "<none>" }
            return addresses.first { $0["type"]?.stringValue == type }?["address"]?.stringValue ?? "<none>"
        }
        func info(_ key: String) -> String {
            let value = node[path: ["status", "nodeInfo", key]]?.stringValue ?? ""
            return value.isEmpty ? "<unknown>" : value
        }
        return [
            name, status, roles.isEmpty ? "<none>" : Set(roles).sorted().joined(separator: ","), age,
            node[path: ["status", "nodeInfo", "kubeletVersion"]]?.stringValue ?? "",
            address("InternalIP"), address("ExternalIP"), info("osImage"), info("kernelVersion"),
            info("containerRuntimeVersion"),
        ]
    }

    /// Ages the way kubectl prints them (`45s`, `3m20s`, `25m`, `5h10m`, `3d4h`, `400d`).
    static func humanDuration(_ interval: TimeInterval) -> String {
        let seconds = Int(interval)
        if seconds < -1 { return "<invalid>" }
        if seconds < 0 { return "0s" }
        if seconds < 120 { return "\(seconds)s" }
        let minutes = seconds / 60
        if minutes < 10 { return seconds % 60 == 0 ? "\(minutes)m" : "\(minutes)m\(seconds % 60)s" }
        if minutes < 180 { return "\(minutes)m" }
        let hours = minutes / 60
        if hours < 8 { return minutes % 60 == 0 ? "\(hours)h" : "\(hours)h\(minutes % 60)m" }
        if hours < 48 { return "\(hours)h" }
        if hours < 24 * 8 { return hours % 24 == 0 ? "\(hours / 24)d" : "\(hours / 24)d\(hours % 24)h" }
        if hours < 24 * 365 * 2 { return "\(hours / 24)d" }
        let years = hours / (24 * 365)
        let days = (hours / 24) % 365
        if hours < 24 * 365 * 8 { return days == 0 ? "\(years)y" : "\(years)y\(days)d" }
        return "\(years)y"
    }
}
