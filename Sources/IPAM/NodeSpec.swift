import Support
import WireJSON

/// `/etc/nodeboot/ipamd.json`: what `nodeboot init` tells the daemon about the node
/// (docs/ipamd.md §2, §9), rendered by `NodeRender.IPAMDSpec`:
/// `{"schema":"nodeboot.ipamd/v1","cluster":"my-cluster","ipFamily":"ipv4","maxPods":29,"instanceType":"m5.large",
/// "limits":{"maxENIs":3,"ipv4PerENI":10,"source":"table"},"vethPrefix":"eni"}`. Unknown members are ignored (a newer
/// init of the same schema may add some); another schema is refused.
public struct NodeSpec: Sendable, Equatable {
    public static let path = "/etc/nodeboot/ipamd.json"
    public static let schema = "nodeboot.ipamd/v1"

    /// The cluster's IP family, from its service CIDR.
    public enum IPFamily: String, Sendable, Equatable {
        case ipv4, ipv6
    }

    /// The instance type's ENI limits on its default network card, as `init` discovered them.
    public struct Limits: Sendable, Equatable {
        public var maxENIs: Int
        public var ipv4PerENI: Int
        /// `table` (nodeboot's embedded instance table) or `DescribeInstanceTypes`.
        public var source: String

        public init(maxENIs: Int, ipv4PerENI: Int, source: String) {
            self.maxENIs = maxENIs
            self.ipv4PerENI = ipv4PerENI
            self.source = source
        }
    }

    /// The cluster's name (EC2 tags of created ENIs, the leak sweep's filter); nil when absent or empty.
    public var cluster: String?
    public var ipFamily: IPFamily
    /// The kubelet's effective max pods: the pool never grows beyond it.
    public var maxPods: Int
    public var instanceType: String
    /// nil when `init` could not learn them (the daemon then asks DescribeInstanceTypes).
    public var limits: Limits?
    /// The prefix of pods' host-side veth names (`eni` + 11 hex digits).
    public var vethPrefix: String

    public init(
        cluster: String?, ipFamily: IPFamily, maxPods: Int, instanceType: String, limits: Limits?,
        vethPrefix: String = "eni"
    ) {
        self.cluster = cluster
        self.ipFamily = ipFamily
        self.maxPods = maxPods
        self.instanceType = instanceType
        self.limits = limits
        self.vethPrefix = vethPrefix
    }

    /// A file that cannot be used: it names the file, the field and what to do.
    public struct Refused: Error, Sendable, Equatable, CustomStringConvertible {
        public var path: String
        /// The member at fault (`limits.maxENIs`); nil when the file as a whole is.
        public var field: String?
        public var message: String
        public var hint: String

        public var description: String {
            "\(path): " + (field.map { "field '\($0)' " } ?? "") + message + "; " + hint
        }
    }

    static let rewriteHint =
        "nodeboot init writes this file (with --daemon nodeboot-ipamd): run it again rather than editing the file"

    /// The spec at `path`; nil when there is no such file. Anything else that keeps the file
    /// from being used is `Refused`.
    public static func load(_ path: String) throws(Refused) -> NodeSpec? {
        let bytes: [UInt8]?
        do {
            bytes = try NodeFileSystem.read(path, limit: 64 << 10)
        } catch {
            throw Refused(path: path, field: nil, message: "cannot be read: \(error)", hint: rewriteHint)
        }
        guard let bytes else { return nil }
        return try parse(bytes, path: path)
    }

    /// The spec in `bytes` (read from `path`, which the errors name).
    public static func parse(_ bytes: [UInt8], path: String = NodeSpec.path) throws(Refused) -> NodeSpec {
        func refuse(_ field: String?, _ message: String, _ hint: String = rewriteHint) -> Refused {
            Refused(path: path, field: field, message: message, hint: hint)
        }
        let json: JSON
        do {
            json = try JSON(parsing: bytes)
        } catch {
            throw refuse(nil, "is not JSON: \(error)")
        }
        guard json.members != nil else { throw refuse(nil, "is not a JSON object") }
        func string(_ object: JSON, _ name: String, _ field: String) throws(Refused) -> String {
            guard let value = object[name] else { throw refuse(field, "is missing") }
            guard let text = value.string else { throw refuse(field, "is not a string") }
            return text
        }
        func count(_ object: JSON, _ name: String, _ field: String) throws(Refused) -> Int {
            guard let value = object[name] else { throw refuse(field, "is missing") }
            guard let number = value.int, number >= 1 else {
                throw refuse(field, "is \(value.text), not a whole number of 1 or more")
            }
            return number
        }

        let schema = try string(json, "schema", "schema")
        guard schema == Self.schema else {
            throw refuse(
                "schema", "is '\(schema)'; this nodeboot reads only \(Self.schema)",
                "the file was written by another nodeboot version: run this version's nodeboot init --daemon nodeboot-ipamd")
        }
        var cluster: String?
        if let value = json["cluster"], !value.isNull {
            guard let text = value.string else { throw refuse("cluster", "is not a string") }
            cluster = text.isEmpty ? nil : text
        }
        let familyText = try string(json, "ipFamily", "ipFamily")
        guard let family = IPFamily(rawValue: familyText) else {
            throw refuse("ipFamily", "is '\(familyText)', not ipv4 or ipv6")
        }
        let maxPods = try count(json, "maxPods", "maxPods")
        let instanceType = try string(json, "instanceType", "instanceType")
        guard !instanceType.isEmpty else { throw refuse("instanceType", "is empty") }
        var limits: Limits?
        if let value = json["limits"], !value.isNull {
            guard value.members != nil else { throw refuse("limits", "is not an object") }
            limits = Limits(
                maxENIs: try count(value, "maxENIs", "limits.maxENIs"),
                ipv4PerENI: try count(value, "ipv4PerENI", "limits.ipv4PerENI"),
                source: try string(value, "source", "limits.source"))
        }
        let vethPrefix = try string(json, "vethPrefix", "vethPrefix")
        // The host veth is the prefix and 11 hex digits: interface names have at most 15 characters.
        guard (1...4).contains(vethPrefix.utf8.count),
            vethPrefix.utf8.allSatisfy({ ($0 >= 0x61 && $0 <= 0x7A) || ($0 >= 0x30 && $0 <= 0x39) })
        else {
            throw refuse("vethPrefix", "is '\(vethPrefix)', not 1 to 4 lowercase letters or digits")
        }
        return NodeSpec(
            cluster: cluster, ipFamily: family, maxPods: maxPods, instanceType: instanceType, limits: limits,
            vethPrefix: vethPrefix)
    }
}
