public import IPAMProtocol
public import Support
public import WireJSON

/// ipamd's state on disk (docs/ipamd.md §6): which address each attachment holds, which
/// addresses are cooling down, and the EC2 changes in flight. Written atomically before any
/// reply that changes an assignment, so a daemon killed at any moment restarts knowing every
/// address it handed out. On tmpfs (`/run`): it survives a daemon restart, not a reboot (after
/// a reboot no pod exists).
public struct Checkpoint: Sendable, Equatable {
    public static let version = 1
    public static let path = "/run/nodeboot/ipamd/checkpoint.json"

    public var instance: String
    public var mode: PoolMode
    public var allocations: [Allocation] = []
    public var cooling: [Cooling] = []
    public var intents: [Intent] = []

    public init(instance: String, mode: PoolMode) {
        self.instance = instance
        self.mode = mode
    }

    public struct Allocation: Sendable, Equatable {
        public var key: AttachmentKey
        public var address: String
        public var eni: String
        public var pod: PodReference?
        /// Unix milliseconds (wall clock: it must mean the same after a restart).
        public var since: Int64

        public init(key: AttachmentKey, address: String, eni: String, pod: PodReference?, since: Int64) {
            self.key = key
            self.address = address
            self.eni = eni
            self.pod = pod
            self.since = since
        }
    }

    public struct Cooling: Sendable, Equatable {
        public var address: String
        /// Unix milliseconds after which the address may be handed out again.
        public var until: Int64

        public init(address: String, until: Int64) {
            self.address = address
            self.until = until
        }
    }

    /// An EC2 change begun and not yet known to be finished; resumed after a restart.
    public struct Intent: Sendable, Equatable {
        public enum Operation: String, Sendable { case createENI, freeENI, unassign }
        public var operation: Operation
        /// The CreateNetworkInterface ClientToken (idempotency across a restart).
        public var token: String
        public var eni: String?
        public var addresses: [String]
        public var since: Int64

        public init(operation: Operation, token: String, eni: String? = nil, addresses: [String] = [], since: Int64) {
            self.operation = operation
            self.token = token
            self.eni = eni
            self.addresses = addresses
            self.since = since
        }
    }

    /// A checkpoint that cannot be used, naming the file and what is wrong.
    public struct Failure: Error, Sendable, Equatable, CustomStringConvertible {
        public var path: String
        public var message: String
        public var hint: String

        public var description: String { "checkpoint \(path): \(message); \(hint)" }
    }
}

// MARK: - Bytes

extension Checkpoint {
    /// Fixed key order, arrays sorted, a trailing newline: the same state gives the same bytes.
    public var json: JSON {
        let allocations = self.allocations.sorted { ($0.address, $0.key.description) < ($1.address, $1.key.description) }
        return [
            "version": .int(Self.version), "instance": .string(instance), "mode": .string(mode.rawValue),
            "allocations": .array(
                allocations.map { allocation in
                    var members: [JSON.Member] = [
                        .init("network", .string(allocation.key.network)),
                        .init("container", .string(allocation.key.container)),
                        .init("ifname", .string(allocation.key.ifname)), .init("address", .string(allocation.address)),
                        .init("eni", .string(allocation.eni)),
                    ]
                    if let pod = allocation.pod {
                        members.append(
                            .init(
                                "pod", ["namespace": .string(pod.namespace), "name": .string(pod.name), "uid": .string(pod.uid)]))
                    }
                    members.append(.init("since", .number(String(allocation.since))))
                    return .object(members)
                }),
            "cooling": .array(
                cooling.sorted { $0.address < $1.address }.map {
                    ["address": .string($0.address), "until": .number(String($0.until))]
                }),
            "intents": .array(
                intents.sorted { $0.token < $1.token }.map { intent in
                    var members: [JSON.Member] = [
                        .init("op", .string(intent.operation.rawValue)), .init("token", .string(intent.token)),
                    ]
                    if let eni = intent.eni { members.append(.init("eni", .string(eni))) }
                    if !intent.addresses.isEmpty {
                        members.append(.init("addresses", .array(intent.addresses.sorted().map { .string($0) })))
                    }
                    members.append(.init("since", .number(String(intent.since))))
                    return .object(members)
                }),
        ]
    }

    public var bytes: [UInt8] { json.line }

    /// The checkpoint in `bytes`. A newer format refuses the start (a downgrade would lose what
    /// it does not understand); a damaged file names the field.
    public init(bytes: [UInt8], path: String = Checkpoint.path) throws(Failure) {
        func fail(_ message: String) -> Failure {
            Failure(
                path: path, message: message,
                hint: "ipamd cannot know which addresses are in use; move the file aside only after every pod on "
                    + "this node is gone (it is rebuilt from the kernel's pod routes)")
        }
        let json: JSON
        do {
            json = try JSON(parsing: bytes)
        } catch {
            throw fail("not JSON: \(error)")
        }
        guard let version = json["version"]?.int else { throw fail("no 'version'") }
        guard version <= Self.version else {
            throw Failure(
                path: path, message: "written by a newer nodeboot (format \(version); this one reads \(Self.version))",
                hint: "run that nodeboot, or install it again")
        }
        guard let instance = json["instance"]?.string else { throw fail("no 'instance'") }
        guard let modeText = json["mode"]?.string, let mode = PoolMode(rawValue: modeText) else {
            throw fail("'mode' is not one of ipv4-secondary, ipv4-prefix, ipv6")
        }
        self.init(instance: instance, mode: mode)
        func int64(_ value: JSON?, _ field: String) throws(Failure) -> Int64 {
            guard case .number(let text) = value, let number = Int64(text) else { throw fail("'\(field)' is not an integer") }
            return number
        }
        func string(_ value: JSON?, _ field: String) throws(Failure) -> String {
            guard let text = value?.string else { throw fail("'\(field)' is missing") }
            return text
        }
        for (index, item) in (json["allocations"]?.array ?? []).enumerated() {
            let at = "allocations[\(index)]"
            let key = AttachmentKey(
                container: try string(item["container"], "\(at).container"), ifname: try string(item["ifname"], "\(at).ifname"),
                network: try string(item["network"], "\(at).network"))
            var pod: PodReference?
            if let podJSON = item["pod"] {
                pod = PodReference(
                    namespace: try string(podJSON["namespace"], "\(at).pod.namespace"),
                    name: try string(podJSON["name"], "\(at).pod.name"), uid: podJSON["uid"]?.string ?? "")
            }
            allocations.append(
                Allocation(
                    key: key, address: try string(item["address"], "\(at).address"), eni: try string(item["eni"], "\(at).eni"),
                    pod: pod, since: try int64(item["since"], "\(at).since")))
        }
        for (index, item) in (json["cooling"]?.array ?? []).enumerated() {
            cooling.append(
                Cooling(
                    address: try string(item["address"], "cooling[\(index)].address"),
                    until: try int64(item["until"], "cooling[\(index)].until")))
        }
        for (index, item) in (json["intents"]?.array ?? []).enumerated() {
            let at = "intents[\(index)]"
            guard let operation = Intent.Operation(rawValue: try string(item["op"], "\(at).op")) else {
                throw fail("'\(at).op' is not createENI, freeENI or unassign")
            }
            intents.append(
                Intent(
                    operation: operation, token: try string(item["token"], "\(at).token"), eni: item["eni"]?.string,
                    addresses: (item["addresses"]?.array ?? []).compactMap(\.string),
                    since: try int64(item["since"], "\(at).since")))
        }
    }
}

// MARK: - Files

extension Checkpoint {
    /// The checkpoint at `path`; nil when there is none (a first start, or after a reboot).
    public static func load(_ path: String = Checkpoint.path) throws(Failure) -> Checkpoint? {
        let bytes: [UInt8]?
        do {
            bytes = try NodeFileSystem.read(path, limit: 64 << 20)
        } catch {
            throw Failure(path: path, message: "cannot read: \(error)", hint: "check the file's permissions")
        }
        guard let bytes else { return nil }
        return try Checkpoint(bytes: bytes, path: path)
    }

    /// Writes atomically (temporary file, fsync, rename, directory fsync), directory 0700, file 0600.
    public func write(_ path: String = Checkpoint.path) throws(NodeFileSystem.Failure) {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try NodeFileSystem.makeDirectories(String(path[..<slash]), mode: 0o700)
        }
        try NodeFileSystem.writeAtomically(path, bytes, mode: 0o600)
    }
}
