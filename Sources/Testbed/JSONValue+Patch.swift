import Foundation

/// Reading, editing and patching JSON documents (Kubernetes objects).
extension JSONValue {
    /// Parses JSON text; nil when it is not JSON.
    static func parse(_ bytes: [UInt8]) -> JSONValue? {
        // Not JSON: the caller answers 400 with its own message.
        try? JSONDecoder().decode(JSONValue.self, from: Data(bytes))
    }

    var objectFields: [(String, JSONValue)]? {
        if case .object(let fields) = self { return fields }
        return nil
    }

    var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// The value at a path of object keys.
    subscript(path path: [String]) -> JSONValue? {
        var value: JSONValue? = self
        for key in path { value = value?[key] }
        return value
    }

    /// This object with the field set (created, with objects along the way, when absent).
    func setting(_ path: [String], to newValue: JSONValue) -> JSONValue {
        guard let key = path.first else { return newValue }
        var fields = objectFields ?? []
        if let index = fields.firstIndex(where: { $0.0 == key }) {
            fields[index].1 = fields[index].1.setting(Array(path.dropFirst()), to: newValue)
        } else {
            fields.append((key, JSONValue.object([]).setting(Array(path.dropFirst()), to: newValue)))
        }
        return .object(fields)
    }

    /// This object without the field.
    func removing(_ path: [String]) -> JSONValue {
        guard let key = path.first, var fields = objectFields else { return self }
        if path.count == 1 {
            fields.removeAll { $0.0 == key }
        } else if let index = fields.firstIndex(where: { $0.0 == key }) {
            fields[index].1 = fields[index].1.removing(Array(path.dropFirst()))
        }
        return .object(fields)
    }

    /// The fields in this order first (those present), the others after them in their order.
    func ordered(_ keys: [String]) -> JSONValue {
        guard let fields = objectFields else { return self }
        var out: [(String, JSONValue)] = []
        for key in keys { if let field = fields.first(where: { $0.0 == key }) { out.append(field) } }
        out += fields.filter { !keys.contains($0.0) }
        return .object(out)
    }

    // MARK: JSON merge patch (RFC 7386)

    func mergePatched(with patch: JSONValue) -> JSONValue {
        guard case .object(let patchFields) = patch else { return patch }
        var fields = objectFields ?? []
        for (key, value) in patchFields {
            if value == .null {
                fields.removeAll { $0.0 == key }
            } else if let index = fields.firstIndex(where: { $0.0 == key }) {
                fields[index].1 = fields[index].1.mergePatched(with: value)
            } else {
                fields.append((key, JSONValue.null.mergePatched(with: value)))
            }
        }
        return .object(fields)
    }

    // MARK: JSON patch (RFC 6902)

    /// Applies a JSON patch (an array of operations); a message naming the failing operation.
    func jsonPatched(with patch: JSONValue) -> Result<JSONValue, JSONPatchError> {
        guard case .array(let operations) = patch else {
            return .failure(JSONPatchError("a JSON patch is an array of operations"))
        }
        var document = self
        for (index, operation) in operations.enumerated() {
            guard let op = operation["op"]?.stringValue, let pathText = operation["path"]?.stringValue,
                let path = JSONPointer.parse(pathText)
            else {
                return .failure(JSONPatchError("operation \(index): needs 'op' and a 'path' that is a JSON pointer"))
            }
            let result: JSONValue?
            switch op {
            case "add", "replace":
                guard let value = operation["value"] else {
                    return .failure(JSONPatchError("operation \(index): \(op) needs 'value'"))
                }
                if op == "replace", document.pointee(path) == nil {
                    return .failure(JSONPatchError("operation \(index): replace: no value at \(pathText)"))
                }
                result = document.inserting(value, at: path, replace: op == "replace")
            case "remove":
                result = document.pointee(path) == nil ? nil : document.deleting(at: path)
            case "test":
                guard let value = operation["value"] else {
                    return .failure(JSONPatchError("operation \(index): test needs 'value'"))
                }
                guard document.pointee(path) == value else {
                    return .failure(JSONPatchError("operation \(index): test failed: \(pathText) is not \(value.compact())"))
                }
                result = document
            case "move", "copy":
                guard let fromText = operation["from"]?.stringValue, let from = JSONPointer.parse(fromText),
                    let value = document.pointee(from)
                else {
                    return .failure(JSONPatchError("operation \(index): \(op) needs a 'from' that names a value"))
                }
                let source = op == "move" ? document.deleting(at: from) : document
                result = source?.inserting(value, at: path, replace: false)
            default:
                return .failure(JSONPatchError("operation \(index): unknown op '\(op)'"))
            }
            guard let result else { return .failure(JSONPatchError("operation \(index): \(op): no value at \(pathText)")) }
            document = result
        }
        return .success(document)
    }

    func pointee(_ path: [String]) -> JSONValue? {
        var value: JSONValue? = self
        for token in path {
            switch value {
            case .object: value = value?[token]
            case .array(let items):
                guard let index = Int(token), items.indices.contains(index) else { return nil }
                value = items[index]
            default: return nil
            }
        }
        return value
    }

    /// Adds (or replaces) at a pointer; nil when the parent does not exist.
    func inserting(_ newValue: JSONValue, at path: [String], replace: Bool) -> JSONValue? {
        guard let token = path.first else { return newValue }
        let rest = Array(path.dropFirst())
        switch self {
        case .object(var fields):
            if let index = fields.firstIndex(where: { $0.0 == token }) {
                guard let child = fields[index].1.inserting(newValue, at: rest, replace: replace) else { return nil }
                fields[index].1 = child
            } else {
                guard rest.isEmpty else { return nil }
                fields.append((token, newValue))
            }
            return .object(fields)
        case .array(var items):
            if rest.isEmpty {
                if token == "-" && !replace {
                    items.append(newValue)
                } else if let index = Int(token), replace ? items.indices.contains(index) : (0...items.count).contains(index) {
                    if replace { items[index] = newValue } else { items.insert(newValue, at: index) }
                } else {
                    return nil
                }
                return .array(items)
            }
            guard let index = Int(token), items.indices.contains(index),
                let child = items[index].inserting(newValue, at: rest, replace: replace)
            else { return nil }
            items[index] = child
            return .array(items)
        default:
            return nil
        }
    }

    func deleting(at path: [String]) -> JSONValue? {
        guard let token = path.first else { return nil }
        let rest = Array(path.dropFirst())
        switch self {
        case .object(var fields):
            guard let index = fields.firstIndex(where: { $0.0 == token }) else { return nil }
            if rest.isEmpty {
                fields.remove(at: index)
            } else {
                guard let child = fields[index].1.deleting(at: rest) else { return nil }
                fields[index].1 = child
            }
            return .object(fields)
        case .array(var items):
            guard let index = Int(token), items.indices.contains(index) else { return nil }
            if rest.isEmpty {
                items.remove(at: index)
            } else {
                guard let child = items[index].deleting(at: rest) else { return nil }
                items[index] = child
            }
            return .array(items)
        default:
            return nil
        }
    }
}

/// Why a JSON patch does not apply, naming the operation.
struct JSONPatchError: Error, Equatable {
    var message: String
    init(_ message: String) { self.message = message }
}

/// RFC 6901 pointers: `/a/b~1c` → ["a", "b/c"].
enum JSONPointer {
    static func parse(_ text: String) -> [String]? {
        if text.isEmpty { return [] }
        guard text.hasPrefix("/") else { return nil }
        return text.dropFirst().split(separator: "/", omittingEmptySubsequences: false).map {
            $0.replacingOccurrences(of: "~1", with: "/").replacingOccurrences(of: "~0", with: "~")
        }
    }
}
