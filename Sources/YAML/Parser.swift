/// An event of the YAML grammar, as libyaml's parser produces them.
struct Event: Sendable {
    enum Kind: Sendable {
        case streamStart
        case streamEnd
        case documentStart
        case documentEnd
        case alias(String)
        case scalar(String, YAMLScalar.Style, anchor: String?, tag: String?)
        case sequenceStart(anchor: String?, tag: String?)
        case sequenceEnd
        case mappingStart(anchor: String?, tag: String?)
        case mappingEnd
    }

    var kind: Kind
    /// Where the node starts (its anchor or tag if it has one); for an empty scalar, where it would be.
    var start: Position
}

/// Turns tokens into events: a port of libyaml 0.2.5's parser (`parser.c`), a state machine with an explicit stack,
/// so that deep documents cannot overflow the call stack.
struct Parser {
    private enum State {
        case streamStart
        case implicitDocumentStart
        case documentStart
        case documentContent
        case documentEnd
        case blockNode
        case blockNodeOrIndentlessSequence
        case flowNode
        case blockSequenceFirstEntry
        case blockSequenceEntry
        case indentlessSequenceEntry
        case blockMappingFirstKey
        case blockMappingKey
        case blockMappingValue
        case flowSequenceFirstEntry
        case flowSequenceEntry
        case flowSequenceEntryMappingKey
        case flowSequenceEntryMappingValue
        case flowSequenceEntryMappingEnd
        case flowMappingFirstKey
        case flowMappingKey
        case flowMappingValue
        case flowMappingEmptyValue
        case end
    }

    private var scanner: Scanner
    private var state = State.streamStart
    private var states: [State] = []
    /// The start of each open collection, for messages.
    private var marks: [Position] = []
    private var tagDirectives: [(handle: String, prefix: String)] = []

    init(_ text: String) throws(YAMLError) {
        scanner = try Scanner(text)
    }

    /// The next event.
    mutating func next() throws(YAMLError) -> Event {
        switch state {
        case .streamStart: return try parseStreamStart()
        case .implicitDocumentStart: return try parseDocumentStart(implicit: true)
        case .documentStart: return try parseDocumentStart(implicit: false)
        case .documentContent: return try parseDocumentContent()
        case .documentEnd: return try parseDocumentEnd()
        case .blockNode: return try parseNode(block: true, indentlessSequence: false)
        case .blockNodeOrIndentlessSequence: return try parseNode(block: true, indentlessSequence: true)
        case .flowNode: return try parseNode(block: false, indentlessSequence: false)
        case .blockSequenceFirstEntry: return try parseBlockSequenceEntry(first: true)
        case .blockSequenceEntry: return try parseBlockSequenceEntry(first: false)
        case .indentlessSequenceEntry: return try parseIndentlessSequenceEntry()
        case .blockMappingFirstKey: return try parseBlockMappingKey(first: true)
        case .blockMappingKey: return try parseBlockMappingKey(first: false)
        case .blockMappingValue: return try parseBlockMappingValue()
        case .flowSequenceFirstEntry: return try parseFlowSequenceEntry(first: true)
        case .flowSequenceEntry: return try parseFlowSequenceEntry(first: false)
        case .flowSequenceEntryMappingKey: return try parseFlowSequenceEntryMappingKey()
        case .flowSequenceEntryMappingValue: return try parseFlowSequenceEntryMappingValue()
        case .flowSequenceEntryMappingEnd: return try parseFlowSequenceEntryMappingEnd()
        case .flowMappingFirstKey: return try parseFlowMappingKey(first: true)
        case .flowMappingKey: return try parseFlowMappingKey(first: false)
        case .flowMappingValue: return try parseFlowMappingValue(empty: false)
        case .flowMappingEmptyValue: return try parseFlowMappingValue(empty: true)
        case .end: return Event(kind: .streamEnd, start: scanner.mark)
        }
    }

    private mutating func popState() -> State {
        states.popLast() ?? .end
    }

    private mutating func popMark() -> Position {
        marks.popLast() ?? Position()
    }

    private func emptyScalar(_ mark: Position) -> Event {
        Event(kind: .scalar("", .plain, anchor: nil, tag: nil), start: mark)
    }

    // MARK: - Stream and documents

    private mutating func parseStreamStart() throws(YAMLError) -> Event {
        let token = try scanner.peekToken()
        state = .implicitDocumentStart
        scanner.skipToken()
        return Event(kind: .streamStart, start: token.start)
    }

    private mutating func parseDocumentStart(implicit: Bool) throws(YAMLError) -> Event {
        var token = try scanner.peekToken()
        if !implicit {
            while case .documentEnd = token.kind {
                scanner.skipToken()
                token = try scanner.peekToken()
            }
        }
        switch token.kind {
        case .versionDirective, .tagDirective, .documentStart, .streamEnd:
            break
        default:
            if implicit {
                try processDirectives()
                states.append(.documentEnd)
                state = .blockNode
                return Event(kind: .documentStart, start: token.start)
            }
        }
        if case .streamEnd = token.kind {
            state = .end
            scanner.skipToken()
            return Event(kind: .streamEnd, start: token.start)
        }
        let start = token.start
        try processDirectives()
        token = try scanner.peekToken()
        guard case .documentStart = token.kind else {
            throw YAMLError(
                token.start,
                "expected '---' to start the document after the directives (or after '...' ending the previous one)")
        }
        states.append(.documentEnd)
        state = .documentContent
        scanner.skipToken()
        return Event(kind: .documentStart, start: start)
    }

    private mutating func parseDocumentContent() throws(YAMLError) -> Event {
        let token = try scanner.peekToken()
        switch token.kind {
        case .versionDirective, .tagDirective, .documentStart, .documentEnd, .streamEnd:
            state = popState()
            return emptyScalar(token.start)
        default:
            return try parseNode(block: true, indentlessSequence: false)
        }
    }

    private mutating func parseDocumentEnd() throws(YAMLError) -> Event {
        let token = try scanner.peekToken()
        if case .documentEnd = token.kind { scanner.skipToken() }
        tagDirectives.removeAll()
        state = .documentStart
        return Event(kind: .documentEnd, start: token.start)
    }

    private mutating func processDirectives() throws(YAMLError) {
        var sawVersion = false
        var token = try scanner.peekToken()
        loop: while true {
            switch token.kind {
            case .versionDirective(let major, let minor):
                if sawVersion { throw YAMLError(token.start, "the document has two %YAML directives; keep one") }
                if major != 1 || (minor != 1 && minor != 2) {
                    throw YAMLError(token.start, "YAML \(major).\(minor) is not supported; use %YAML 1.2 or 1.1")
                }
                sawVersion = true
            case .tagDirective(let handle, let prefix):
                if tagDirectives.contains(where: { $0.handle == handle }) {
                    throw YAMLError(token.start, "the %TAG directive for \(handle) appears twice; keep one")
                }
                tagDirectives.append((handle, prefix))
            default:
                break loop
            }
            scanner.skipToken()
            token = try scanner.peekToken()
        }
        for (handle, prefix) in [("!", "!"), ("!!", "tag:yaml.org,2002:")]
        where !tagDirectives.contains(where: { $0.handle == handle }) {
            tagDirectives.append((handle, prefix))
        }
    }

    // MARK: - Nodes

    private mutating func parseNode(block: Bool, indentlessSequence: Bool) throws(YAMLError) -> Event {
        var token = try scanner.peekToken()
        if case .alias(let name) = token.kind {
            state = popState()
            scanner.skipToken()
            return Event(kind: .alias(name), start: token.start)
        }
        var anchor: String?
        var tagParts: (handle: String, suffix: String)?
        var start = token.start
        var tagMark = token.start
        if case .anchor(let name) = token.kind {
            anchor = name
            scanner.skipToken()
            token = try scanner.peekToken()
            if case .tag(let handle, let suffix) = token.kind {
                tagParts = (handle, suffix)
                tagMark = token.start
                scanner.skipToken()
                token = try scanner.peekToken()
            }
        } else if case .tag(let handle, let suffix) = token.kind {
            tagParts = (handle, suffix)
            start = token.start
            tagMark = token.start
            scanner.skipToken()
            token = try scanner.peekToken()
            if case .anchor(let name) = token.kind {
                anchor = name
                scanner.skipToken()
                token = try scanner.peekToken()
            }
        }
        var tag: String?
        if let tagParts {
            if tagParts.handle.isEmpty {
                tag = tagParts.suffix
            } else if let directive = tagDirectives.first(where: { $0.handle == tagParts.handle }) {
                tag = directive.prefix + tagParts.suffix
            } else {
                throw YAMLError(
                    tagMark,
                    "the tag handle \(tagParts.handle) is not defined; declare it with a %TAG directive or use !! or !")
            }
        }
        if tag?.isEmpty == true { tag = nil }

        if indentlessSequence, case .blockEntry = token.kind {
            state = .indentlessSequenceEntry
            return Event(kind: .sequenceStart(anchor: anchor, tag: tag), start: start)
        }
        switch token.kind {
        case .scalar(let value, let style):
            state = popState()
            scanner.skipToken()
            return Event(kind: .scalar(value, style, anchor: anchor, tag: tag), start: start)
        case .flowSequenceStart:
            state = .flowSequenceFirstEntry
            return Event(kind: .sequenceStart(anchor: anchor, tag: tag), start: start)
        case .flowMappingStart:
            state = .flowMappingFirstKey
            return Event(kind: .mappingStart(anchor: anchor, tag: tag), start: start)
        case .blockSequenceStart where block:
            state = .blockSequenceFirstEntry
            return Event(kind: .sequenceStart(anchor: anchor, tag: tag), start: start)
        case .blockMappingStart where block:
            state = .blockMappingFirstKey
            return Event(kind: .mappingStart(anchor: anchor, tag: tag), start: start)
        default:
            if anchor != nil || tag != nil {
                state = popState()
                return Event(kind: .scalar("", .plain, anchor: anchor, tag: tag), start: start)
            }
            throw YAMLError(
                token.start,
                "did not find expected node content (a value) at \(Self.describe(token)), in the "
                    + "\(block ? "block" : "flow") node that starts at \(start.text)")
        }
    }

    /// How a token reads in a message.
    static func describe(_ token: Token) -> String {
        switch token.kind {
        case .streamStart, .streamEnd: "the end of the document"
        case .versionDirective, .tagDirective: "a directive"
        case .documentStart: "'---'"
        case .documentEnd: "'...'"
        case .blockSequenceStart, .blockEntry: "'-'"
        case .blockMappingStart, .key: "a key"
        case .blockEnd: "a less indented line"
        case .flowSequenceStart: "'['"
        case .flowSequenceEnd: "']'"
        case .flowMappingStart: "'{'"
        case .flowMappingEnd: "'}'"
        case .flowEntry: "','"
        case .value: "':'"
        case .alias(let name): "the alias *\(name)"
        case .anchor(let name): "the anchor &\(name)"
        case .tag: "a tag"
        case .scalar: "a value"
        }
    }

    // MARK: - Block collections

    private mutating func parseBlockSequenceEntry(first: Bool) throws(YAMLError) -> Event {
        if first {
            marks.append(try scanner.peekToken().start)
            scanner.skipToken()
        }
        var token = try scanner.peekToken()
        switch token.kind {
        case .blockEntry:
            let mark = token.end
            scanner.skipToken()
            token = try scanner.peekToken()
            switch token.kind {
            case .blockEntry, .blockEnd:
                state = .blockSequenceEntry
                return emptyScalar(mark)
            default:
                states.append(.blockSequenceEntry)
                return try parseNode(block: true, indentlessSequence: false)
            }
        case .blockEnd:
            state = popState()
            _ = popMark()
            scanner.skipToken()
            return Event(kind: .sequenceEnd, start: token.start)
        default:
            let start = popMark()
            throw YAMLError(
                token.start,
                "did not find expected '-' indicator: found \(Self.describe(token)) in the list that starts at "
                    + "\(start.text); check the indentation")
        }
    }

    private mutating func parseIndentlessSequenceEntry() throws(YAMLError) -> Event {
        var token = try scanner.peekToken()
        guard case .blockEntry = token.kind else {
            state = popState()
            return Event(kind: .sequenceEnd, start: token.start)
        }
        let mark = token.end
        scanner.skipToken()
        token = try scanner.peekToken()
        switch token.kind {
        case .blockEntry, .key, .value, .blockEnd:
            state = .indentlessSequenceEntry
            return emptyScalar(mark)
        default:
            states.append(.indentlessSequenceEntry)
            return try parseNode(block: true, indentlessSequence: false)
        }
    }

    private mutating func parseBlockMappingKey(first: Bool) throws(YAMLError) -> Event {
        if first {
            marks.append(try scanner.peekToken().start)
            scanner.skipToken()
        }
        var token = try scanner.peekToken()
        switch token.kind {
        case .key:
            let mark = token.end
            scanner.skipToken()
            token = try scanner.peekToken()
            switch token.kind {
            case .key, .value, .blockEnd:
                state = .blockMappingValue
                return emptyScalar(mark)
            default:
                states.append(.blockMappingValue)
                return try parseNode(block: true, indentlessSequence: true)
            }
        case .blockEnd:
            state = popState()
            _ = popMark()
            scanner.skipToken()
            return Event(kind: .mappingEnd, start: token.start)
        default:
            let start = popMark()
            throw YAMLError(
                token.start,
                "did not find expected key: found \(Self.describe(token)) in the mapping that starts at "
                    + "\(start.text); check the indentation of this line")
        }
    }

    private mutating func parseBlockMappingValue() throws(YAMLError) -> Event {
        var token = try scanner.peekToken()
        guard case .value = token.kind else {
            state = .blockMappingKey
            return emptyScalar(token.start)
        }
        let mark = token.end
        scanner.skipToken()
        token = try scanner.peekToken()
        switch token.kind {
        case .key, .value, .blockEnd:
            state = .blockMappingKey
            return emptyScalar(mark)
        default:
            states.append(.blockMappingKey)
            return try parseNode(block: true, indentlessSequence: true)
        }
    }

    // MARK: - Flow collections

    private mutating func parseFlowSequenceEntry(first: Bool) throws(YAMLError) -> Event {
        if first {
            marks.append(try scanner.peekToken().start)
            scanner.skipToken()
        }
        var token = try scanner.peekToken()
        if !Self.isFlowSequenceEnd(token) {
            if !first {
                guard case .flowEntry = token.kind else {
                    let start = popMark()
                    throw YAMLError(
                        token.start,
                        "did not find expected ',' or ']': found \(Self.describe(token)) in the [list] that starts at "
                            + "\(start.text)")
                }
                scanner.skipToken()
                token = try scanner.peekToken()
            }
            if case .key = token.kind {
                state = .flowSequenceEntryMappingKey
                scanner.skipToken()
                return Event(kind: .mappingStart(anchor: nil, tag: nil), start: token.start)
            }
            if !Self.isFlowSequenceEnd(token) {
                states.append(.flowSequenceEntry)
                return try parseNode(block: false, indentlessSequence: false)
            }
        }
        state = popState()
        _ = popMark()
        scanner.skipToken()
        return Event(kind: .sequenceEnd, start: token.start)
    }

    private static func isFlowSequenceEnd(_ token: Token) -> Bool {
        if case .flowSequenceEnd = token.kind { return true }
        return false
    }

    private static func isFlowMappingEnd(_ token: Token) -> Bool {
        if case .flowMappingEnd = token.kind { return true }
        return false
    }

    private mutating func parseFlowSequenceEntryMappingKey() throws(YAMLError) -> Event {
        let token = try scanner.peekToken()
        switch token.kind {
        case .value, .flowEntry:
            let mark = token.end
            scanner.skipToken()
            state = .flowSequenceEntryMappingValue
            return emptyScalar(mark)
        case .flowSequenceEnd:
            state = .flowSequenceEntryMappingValue
            return emptyScalar(token.start)
        default:
            states.append(.flowSequenceEntryMappingValue)
            return try parseNode(block: false, indentlessSequence: false)
        }
    }

    private mutating func parseFlowSequenceEntryMappingValue() throws(YAMLError) -> Event {
        var token = try scanner.peekToken()
        if case .value = token.kind {
            scanner.skipToken()
            token = try scanner.peekToken()
            switch token.kind {
            case .flowEntry, .flowSequenceEnd:
                break
            default:
                states.append(.flowSequenceEntryMappingEnd)
                return try parseNode(block: false, indentlessSequence: false)
            }
        }
        state = .flowSequenceEntryMappingEnd
        return emptyScalar(token.start)
    }

    private mutating func parseFlowSequenceEntryMappingEnd() throws(YAMLError) -> Event {
        let token = try scanner.peekToken()
        state = .flowSequenceEntry
        return Event(kind: .mappingEnd, start: token.start)
    }

    private mutating func parseFlowMappingKey(first: Bool) throws(YAMLError) -> Event {
        if first {
            marks.append(try scanner.peekToken().start)
            scanner.skipToken()
        }
        var token = try scanner.peekToken()
        if !Self.isFlowMappingEnd(token) {
            if !first {
                guard case .flowEntry = token.kind else {
                    let start = popMark()
                    throw YAMLError(
                        token.start,
                        "did not find expected ',' or '}': found \(Self.describe(token)) in the {mapping} that starts "
                            + "at \(start.text)")
                }
                scanner.skipToken()
                token = try scanner.peekToken()
            }
            if case .key = token.kind {
                scanner.skipToken()
                token = try scanner.peekToken()
                switch token.kind {
                case .value, .flowEntry, .flowMappingEnd:
                    state = .flowMappingValue
                    return emptyScalar(token.start)
                default:
                    states.append(.flowMappingValue)
                    return try parseNode(block: false, indentlessSequence: false)
                }
            }
            if !Self.isFlowMappingEnd(token) {
                states.append(.flowMappingEmptyValue)
                return try parseNode(block: false, indentlessSequence: false)
            }
        }
        state = popState()
        _ = popMark()
        scanner.skipToken()
        return Event(kind: .mappingEnd, start: token.start)
    }

    private mutating func parseFlowMappingValue(empty: Bool) throws(YAMLError) -> Event {
        var token = try scanner.peekToken()
        if empty {
            state = .flowMappingKey
            return emptyScalar(token.start)
        }
        if case .value = token.kind {
            scanner.skipToken()
            token = try scanner.peekToken()
            switch token.kind {
            case .flowEntry, .flowMappingEnd:
                break
            default:
                states.append(.flowMappingKey)
                return try parseNode(block: false, indentlessSequence: false)
            }
        }
        state = .flowMappingKey
        return emptyScalar(token.start)
    }
}
