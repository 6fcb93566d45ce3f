/// A YAML reader for user data: YAML 1.2 syntax as libyaml (and so Yams) reads it, composed into `YAMLNode`s with
/// marks. Standard library only.
///
/// It is a port of libyaml 0.2.5's scanner and parser, so documents, values, marks and errors are those of Yams,
/// except:
/// - a `\uD83D\uDE00` surrogate pair in a double-quoted string is one character (JSON writes characters beyond
///   U+FFFF so); libyaml rejects it;
/// - nesting is limited to 512 mappings and sequences (libyaml: about 1000), and aliases may add at most 100 000
///   nodes to the document (libyaml: no limit);
/// - a duplicate key is reported at its second occurrence (Yams: at the first occurrence of the alphabetically first
///   duplicate);
/// - only the first document is read, the rest of the text is not looked at (Yams' `compose` rejects a second
///   document);
/// - a character YAML forbids (a control character) is reported wherever it is (libyaml reads 16 KiB ahead, so in a
///   long document it may report a syntax error before it);
/// - a byte order mark that starts a value (not at the start of a line) is kept; Yams drops it.
public enum YAML {
    /// The deepest nesting of mappings and sequences accepted.
    public static let maximumDepth = 512
    /// The most nodes that aliases may add to a document (billion-laughs protection).
    public static let maximumAliasedNodes = 100_000

    /// The first document of `text` as a tree, or `nil` when the text holds no document (only comments, or nothing).
    ///
    /// Aliases are replaced by the nodes their anchors name (with those nodes' marks). Tags are read but only `!!str`
    /// has an effect: it makes a plain scalar `.doubleQuoted` (a string, not typed). Merge keys (`<<`) are ordinary
    /// keys. A key that appears twice in a mapping is an error.
    public static func compose(_ text: String) throws(YAMLError) -> YAMLNode? {
        var composer = try Composer(text)
        return try composer.firstDocument()
    }
}

/// Builds nodes from events with an explicit stack, resolving aliases and checking keys.
struct Composer {
    /// A node with what aliases need to know about it.
    private struct Built {
        var node: YAMLNode
        /// Nodes in the tree, counting what aliases in it expanded to.
        var size: Int
        /// Levels of mappings and sequences in it (0 for a scalar).
        var height: Int
        /// The explicit tag of a scalar, which decides (with its text) whether two keys are the same.
        var tag: String?
    }

    private struct Frame {
        var isMapping: Bool
        var start: Position
        var anchor: String?
        var items: [YAMLNode] = []
        var pairs: [(key: YAMLNode, value: YAMLNode)] = []
        var keyTags: [String?] = []
        var pendingKey: Built?
        var size = 1
        var height = 1

        /// Adds an item, a key, or the value of the pending key.
        mutating func add(_ built: Built) {
            size += built.size
            height = max(height, built.height + 1)
            if !isMapping {
                items.append(built.node)
            } else if let key = pendingKey {
                pairs.append((key.node, built.node))
                keyTags.append(key.tag)
                pendingKey = nil
            } else {
                pendingKey = built
            }
        }
    }

    private var parser: Parser
    private var anchors: [String: Built] = [:]
    private var aliasedNodes = 0
    private var stack: [Frame] = []

    init(_ text: String) throws(YAMLError) {
        parser = try Parser(text)
    }

    mutating func firstDocument() throws(YAMLError) -> YAMLNode? {
        _ = try parser.next()  // stream start
        guard case .documentStart = try parser.next().kind else { return nil }
        var root: Built?
        while root == nil {
            let event = try parser.next()
            var built: Built?
            switch event.kind {
            case .alias(let name):
                built = try alias(name, at: event.start)
            case .scalar(let value, let style, let anchor, let tag):
                let isString = tag == "tag:yaml.org,2002:str" && style == .plain
                let scalar = YAMLScalar(string: value, style: isString ? .doubleQuoted : style, mark: event.start.mark)
                let node = Built(node: .scalar(scalar), size: 1, height: 0, tag: tag)
                if let anchor { anchors[anchor] = node }
                built = node
            case .sequenceStart(let anchor, _):
                try open(isMapping: false, at: event.start, anchor: anchor)
            case .mappingStart(let anchor, _):
                try open(isMapping: true, at: event.start, anchor: anchor)
            case .sequenceEnd, .mappingEnd:
                built = try close()
            case .streamStart, .streamEnd, .documentStart, .documentEnd:
                throw YAMLError(event.start, "unexpected end of the document")
            }
            guard let built else { continue }
            if stack.isEmpty {
                root = built
            } else {
                stack[stack.count - 1].add(built)
            }
        }
        _ = try parser.next()  // document end
        return root?.node
    }

    private mutating func open(isMapping: Bool, at start: Position, anchor: String?) throws(YAMLError) {
        if stack.count >= YAML.maximumDepth {
            throw YAMLError(
                start,
                "the document nests mappings and sequences more than \(YAML.maximumDepth) levels deep; flatten it")
        }
        stack.append(Frame(isMapping: isMapping, start: start, anchor: anchor))
    }

    private mutating func close() throws(YAMLError) -> Built {
        guard let frame = stack.popLast() else { throw YAMLError(Position(), "unbalanced collection events") }
        let built: Built
        if frame.isMapping {
            try Self.checkDuplicates(frame)
            built = Built(
                node: .mapping(frame.pairs, frame.start.mark), size: frame.size, height: frame.height, tag: nil)
        } else {
            built = Built(
                node: .sequence(frame.items, frame.start.mark), size: frame.size, height: frame.height, tag: nil)
        }
        if let anchor = frame.anchor { anchors[anchor] = built }
        return built
    }

    private mutating func alias(_ name: String, at mark: Position) throws(YAMLError) -> Built {
        guard let built = anchors[name] else {
            throw YAMLError(mark, "the alias *\(name) refers to no anchor; define &\(name) before using it")
        }
        aliasedNodes += built.size
        if aliasedNodes > YAML.maximumAliasedNodes {
            throw YAMLError(
                mark,
                "aliases expand to more than \(YAML.maximumAliasedNodes) nodes; the document repeats anchors too "
                    + "often (a 'billion laughs' document?)")
        }
        if stack.count + built.height > YAML.maximumDepth {
            throw YAMLError(
                mark,
                "the alias *\(name) nests mappings and sequences more than \(YAML.maximumDepth) levels deep; flatten "
                    + "the document")
        }
        return built
    }

    /// Rejects a key that equals an earlier one of the same mapping: same text and resolved tag for scalars (only
    /// texts that repeat are resolved), same structure for collections.
    private static func checkDuplicates(_ frame: Frame) throws(YAMLError) {
        guard frame.pairs.count > 1 else { return }
        var scalarKeys: [String: [Int]] = [:]
        var collectionKeys: [KeyIdentity: Int] = [:]
        func identity(_ index: Int) -> KeyIdentity {
            guard case .scalar(let scalar) = frame.pairs[index].key else { return KeyIdentity(frame.pairs[index].key) }
            return .scalar(
                tag: KeyIdentity.tag(of: scalar.string, style: scalar.style, tag: frame.keyTags[index]),
                value: scalar.string)
        }
        for (index, pair) in frame.pairs.enumerated() {
            var first: Int?
            if case .scalar(let scalar) = pair.key {
                if let earlier = scalarKeys[scalar.string] {
                    let this = identity(index)
                    first = earlier.first { identity($0) == this }
                }
                scalarKeys[scalar.string, default: []].append(index)
            } else {
                let this = identity(index)
                first = collectionKeys[this]
                if first == nil { collectionKeys[this] = index }
            }
            guard let first else { continue }
            let firstMark = frame.pairs[first].key.mark
            let name = pair.key.string.map { "'\($0)'" } ?? "(a mapping or sequence)"
            throw YAMLError(
                mark: pair.key.mark,
                message:
                    "duplicate key \(name): it is already defined at line \(firstMark.line), column "
                    + "\(firstMark.column) of the same mapping; keep one")
        }
    }
}
