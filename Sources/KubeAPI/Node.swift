/// A `v1` Node with the fields the agent reads or sets. Decoding ignores every other field;
/// encoding leaves out what is nil, so the same type serves as a merge patch.
public struct Node: Codable, Sendable, Equatable {
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

    public struct Metadata: Codable, Sendable, Equatable {
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

    public struct Spec: Codable, Sendable, Equatable {
        public var providerID: String?
        public var taints: [Taint]?

        public init(providerID: String? = nil, taints: [Taint]? = nil) {
            self.providerID = providerID
            self.taints = taints
        }
    }

    /// `key[=value]:effect`; effect is `NoSchedule`, `PreferNoSchedule` or `NoExecute`.
    public struct Taint: Codable, Sendable, Hashable, CustomStringConvertible {
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

    public struct Status: Codable, Sendable, Equatable {
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
    public struct Address: Codable, Sendable, Hashable {
        public var type: String
        public var address: String

        public init(type: String, address: String) {
            self.type = type
            self.address = address
        }
    }

    public struct Condition: Codable, Sendable, Equatable {
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
