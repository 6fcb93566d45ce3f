import Foundation
import Synchronization

/// The API server's objects (nodes), their resource versions, recent changes and open watches.
/// Every change takes the next resource version and is sent to each watch it concerns, in order.
final class KubeStore: Sendable {
    enum EventType: String, Sendable {
        case added = "ADDED"
        case modified = "MODIFIED"
        case deleted = "DELETED"
    }

    /// One change: the object after it (for DELETED, as it was at deletion, with the new version).
    struct Change: Sendable {
        var resourceVersion: Int
        var type: EventType
        var old: JSONValue?
        var object: JSONValue
    }

    /// Which objects a watch or list wants.
    struct Filter: Sendable {
        var labelSelector: LabelSelector?
        var fieldSelector: FieldSelector?

        func matches(_ object: JSONValue) -> Bool {
            (labelSelector?.matches(object) ?? true) && (fieldSelector?.matches(object) ?? true)
        }
    }

    struct Watcher: Sendable {
        var filter: Filter
        var continuation: AsyncStream<WatchEvent>.Continuation
    }

    struct WatchEvent: Sendable {
        var type: String
        var object: JSONValue
    }

    struct State {
        var nodes: [String: JSONValue] = [:]
        var resourceVersion = 1
        var history: [Change] = []
        var watchers: [UUID: Watcher] = [:]
        var closed = false
    }

    /// How many changes are kept for watches that start from an older resource version.
    static let historyLimit = 1000

    let state = Mutex(State())

    var currentResourceVersion: Int { state.withLock { $0.resourceVersion } }

    func nodes() -> [JSONValue] {
        state.withLock { state in state.nodes.keys.sorted().compactMap { state.nodes[$0] } }
    }

    func node(_ name: String) -> JSONValue? {
        state.withLock { $0.nodes[name] }
    }

    /// Applies a change computed from the current object (nil when absent). `change` returns the
    /// new object (nil = delete), or throws to refuse; the store stamps the resource version.
    func update(
        _ name: String, _ change: (JSONValue?, _ nextVersion: String) throws(KubeStatus) -> JSONValue?
    ) throws(KubeStatus) -> (old: JSONValue?, new: JSONValue?) {
        try state.withLock { (state) throws(KubeStatus) -> (old: JSONValue?, new: JSONValue?) in
            let old = state.nodes[name]
            let version = state.resourceVersion + 1
            guard var new = try change(old, String(version)) else {
                guard let old else { return (nil, nil) }
                state.resourceVersion = version
                state.nodes[name] = nil
                let gone = old.setting(["metadata", "resourceVersion"], to: .string(String(version)))
                record(Change(resourceVersion: version, type: .deleted, old: old, object: gone), in: &state)
                return (old, nil)
            }
            new = new.setting(["metadata", "resourceVersion"], to: .string(String(version)))
            state.resourceVersion = version
            state.nodes[name] = new
            record(
                Change(resourceVersion: version, type: old == nil ? .added : .modified, old: old, object: new),
                in: &state)
            return (old, new)
        }
    }

    private func record(_ change: Change, in state: inout State) {
        state.history.append(change)
        if state.history.count > KubeStore.historyLimit {
            state.history.removeFirst(state.history.count - KubeStore.historyLimit)
        }
        for watcher in state.watchers.values {
            if let event = KubeStore.event(for: change, filter: watcher.filter) {
                watcher.continuation.yield(event)
            }
        }
    }

    /// What a watch with `filter` sees of a change: an object that starts or stops matching is
    /// ADDED or DELETED for it.
    static func event(for change: Change, filter: Filter) -> WatchEvent? {
        let wasIn = change.old.map(filter.matches) ?? false
        let isIn = filter.matches(change.object)
        switch change.type {
        case .added: return isIn ? WatchEvent(type: "ADDED", object: change.object) : nil
        case .deleted: return wasIn ? WatchEvent(type: "DELETED", object: change.object) : nil
        case .modified:
            switch (wasIn, isIn) {
            case (true, true): return WatchEvent(type: "MODIFIED", object: change.object)
            case (false, true): return WatchEvent(type: "ADDED", object: change.object)
            case (true, false): return WatchEvent(type: "DELETED", object: change.object)
            case (false, false): return nil
            }
        }
    }

    enum WatchStart {
        /// Every current object as ADDED, then changes (resourceVersion absent or "0").
        case currentState
        /// Changes after this resource version.
        case after(Int)
    }

    /// Opens a watch. Returns nil when `start` is older than the kept history (410 Expired).
    func watch(_ filter: Filter, from start: WatchStart) -> AsyncStream<WatchEvent>? {
        let (stream, continuation) = AsyncStream.makeStream(of: WatchEvent.self)
        let id = UUID()
        let opened = state.withLock { state -> Bool in
            switch start {
            case .currentState:
                for name in state.nodes.keys.sorted() {
                    if let node = state.nodes[name], filter.matches(node) {
                        continuation.yield(WatchEvent(type: "ADDED", object: node))
                    }
                }
            case .after(let version):
                let oldest = state.history.first?.resourceVersion ?? state.resourceVersion + 1
                if version < state.resourceVersion && version + 1 < oldest { return false }
                for change in state.history where change.resourceVersion > version {
                    if let event = KubeStore.event(for: change, filter: filter) { continuation.yield(event) }
                }
            }
            if state.closed {
                continuation.finish()
            } else {
                state.watchers[id] = Watcher(filter: filter, continuation: continuation)
            }
            return true
        }
        guard opened else {
            continuation.finish()
            return nil
        }
        continuation.onTermination = { [weak self] _ in
            self?.state.withLock { _ = $0.watchers.removeValue(forKey: id) }
        }
        return stream
    }

    /// The oldest resource version a watch can still start from.
    var oldestWatchableVersion: Int {
        state.withLock { ($0.history.first?.resourceVersion ?? $0.resourceVersion + 1) - 1 }
    }

    /// Ends every watch (shutdown).
    func close() {
        let watchers = state.withLock { state in
            state.closed = true
            defer { state.watchers.removeAll() }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.continuation.finish() }
    }
}

// MARK: - Selectors

/// A label selector: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x,y)`, `a`, `!a`, joined by commas.
struct LabelSelector: Sendable {
    enum Requirement: Sendable {
        case equals(String, String)
        case notEquals(String, String)
        case `in`(String, Set<String>)
        case notIn(String, Set<String>)
        case exists(String)
        case doesNotExist(String)
    }

    var requirements: [Requirement]

    /// Parses a selector; a message naming the problem when it does not parse.
    static func parse(_ text: String) -> Result<LabelSelector, KubeStatus> {
        var requirements: [Requirement] = []
        for part in splitTopLevel(text) {
            let term = part.trimmingCharacters(in: .whitespaces)
            if term.isEmpty { continue }
            if let range = term.range(of: " notin ") ?? term.range(of: " in ") {
                let key = term[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
                let rest = term[range.upperBound...].trimmingCharacters(in: .whitespaces)
                guard rest.hasPrefix("("), rest.hasSuffix(")"), !key.isEmpty else {
                    return .failure(.badRequest("unable to parse requirement: \(term)"))
                }
                let values = Set(
                    rest.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
                requirements.append(
                    term[range].contains("notin") ? .notIn(key, values) : .in(key, values))
            } else if let range = term.range(of: "!=") {
                requirements.append(
                    .notEquals(
                        term[..<range.lowerBound].trimmingCharacters(in: .whitespaces),
                        term[range.upperBound...].trimmingCharacters(in: .whitespaces)))
            } else if let range = term.range(of: "==") ?? term.range(of: "=") {
                requirements.append(
                    .equals(
                        term[..<range.lowerBound].trimmingCharacters(in: .whitespaces),
                        term[range.upperBound...].trimmingCharacters(in: .whitespaces)))
            } else if term.hasPrefix("!") {
                requirements.append(.doesNotExist(term.dropFirst().trimmingCharacters(in: .whitespaces)))
            } else {
                requirements.append(.exists(term))
            }
        }
        for requirement in requirements {
            switch requirement {
            case .equals(let key, _), .notEquals(let key, _), .in(let key, _), .notIn(let key, _), .exists(let key),
                .doesNotExist(let key):
                if key.isEmpty || key.contains(where: { $0 == " " || $0 == "(" || $0 == ")" || $0 == "!" }) {
                    return .failure(.badRequest("unable to parse requirement: invalid label key \"\(key)\""))
                }
            }
        }
        return .success(LabelSelector(requirements: requirements))
    }

    /// Splits on commas outside parentheses.
    static func splitTopLevel(_ text: String) -> [String] {
        var parts: [String] = []
        var current = ""
        var depth = 0
        for character in text {
            switch character {
            case "(": depth += 1
            case ")": depth -= 1
            case "," where depth == 0:
                parts.append(current)
                current = ""
                continue
            default: break
            }
            current.append(character)
        }
        parts.append(current)
        return parts
    }

    func matches(_ object: JSONValue) -> Bool {
        let labels = object["metadata"]?["labels"]
        func label(_ key: String) -> String? {
            if case .string(let value) = labels?[key] { return value }
            return nil
        }
        return requirements.allSatisfy { requirement in
            switch requirement {
            case .equals(let key, let value): label(key) == value
            case .notEquals(let key, let value): label(key) != value
            case .in(let key, let values): label(key).map(values.contains) ?? false
            case .notIn(let key, let values): !(label(key).map(values.contains) ?? false)
            case .exists(let key): label(key) != nil
            case .doesNotExist(let key): label(key) == nil
            }
        }
    }
}

/// A field selector on nodes: `metadata.name` and `spec.unschedulable`, with `=`, `==` or `!=`.
struct FieldSelector: Sendable {
    var requirements: [(field: String, value: String, equal: Bool)]

    static let fields = ["metadata.name", "spec.unschedulable"]

    static func parse(_ text: String) -> Result<FieldSelector, KubeStatus> {
        var requirements: [(field: String, value: String, equal: Bool)] = []
        for part in text.split(separator: ",") {
            let term = part.trimmingCharacters(in: .whitespaces)
            let equal: Bool
            let range: Range<String.Index>
            if let r = term.range(of: "!=") {
                equal = false
                range = r
            } else if let r = term.range(of: "==") ?? term.range(of: "=") {
                equal = true
                range = r
            } else {
                return .failure(.badRequest("invalid selector: '\(text)'; can't understand '\(term)'"))
            }
            let field = term[..<range.lowerBound].trimmingCharacters(in: .whitespaces)
            guard fields.contains(field) else {
                return .failure(.badRequest("field label not supported: \(field)"))
            }
            requirements.append((field, term[range.upperBound...].trimmingCharacters(in: .whitespaces), equal))
        }
        return .success(FieldSelector(requirements: requirements))
    }

    func matches(_ object: JSONValue) -> Bool {
        requirements.allSatisfy { requirement in
            let actual: String
            switch requirement.field {
            case "metadata.name":
                actual = object["metadata"]?["name"]?.text ?? ""
            default:
                actual = object["spec"]?["unschedulable"] == .bool(true) ? "true" : "false"
            }
            return (actual == requirement.value) == requirement.equal
        }
    }
}
