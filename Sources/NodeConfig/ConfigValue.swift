/// A JSON-shaped value: inline documents of a NodeConfig (`kubelet.config`,
/// `containerd.baseRuntimeSpec`) and the merge rules nodeadm applies to them.
public indirect enum ConfigValue: Sendable, Equatable, Codable {
    case null
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case array([ConfigValue])
    /// Keys sorted (as Go's JSON encoding of a map writes them).
    case object([String: ConfigValue])

    /// nodeadm's inline-document merge: objects merge key by key, recursively; everything else
    /// (scalars including `false`, `0` and `""`, arrays, null) in `other` replaces.
    public func merged(with other: ConfigValue) -> ConfigValue {
        guard case .object(var base) = self, case .object(let patch) = other else { return other }
        for (key, value) in patch {
            base[key] = base[key].map { $0.merged(with: value) } ?? value
        }
        return .object(base)
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if container.decodeNil() {
            self = .null
        } else if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int.self) {
            self = .int(value)
        } else if let value = try? container.decode(Double.self) {
            self = .double(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else if let value = try? container.decode([ConfigValue].self) {
            self = .array(value)
        } else {
            self = .object(try container.decode([String: ConfigValue].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .null: try container.encodeNil()
        case .bool(let value): try container.encode(value)
        case .int(let value): try container.encode(value)
        case .double(let value): try container.encode(value)
        case .string(let value): try container.encode(value)
        case .array(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }
}
