/// One TOML value, as `TOML.parse` reads it and `TOML.canonical` writes it.
///
/// Arrays of tables (`[[name]]` sections) are `.array` values whose elements are all `.table`.
public indirect enum TOMLValue: Sendable, Equatable {
    /// A basic, literal or multi-line string, with its escapes resolved.
    case string(String)
    /// A decimal, hexadecimal, octal or binary integer.
    case integer(Int64)
    /// A floating-point number, including `inf`, `-inf` and `nan`.
    case float(Double)
    /// `true` or `false`.
    case boolean(Bool)
    /// An offset date-time, local date-time, local date or local time, kept as written
    /// (`1979-05-27T07:32:00Z`, `1979-05-27 07:32:00`, `1979-05-27`, `07:32:00.5`).
    case datetime(String)
    /// An array; TOML 1.0 allows mixed element types.
    case array([TOMLValue])
    /// A table: a `[header]` section, a dotted-key table or an inline `{ … }` table.
    case table(TOMLTable)

    /// Values are equal when they have the same kind and contents. Unlike `Double`, two NaN floats are equal,
    /// so that every value equals itself.
    public static func == (lhs: TOMLValue, rhs: TOMLValue) -> Bool {
        switch (lhs, rhs) {
        case (.string(let a), .string(let b)): a == b
        case (.integer(let a), .integer(let b)): a == b
        case (.float(let a), .float(let b)): a == b || (a.isNaN && b.isNaN)
        case (.boolean(let a), .boolean(let b)): a == b
        case (.datetime(let a), .datetime(let b)): a == b
        case (.array(let a), .array(let b)): a == b
        case (.table(let a), .table(let b)): a == b
        default: false
        }
    }

    /// The TOML name of the value's kind, for messages: "string", "integer", "array of tables", …
    public var kindName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .float: "float"
        case .boolean: "boolean"
        case .datetime: "date-time"
        case .array(let elements): isArrayOfTables(elements) ? "array of tables" : "array"
        case .table: "table"
        }
    }

    /// The string, if this is a `.string`.
    public var stringValue: String? {
        if case .string(let value) = self { value } else { nil }
    }

    /// The integer, if this is an `.integer`.
    public var integerValue: Int64? {
        if case .integer(let value) = self { value } else { nil }
    }

    /// The boolean, if this is a `.boolean`.
    public var booleanValue: Bool? {
        if case .boolean(let value) = self { value } else { nil }
    }

    /// The table, if this is a `.table`.
    public var tableValue: TOMLTable? {
        if case .table(let value) = self { value } else { nil }
    }

    /// The elements, if this is an `.array`.
    public var arrayValue: [TOMLValue]? {
        if case .array(let value) = self { value } else { nil }
    }
}

/// True for a non-empty array whose elements are all tables: go-toml writes it as `[[name]]` sections.
func isArrayOfTables(_ elements: [TOMLValue]) -> Bool {
    !elements.isEmpty && elements.allSatisfy { $0.tableValue != nil }
}

/// A TOML table: keys and their values. Key order carries no meaning; `TOML.canonical` sorts keys by their UTF-8 bytes.
///
/// Keys are Swift strings, so two keys that differ only in Unicode normalization (precomposed "é" and "e" + U+0301)
/// are the same key here, whereas TOML compares keys code point by code point.
public struct TOMLTable: Sendable, Equatable {
    /// The key/value pairs of this table.
    public var values: [String: TOMLValue]

    /// A table with these key/value pairs (none by default).
    public init(_ values: [String: TOMLValue] = [:]) {
        self.values = values
    }

    /// The value of a key, or nil; assigning nil removes the key.
    public subscript(key: String) -> TOMLValue? {
        get { values[key] }
        set { values[key] = newValue }
    }

    /// The value at a path of keys through nested tables (`["plugins", "io.containerd.grpc.v1.cri", "cni"]`),
    /// or nil when a key is missing or an intermediate value is not a table. An empty path gives the table itself.
    public func value(at path: [String]) -> TOMLValue? {
        guard let first = path.first else { return .table(self) }
        guard let value = values[first] else { return nil }
        if path.count == 1 { return value }
        return value.tableValue?.value(at: Array(path.dropFirst()))
    }

    /// Sets the value at a path of keys, creating (or replacing non-table values with) intermediate tables.
    /// An empty path does nothing.
    public mutating func setValue(_ value: TOMLValue, at path: [String]) {
        guard let first = path.first else { return }
        if path.count == 1 {
            values[first] = value
            return
        }
        var child = values[first]?.tableValue ?? TOMLTable()
        child.setValue(value, at: Array(path.dropFirst()))
        values[first] = .table(child)
    }

    /// Removes and returns the value at a path of keys, or returns nil if there is none.
    @discardableResult
    public mutating func removeValue(at path: [String]) -> TOMLValue? {
        guard let first = path.first else { return nil }
        if path.count == 1 { return values.removeValue(forKey: first) }
        guard var child = values[first]?.tableValue else { return nil }
        let removed = child.removeValue(at: Array(path.dropFirst()))
        values[first] = .table(child)
        return removed
    }

    /// The keys, sorted by their UTF-8 bytes (the order `TOML.canonical` writes them in).
    public var keys: [String] {
        values.keys.sorted(by: utf8Precedes)
    }

    /// The number of keys.
    public var count: Int { values.count }

    /// True when the table has no keys.
    public var isEmpty: Bool { values.isEmpty }
}

extension TOMLTable: ExpressibleByDictionaryLiteral {
    /// A table from a literal; when a key repeats, the last value wins.
    public init(dictionaryLiteral elements: (String, TOMLValue)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }
}

/// Byte-order comparison of two strings' UTF-8, as Go compares strings.
func utf8Precedes(_ a: String, _ b: String) -> Bool {
    a.utf8.lexicographicallyPrecedes(b.utf8)
}
