public import WireJSON

/// A `v1` Node with the fields the agent reads or sets. Decoding ignores every other field;
/// encoding leaves out what is nil, so the same type serves as a merge patch.
public struct Node: Sendable, Equatable {
    public var apiVersion: String?
    public var kind: String?
    public var metadata: Metadata
    public var spec: Spec?
    public var status: Status?

    public init(apiVersion: String? = "v1", kind: String? = "Node", metadata: Metadata, spec: Spec? = nil, status: Status? = nil)
    {
        self.apiVersion = apiVersion
        self.kind = kind
        self.metadata = metadata
        self.spec = spec
        self.status = status
    }

    public struct Metadata: Sendable, Equatable {
        public var name: String
        public var labels: [String: String]?
        public var annotations: [String: String]?
        public var resourceVersion: String?
        public var uid: String?
        public var creationTimestamp: String?

        public init(
            name: String, labels: [String: String]? = nil, annotations: [String: String]? = nil,
            resourceVersion: String? = nil, uid: String? = nil, creationTimestamp: String? = nil
        ) {
            self.name = name
            self.labels = labels
            self.annotations = annotations
            self.resourceVersion = resourceVersion
            self.uid = uid
            self.creationTimestamp = creationTimestamp
        }
    }

    public struct Spec: Sendable, Equatable {
        public var providerID: String?
        public var taints: [Taint]?

        public init(providerID: String? = nil, taints: [Taint]? = nil) {
            self.providerID = providerID
            self.taints = taints
        }
    }

    /// `key[=value]:effect`; effect is `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    public struct Taint: Sendable, Hashable, CustomStringConvertible {
        public var key: String
        public var value: String?
        public var effect: String

        public init(key: String, value: String? = nil, effect: String) {
            self.key = key
            self.value = value
            self.effect = effect
        }

        public var description: String { key + (value.map { $0.isEmpty ? "" : "=\($0)" } ?? "") + ":" + effect }

        /// Same key, effect and value (an absent value equals an empty one, as the API server stores it).
        public func matches(_ other: Taint) -> Bool {
            key == other.key && effect == other.effect && (value ?? "") == (other.value ?? "")
        }
    }

    public struct Status: Sendable, Equatable {
        public var addresses: [Address]?
        public var capacity: [String: String]?
        public var allocatable: [String: String]?
        public var conditions: [Condition]?

        public init(
            addresses: [Address]? = nil, capacity: [String: String]? = nil, allocatable: [String: String]? = nil,
            conditions: [Condition]? = nil
        ) {
            self.addresses = addresses
            self.capacity = capacity
            self.allocatable = allocatable
            self.conditions = conditions
        }
    }

    /// `InternalIP`, `ExternalIP`, `InternalDNS`, `ExternalDNS` or `Hostname`.
    public struct Address: Sendable, Hashable {
        public var type: String
        public var address: String

        public init(type: String, address: String) {
            self.type = type
            self.address = address
        }
    }

    public struct Condition: Sendable, Equatable {
        public var type: String
        /// `True`, `False` or `Unknown`.
        public var status: String
        public var reason: String?
        public var message: String?

        public init(type: String, status: String, reason: String? = nil, message: String? = nil) {
            self.type = type
            self.status = status
            self.reason = reason
            self.message = message
        }
    }

    /// The condition of this type, if the node reports it.
    public func condition(_ type: String) -> Condition? {
        status?.conditions?.first { $0.type == type }
    }

    /// The `Ready` condition is `True`.
    public var isReady: Bool { condition("Ready")?.status == "True" }

    /// A name the API server accepts for a Node: a DNS-1123 subdomain (lowercase letters, digits,
    /// `-` and `.`, at most 253 characters; each dot-separated part starts and ends with a letter
    /// or digit), as `IsDNS1123Subdomain` checks it.
    public static func isValidName(_ name: String) -> Bool {
        guard !name.isEmpty, name.utf8.count <= 253 else { return false }
        return name.utf8.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false).allSatisfy { part in
            func isAlphanumeric(_ byte: UInt8) -> Bool {
                (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte)
            }
            guard let first = part.first, let last = part.last, isAlphanumeric(first), isAlphanumeric(last) else {
                return false
            }
            return part.allSatisfy { isAlphanumeric($0) || $0 == UInt8(ascii: "-") }
        }
    }
}

// MARK: - JSON

extension Node {
    /// A Node as the API server sends it: the fields above read, every other field ignored.
    public init(json: JSONObject) throws(JSONShapeError) {
        func map(_ object: JSONObject?, _ key: String) throws(JSONShapeError) -> [String: String]? {
            guard let object, object[key] != nil else { return nil }
            return Dictionary(try object.stringMap(key), uniquingKeysWith: { $1 })
        }
        let metadata = try json.object("metadata")
        let spec = try json.optionalObject("spec")
        let status = try json.optionalObject("status")
        self.init(
            apiVersion: try json.optionalString("apiVersion"), kind: try json.optionalString("kind"),
            metadata: Metadata(
                name: try metadata.string("name"), labels: try map(metadata, "labels"),
                annotations: try map(metadata, "annotations"), resourceVersion: try metadata.optionalString("resourceVersion"),
                uid: try metadata.optionalString("uid"), creationTimestamp: try metadata.optionalString("creationTimestamp")),
            spec: try spec.map { (spec) throws(JSONShapeError) in
                Spec(
                    providerID: try spec.optionalString("providerID"),
                    taints: spec["taints"] == nil
                        ? nil
                        : try spec.objects("taints") { (taint) throws(JSONShapeError) in
                            Taint(
                                key: try taint.string("key"), value: try taint.optionalString("value"),
                                effect: try taint.string("effect"))
                        })
            },
            status: try status.map { (status) throws(JSONShapeError) in
                Status(
                    addresses: status["addresses"] == nil
                        ? nil
                        : try status.objects("addresses") { (address) throws(JSONShapeError) in
                            Address(type: try address.string("type"), address: try address.string("address"))
                        },
                    capacity: try map(status, "capacity"), allocatable: try map(status, "allocatable"),
                    conditions: status["conditions"] == nil
                        ? nil
                        : try status.objects("conditions") { (condition) throws(JSONShapeError) in
                            Condition(
                                type: try condition.string("type"), status: try condition.string("status"),
                                reason: try condition.optionalString("reason"), message: try condition.optionalString("message"))
                        })
            })
    }

    /// The Node as a request body: what is nil is left out, so the same value serves as a merge patch.
    public var json: JSON {
        func map(_ key: String, _ map: [String: String]?) -> [JSON.Member] {
            JSON.member(key, map.map { .object($0.map { JSON.Member($0.key, .string($0.value)) }) })
        }
        func string(_ key: String, _ value: String?) -> [JSON.Member] { JSON.member(key, value.map(JSON.string)) }
        let metadata = JSON.object(
            [.init("name", .string(metadata.name))] + map("labels", metadata.labels) + map("annotations", metadata.annotations)
                + string("resourceVersion", metadata.resourceVersion) + string("uid", metadata.uid)
                + string("creationTimestamp", metadata.creationTimestamp))
        let spec = self.spec.map { spec in
            JSON.object(
                string("providerID", spec.providerID)
                    + JSON.member(
                        "taints",
                        spec.taints.map { taints in
                            .array(
                                taints.map { taint in
                                    .object(
                                        [.init("key", .string(taint.key))] + string("value", taint.value)
                                            + [.init("effect", .string(taint.effect))])
                                })
                        }))
        }
        let status = self.status.map { status in
            JSON.object(
                JSON.member(
                    "addresses",
                    status.addresses.map { .array($0.map { ["type": .string($0.type), "address": .string($0.address)] }) })
                    + map("capacity", status.capacity) + map("allocatable", status.allocatable)
                    + JSON.member(
                        "conditions",
                        status.conditions.map { conditions in
                            .array(
                                conditions.map { condition in
                                    .object(
                                        [.init("type", .string(condition.type)), .init("status", .string(condition.status))]
                                            + string("reason", condition.reason) + string("message", condition.message))
                                })
                        }))
        }
        return .object(
            string("apiVersion", apiVersion) + string("kind", kind) + [.init("metadata", metadata)]
                + JSON.member("spec", spec) + JSON.member("status", status))
    }
}
