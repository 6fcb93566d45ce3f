/// A value that is JSON but not of the shape a type reads: the member's path and what was expected.
public struct JSONShapeError: Error, Sendable, Equatable, CustomStringConvertible {
    /// `phases[2].name`; empty for the document itself.
    public var path: String
    public var expected: String

    public init(path: String, expected: String) {
        self.path = path
        self.expected = expected
    }

    public var description: String { "\(path.isEmpty ? "the document" : path): expected \(expected)" }
}

/// An object's members read by name, for a type's `init(json:)` (the boot path reads its files and
/// API answers this way instead of through `Decodable`: under emulation every Codable type costs
/// the agent a walk over the runtime's conformance records, docs/boot.md). A member that is
/// absent or `null` reads as nil through the optional accessors, as `decodeIfPresent` does;
/// every error names the member's path.
public struct JSONObject: Sendable {
    public let members: [JSON.Member]
    /// Where this object is in the document (`status`, `phases[2]`); empty for the document itself.
    public let path: String

    public init(_ value: JSON, path: String = "") throws(JSONShapeError) {
        guard case .object(let members) = value else { throw JSONShapeError(path: path, expected: "an object") }
        self.members = members
        self.path = path
    }

    /// Parses `bytes` and reads the object at its top.
    public init(parsing bytes: some Collection<UInt8>) throws {
        try self.init(JSON(parsing: bytes))
    }

    func path(of key: String) -> String { path.isEmpty ? key : "\(path).\(key)" }

    /// The member named `key` (the last one when a key repeats), nil when absent or null.
    public subscript(key: String) -> JSON? {
        guard let value = members.last(where: { $0.key == key })?.value, value != .null else { return nil }
        return value
    }

    func require(_ key: String) throws(JSONShapeError) -> JSON {
        guard let value = self[key] else { throw JSONShapeError(path: path(of: key), expected: "a value") }
        return value
    }

    func read<T>(_ key: String, _ what: String, _ take: (JSON) -> T?) throws(JSONShapeError) -> T? {
        guard let value = self[key] else { return nil }
        guard let taken = take(value) else { throw JSONShapeError(path: path(of: key), expected: what) }
        return taken
    }

    public func string(_ key: String) throws(JSONShapeError) -> String {
        guard let value = try optionalString(key) else { throw JSONShapeError(path: path(of: key), expected: "a string") }
        return value
    }

    public func optionalString(_ key: String) throws(JSONShapeError) -> String? {
        try read(key, "a string") { $0.string }
    }

    public func bool(_ key: String) throws(JSONShapeError) -> Bool {
        guard let value = try optionalBool(key) else { throw JSONShapeError(path: path(of: key), expected: "true or false") }
        return value
    }

    public func optionalBool(_ key: String) throws(JSONShapeError) -> Bool? {
        try read(key, "true or false") { $0.bool }
    }

    public func int(_ key: String) throws(JSONShapeError) -> Int {
        guard let value = try optionalInt(key) else { throw JSONShapeError(path: path(of: key), expected: "an integer") }
        return value
    }

    public func optionalInt(_ key: String) throws(JSONShapeError) -> Int? {
        try read(key, "an integer") { $0.int }
    }

    public func optionalUInt64(_ key: String) throws(JSONShapeError) -> UInt64? {
        try read(key, "an unsigned integer") { value in
            if case .number(let text) = value { return UInt64(text) }
            return nil
        }
    }

    public func double(_ key: String) throws(JSONShapeError) -> Double {
        guard let value = try read(key, "a number", { $0.double }) else {
            throw JSONShapeError(path: path(of: key), expected: "a number")
        }
        return value
    }

    /// A string member that must be one of `T`'s raw values.
    public func value<T: RawRepresentable<String>>(_ key: String, as type: T.Type = T.self) throws(JSONShapeError) -> T {
        guard let value = try optionalValue(key, as: type) else {
            throw JSONShapeError(path: path(of: key), expected: "a string")
        }
        return value
    }

    public func optionalValue<T: RawRepresentable<String>>(_ key: String, as type: T.Type = T.self) throws(JSONShapeError)
        -> T?
    {
        guard let text = try optionalString(key) else { return nil }
        guard let value = T(rawValue: text) else {
            throw JSONShapeError(path: path(of: key), expected: "a known value, not \"\(text)\"")
        }
        return value
    }

    public func object(_ key: String) throws(JSONShapeError) -> JSONObject {
        try JSONObject(require(key), path: path(of: key))
    }

    public func optionalObject(_ key: String) throws(JSONShapeError) -> JSONObject? {
        guard let value = self[key] else { return nil }
        return try JSONObject(value, path: path(of: key))
    }

    /// An array member, each element read by `element` (given the element and its path); an
    /// absent member is an empty array when `required` is false.
    public func array<T>(
        _ key: String, required: Bool = true, _ element: (JSON, String) throws(JSONShapeError) -> T
    ) throws(JSONShapeError) -> [T] {
        guard let value = self[key] else {
            if required { throw JSONShapeError(path: path(of: key), expected: "an array") }
            return []
        }
        guard case .array(let values) = value else { throw JSONShapeError(path: path(of: key), expected: "an array") }
        var out: [T] = []
        out.reserveCapacity(values.count)
        for (index, value) in values.enumerated() {
            out.append(try element(value, "\(path(of: key))[\(index)]"))
        }
        return out
    }

    /// An array of objects, each read by `element`.
    public func objects<T>(
        _ key: String, required: Bool = true, _ element: (JSONObject) throws(JSONShapeError) -> T
    ) throws(JSONShapeError) -> [T] {
        try array(key, required: required) { (value, path) throws(JSONShapeError) in
            try element(JSONObject(value, path: path))
        }
    }

    public func strings(_ key: String, required: Bool = true) throws(JSONShapeError) -> [String] {
        try array(key, required: required) { (value, path) throws(JSONShapeError) in
            guard let text = value.string else { throw JSONShapeError(path: path, expected: "a string") }
            return text
        }
    }

    /// An object member whose values are all strings (`{"kubelet": "sha256:…"}`), in the document's order.
    public func stringMap(_ key: String, required: Bool = true) throws(JSONShapeError) -> [(String, String)] {
        guard let value = self[key] else {
            if required { throw JSONShapeError(path: path(of: key), expected: "an object") }
            return []
        }
        let object = try JSONObject(value, path: path(of: key))
        var out: [(String, String)] = []
        for member in object.members {
            guard let text = member.value.string else {
                throw JSONShapeError(path: object.path(of: member.key), expected: "a string")
            }
            out.append((member.key, text))
        }
        return out
    }
}

extension JSON {
    /// A number's value as a Double (any JSON number).
    public var double: Double? {
        if case .number(let text) = self { return Double(text) }
        return nil
    }

    /// A Double as Foundation's JSONEncoder writes it: the shortest text that reads back as the
    /// same value, without a trailing `.0` (`2`, `0.5`, `1e-05`).
    public static func double(_ value: Double) -> JSON {
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        return .number(text)
    }

    /// `value` when present, otherwise no member: for writing an optional the way `encodeIfPresent` does.
    public static func member(_ key: String, _ value: JSON?) -> [Member] {
        value.map { [Member(key, $0)] } ?? []
    }
}
