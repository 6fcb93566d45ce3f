public import NodeConfig
public import NodeRender
import Support
import WireJSON

/// nodeadm's `--config-cache`: the resolved config and what enrichment found, so a re-run with
/// the same spec needs no IMDS/EC2 calls, and a re-run whose sources hold nothing falls back to it.
/// The file is JSON: `apiVersion`, `kind`, `spec` (nodeadm's `.spec` shape: empty strings
/// omitted, empty structs as `{}`) and `status` (nodeboot's discovery).
public struct ConfigCache: Sendable {
    public var config: NodeConfig
    public var status: Discovery

    public init(config: NodeConfig, status: Discovery) {
        self.config = config
        self.status = status
    }

    /// nil when the file is absent or unreadable (a warning is the caller's to print).
    public static func load(_ path: String) -> (cache: ConfigCache?, problem: String?) {
        let bytes: [UInt8]?
        do {
            bytes = try NodeFileSystem.read(path)
        } catch {
            return (nil, "\(error)")
        }
        guard let bytes else { return (nil, nil) }
        let origin = DocumentOrigin(source: "config cache \(path)")
        let (located, diagnostics) = NodeConfigDecoder.decodeLocated(
            RawDocument(origin: origin, bytes: bytes), allowStatus: true)
        guard let located else {
            return (nil, diagnostics.first.map { "\($0)" } ?? "unreadable")
        }
        let status: Discovery
        do {
            status = try Discovery(json: JSONObject(parsing: bytes).object("status"))
        } catch {
            return (nil, "\(path): the status member is missing or unreadable: \(error)")
        }
        return (ConfigCache(config: located.config, status: status), nil)
    }

    public func encoded() -> [UInt8] {
        let status = self.status.json.sortedKeys.text
        let head = JSONText.object([
            ("apiVersion", .string(NodeConfig.apiVersion)), ("kind", .string(NodeConfig.kind)),
            ("spec", Self.specJSON(config.spec)),
        ]).rendered(indent: 0)
        return Array((head.dropLast() + ",\"status\":" + status + "}\n").utf8)
    }

    /// The spec as nodeadm's JSON encoding writes it (`omitempty` strings and lists, structs always).
    public static func specJSON(_ spec: NodeConfig.Spec) -> JSONText {
        func strings(_ pairs: [(String, String)]) -> [(String, JSONText)] {
            pairs.filter { !$0.1.isEmpty }.map { ($0.0, .string($0.1)) }
        }
        func list(_ name: String, _ items: [String]) -> [(String, JSONText)] {
            items.isEmpty ? [] : [(name, .array(items.map(JSONText.string)))]
        }
        let cluster = spec.cluster
        var clusterMembers = strings([
            ("apiServerEndpoint", cluster.apiServerEndpoint), ("certificateAuthority", cluster.certificateAuthority),
            ("cidr", cluster.cidr), ("id", cluster.id), ("name", cluster.name),
        ])
        if let outpost = cluster.enableOutpost { clusterMembers.append(("enableOutpost", .bool(outpost))) }
        var containerd = strings([("config", spec.containerd.config)])
        if let runtime = spec.containerd.baseRuntimeSpec { containerd.append(("baseRuntimeSpec", JSONText(runtime))) }
        let storage = spec.instance.localStorage
        var instance: [(String, JSONText)] = [
            (
                "localStorage",
                .object(
                    strings([("strategy", storage.strategy), ("mountPath", storage.mountPath)])
                        + list("disabledMounts", storage.disabledMounts))
            ),
            (
                "network",
                .object(
                    list("nameservers", spec.instance.network.nameservers) + list("domains", spec.instance.network.domains))
            ),
        ]
        if !spec.instance.storage.volumes.isEmpty {
            let volumes = spec.instance.storage.volumes.map { volume in
                JSONText.object(
                    strings([("device", volume.device), ("mountTarget", volume.mountTarget)])
                        + list("mountTargets", volume.mountTargets) + strings([("fsType", volume.fsType)]))
            }
            instance.append(("storage", .object([("volumes", .array(volumes))])))
        }
        if !spec.instance.environment.isEmpty {
            instance.append(
                (
                    "environment",
                    .object(
                        spec.instance.environment.sorted { $0.key < $1.key }.map { unit, variables in
                            (unit, .object(variables.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
                        })
                ))
        }
        var kubelet: [(String, JSONText)] = []
        if let config = spec.kubelet.config { kubelet.append(("config", JSONText(config))) }
        kubelet += list("flags", spec.kubelet.flags) + strings([("maxPodsExpression", spec.kubelet.maxPodsExpression)])
        var members: [(String, JSONText)] = [
            ("cluster", .object(clusterMembers)), ("containerd", .object(containerd)), ("instance", .object(instance)),
            ("kubelet", .object(kubelet)),
        ]
        if !spec.featureGates.isEmpty {
            members.append(
                ("featureGates", .object(spec.featureGates.sorted { $0.key < $1.key }.map { ($0.key, .bool($0.value)) })))
        }
        return .object(members)
    }
}
