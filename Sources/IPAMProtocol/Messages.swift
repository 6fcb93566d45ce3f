public import WireJSON

/// The protocol between `nodeboot-cni` and `nodeboot ipamd` (docs/ipamd.md §7): one line of
/// compact JSON per request, one per reply, on a Unix socket. Every message carries
/// `"v":"MAJOR.MINOR"`; the daemon serves its major (and the previous one for a release), and
/// each side ignores fields it does not know, so plugin and daemon of different minor versions
/// work together (aws-node requires an exact build match; upgrades hit it).
public enum IPAMWire {
    public static let version = ProtocolVersion(major: 1, minor: 0)
    public static let socketPath = "/run/nodeboot/ipamd.sock"
    /// A request or reply longer than this is refused (`badRequest`) and the connection closed.
    public static let maxMessageBytes = 64 << 10
}

public struct ProtocolVersion: Sendable, Equatable, CustomStringConvertible {
    public var major: Int
    public var minor: Int

    public init(major: Int, minor: Int) {
        self.major = major
        self.minor = minor
    }

    /// `"1.0"`; nil for anything else.
    public init?(_ text: String) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 2, let major = Int(parts[0]), let minor = Int(parts[1]), major >= 0, minor >= 0 else {
            return nil
        }
        self.init(major: major, minor: minor)
    }

    public var description: String { "\(major).\(minor)" }

    /// The majors this side serves: its own and, for one release, the previous one.
    public var acceptedMajors: [Int] { major > 1 ? [major, major - 1] : [major] }

    public func accepts(_ other: ProtocolVersion) -> Bool { acceptedMajors.contains(other.major) }
}

/// The pod a sandbox belongs to (from CNI_ARGS `K8S_POD_*`).
public struct PodReference: Sendable, Equatable, Hashable {
    public var namespace: String
    public var name: String
    public var uid: String

    public init(namespace: String, name: String, uid: String = "") {
        self.namespace = namespace
        self.name = name
        self.uid = uid
    }

    var json: JSON { ["namespace": .string(namespace), "name": .string(name), "uid": .string(uid)] }
}

/// What identifies one attachment, as the CNI spec does: container id, interface, network.
public struct AttachmentKey: Sendable, Equatable, Hashable, CustomStringConvertible {
    public var container: String
    public var ifname: String
    public var network: String

    public init(container: String, ifname: String, network: String) {
        self.container = container
        self.ifname = ifname
        self.network = network
    }

    public var description: String { "\(network)/\(container)/\(ifname)" }
}

/// What the daemon gives the plugin for one attachment.
public struct Assignment: Sendable, Equatable {
    /// Addresses with their prefix length: `10.0.97.30/32`, `2001:db8::5/128`.
    public var ips: [String]
    /// The ENI's device number (0: the primary ENI).
    public var device: Int
    /// The route table for the pod's traffic: 254 (main) on the primary ENI, else device + 1.
    public var table: Int
    public var mtu: Int
    public var vpcCIDRs: [String]
    public var externalSNAT: Bool
    public var eni: String

    public init(
        ips: [String], device: Int, table: Int, mtu: Int, vpcCIDRs: [String], externalSNAT: Bool, eni: String
    ) {
        self.ips = ips
        self.device = device
        self.table = table
        self.mtu = mtu
        self.vpcCIDRs = vpcCIDRs
        self.externalSNAT = externalSNAT
        self.eni = eni
    }

    var members: [JSON.Member] {
        [
            .init("ips", .array(ips.map { .string($0) })), .init("device", .int(device)), .init("table", .int(table)),
            .init("mtu", .int(mtu)), .init("vpcCIDRs", .array(vpcCIDRs.map { .string($0) })),
            .init("externalSNAT", .bool(externalSNAT)), .init("eni", .string(eni)),
        ]
    }

    init(_ json: JSON) throws(ProtocolError) {
        let fields = Fields(json)
        ips = try fields.strings("ips")
        device = try fields.int("device")
        table = try fields.int("table")
        mtu = try fields.int("mtu")
        vpcCIDRs = try fields.strings("vpcCIDRs")
        externalSNAT = try fields.bool("externalSNAT")
        eni = try fields.string("eni")
    }
}

/// An attachment a `gc` released: its key, address and pod (the plugin undoes its host side).
public struct Released: Sendable, Equatable {
    public var key: AttachmentKey
    public var address: String
    public var pod: PodReference?

    public init(key: AttachmentKey, address: String, pod: PodReference?) {
        self.key = key
        self.address = address
        self.pod = pod
    }
}

public enum Request: Sendable, Equatable {
    case add(AttachmentKey, netns: String, pod: PodReference)
    case del(AttachmentKey, pod: PodReference?, reason: String)
    case check(AttachmentKey)
    case status
    /// CNI GC: every attachment of `network` not in `valid` (container, ifname) is released.
    case gc(network: String, valid: [AttachmentKey])
    /// An operation this side does not know (a newer peer's): answered `unsupported`.
    case other(String)

    public var op: String {
        switch self {
        case .add: "add"
        case .del: "del"
        case .check: "check"
        case .status: "status"
        case .gc: "gc"
        case .other(let op): op
        }
    }

    public func json(version: ProtocolVersion = IPAMWire.version) -> JSON {
        var members: [JSON.Member] = [.init("v", .string(version.description)), .init("op", .string(op))]
        func key(_ key: AttachmentKey) {
            members += [
                .init("container", .string(key.container)), .init("ifname", .string(key.ifname)),
                .init("network", .string(key.network)),
            ]
        }
        switch self {
        case .add(let attachment, let netns, let pod):
            key(attachment)
            members += [.init("netns", .string(netns)), .init("pod", pod.json)]
        case .del(let attachment, let pod, let reason):
            key(attachment)
            if let pod { members.append(.init("pod", pod.json)) }
            members.append(.init("reason", .string(reason)))
        case .check(let attachment):
            key(attachment)
        case .gc(let network, let valid):
            members += [
                .init("network", .string(network)),
                .init(
                    "valid",
                    .array(
                        valid.map {
                            .object([.init("container", .string($0.container)), .init("ifname", .string($0.ifname))])
                        })),
            ]
        case .status, .other:
            break
        }
        return .object(members)
    }

    /// A request line's JSON: its version (checked against `served`) and the request. Every
    /// missing or mistyped field is a `badRequest` naming the field.
    public static func decode(_ json: JSON, served: ProtocolVersion = IPAMWire.version) throws(ProtocolError)
        -> (ProtocolVersion, Request)
    {
        guard json.members != nil else { throw ProtocolError(.badRequest, "a request is a JSON object") }
        let fields = Fields(json)
        let versionText = try fields.string("v")
        guard let version = ProtocolVersion(versionText) else {
            throw ProtocolError(.badRequest, "field 'v': '\(versionText)' is not MAJOR.MINOR")
        }
        guard served.accepts(version) else {
            throw ProtocolError(
                .version,
                "protocol \(version) is not served by this ipamd (\(served)); "
                    + "install matching nodeboot and nodeboot-cni builds",
                accepts: served.acceptedMajors.map(String.init))
        }
        let op = try fields.string("op")
        func key() throws(ProtocolError) -> AttachmentKey {
            AttachmentKey(
                container: try fields.nonEmpty("container"), ifname: try fields.nonEmpty("ifname"),
                network: try fields.nonEmpty("network"))
        }
        func pod(_ json: JSON) throws(ProtocolError) -> PodReference {
            let fields = Fields(json, prefix: "pod.")
            return PodReference(
                namespace: try fields.string("namespace"), name: try fields.string("name"),
                uid: try fields.optionalString("uid") ?? "")
        }
        switch op {
        case "add":
            guard let podJSON = json["pod"] else { throw ProtocolError(.badRequest, "field 'pod' is missing") }
            return (version, .add(try key(), netns: try fields.string("netns"), pod: try pod(podJSON)))
        case "del":
            let podJSON = json["pod"].flatMap { $0.isNull ? nil : $0 }
            return (
                version,
                .del(
                    try key(), pod: try podJSON.map { json throws(ProtocolError) in try pod(json) },
                    reason: try fields.optionalString("reason") ?? "")
            )
        case "check": return (version, .check(try key()))
        case "status": return (version, .status)
        case "gc":
            let network = try fields.nonEmpty("network")
            guard let items = json["valid"]?.array else { throw ProtocolError(.badRequest, "field 'valid' is not a list") }
            var valid: [AttachmentKey] = []
            for (index, item) in items.enumerated() {
                let entry = Fields(item, prefix: "valid[\(index)].")
                valid.append(
                    AttachmentKey(
                        container: try entry.nonEmpty("container"), ifname: try entry.nonEmpty("ifname"), network: network))
            }
            return (version, .gc(network: network, valid: valid))
        default: return (version, .other(op))
        }
    }
}

public enum Reply: Sendable, Equatable {
    case added(Assignment)
    /// `known` false: no such attachment (still a success, as CNI DEL must be).
    case deleted(known: Bool, Assignment?)
    case checked(Assignment)
    case status(JSON)
    /// `gc`'s answer: what it released.
    case collected([Released])
    case failed(ProtocolError)

    public func json(version: ProtocolVersion = IPAMWire.version) -> JSON {
        var members: [JSON.Member] = [.init("v", .string(version.description))]
        switch self {
        case .added(let assignment), .checked(let assignment):
            members.append(.init("ok", true))
            members += assignment.members
        case .deleted(let known, let assignment):
            members += [.init("ok", true), .init("known", .bool(known))]
            members += assignment?.members ?? []
        case .status(let status):
            members += [.init("ok", true), .init("status", status)]
        case .collected(let released):
            members += [
                .init("ok", true),
                .init(
                    "released",
                    .array(
                        released.map { item in
                            var entry: [JSON.Member] = [
                                .init("container", .string(item.key.container)), .init("ifname", .string(item.key.ifname)),
                                .init("address", .string(item.address)),
                            ]
                            if let pod = item.pod { entry.append(.init("pod", pod.json)) }
                            return .object(entry)
                        })),
            ]
        case .failed(let error):
            members += [.init("ok", false), .init("error", error.json)]
        }
        return .object(members)
    }

    /// A reply line's JSON, read as the answer to `request`.
    public static func decode(_ json: JSON, answering request: Request) throws(ProtocolError) -> Reply {
        let fields = Fields(json)
        guard try fields.bool("ok") else {
            guard let error = json["error"] else { throw ProtocolError(.internal, "a failed reply without 'error'") }
            return .failed(try ProtocolError(error))
        }
        switch request {
        case .add: return .added(try Assignment(json))
        case .check: return .checked(try Assignment(json))
        case .del:
            let known = try fields.bool("known")
            // Known without details: an address whose ENI the daemon no longer has.
            return .deleted(known: known, known && json["ips"] != nil ? try Assignment(json) : nil)
        case .status: return .status(json["status"] ?? .null)
        case .gc(let network, _):
            guard let items = json["released"]?.array else {
                throw ProtocolError(.internal, "a gc reply without 'released'")
            }
            var released: [Released] = []
            for (index, item) in items.enumerated() {
                let entry = Fields(item, prefix: "released[\(index)].")
                let pod = try item["pod"].map { json throws(ProtocolError) -> PodReference in
                    let fields = Fields(json, prefix: "released[\(index)].pod.")
                    return PodReference(
                        namespace: try fields.string("namespace"), name: try fields.string("name"),
                        uid: try fields.optionalString("uid") ?? "")
                }
                released.append(
                    Released(
                        key: AttachmentKey(
                            container: try entry.string("container"), ifname: try entry.string("ifname"), network: network),
                        address: try entry.string("address"), pod: pod))
            }
            return .collected(released)
        case .other: return .status(json)
        }
    }
}

/// A refused or failed request, as it travels in a reply.
public struct ProtocolError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable {
        case badRequest, version, notReady, noAddress, unknown, unsupported, `internal`
    }

    public var code: Code
    public var message: String
    /// Whether the same request may succeed later (the plugin's CNI error says so: code 11).
    public var retry: Bool
    /// With `.version`: the majors the daemon serves.
    public var accepts: [String]?

    public init(_ code: Code, _ message: String, retry: Bool? = nil, accepts: [String]? = nil) {
        self.code = code
        self.message = message
        self.retry = retry ?? [.notReady, .noAddress].contains(code)
        self.accepts = accepts
    }

    public var description: String { "\(code.rawValue): \(message)" }

    var json: JSON {
        var members: [JSON.Member] = [
            .init("code", .string(code.rawValue)), .init("retry", .bool(retry)), .init("message", .string(message)),
        ]
        if let accepts { members.append(.init("accepts", .array(accepts.map { .string($0) }))) }
        return .object(members)
    }

    init(_ json: JSON) throws(ProtocolError) {
        let fields = Fields(json, prefix: "error.")
        let code = try fields.string("code")
        self.init(
            Code(rawValue: code) ?? .internal, try fields.string("message"), retry: try fields.optionalBool("retry"),
            accepts: json["accepts"]?.array?.compactMap(\.string))
    }
}

/// Typed reads of an object's fields; each failure names the field.
struct Fields {
    let json: JSON
    let prefix: String

    init(_ json: JSON, prefix: String = "") {
        self.json = json
        self.prefix = prefix
    }

    func missing(_ name: String, _ kind: String) -> ProtocolError {
        json[name] == nil
            ? ProtocolError(.badRequest, "field '\(prefix)\(name)' is missing")
            : ProtocolError(.badRequest, "field '\(prefix)\(name)' is not \(kind)")
    }

    func string(_ name: String) throws(ProtocolError) -> String {
        guard let value = json[name]?.string else { throw missing(name, "a string") }
        return value
    }

    func nonEmpty(_ name: String) throws(ProtocolError) -> String {
        let value = try string(name)
        guard !value.isEmpty else { throw ProtocolError(.badRequest, "field '\(prefix)\(name)' is empty") }
        return value
    }

    func optionalString(_ name: String) throws(ProtocolError) -> String? {
        guard let value = json[name], !value.isNull else { return nil }
        guard let text = value.string else { throw missing(name, "a string") }
        return text
    }

    func int(_ name: String) throws(ProtocolError) -> Int {
        guard let value = json[name]?.int else { throw missing(name, "an integer") }
        return value
    }

    func bool(_ name: String) throws(ProtocolError) -> Bool {
        guard let value = json[name]?.bool else { throw missing(name, "true or false") }
        return value
    }

    func optionalBool(_ name: String) throws(ProtocolError) -> Bool? {
        guard let value = json[name], !value.isNull else { return nil }
        guard let flag = value.bool else { throw missing(name, "true or false") }
        return flag
    }

    func strings(_ name: String) throws(ProtocolError) -> [String] {
        guard let values = json[name]?.array else { throw missing(name, "a list of strings") }
        var out: [String] = []
        for value in values {
            guard let text = value.string else { throw missing(name, "a list of strings") }
            out.append(text)
        }
        return out
    }
}
