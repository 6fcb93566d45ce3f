import Glibc
public import Logging
import Support

/// nodeboot's swift-log handler: each message goes to stderr as `nodeboot: <message> key=value…`
/// (cloud-init and the unit's journal stream capture it) and/or, on a systemd host, to the
/// journal: a plain message without metadata, otherwise a structured entry with `MESSAGE`,
/// `PRIORITY`, `SYSLOG_IDENTIFIER=nodeboot`, and the metadata as fields (`phase`, `duration`,
/// `file`, `unit` → `NODEBOOT_PHASE`, `NODEBOOT_DURATION_MS`, `NODEBOOT_FILE`, `NODEBOOT_UNIT`;
/// other keys uppercased, e.g. `instance-id` → `INSTANCE_ID`). A message journald refused goes to
/// stderr instead. Only the message and the metadata are written: no source locations, no
/// attached errors. `handler(terminalLevel:)` makes the process's handler.
public struct JournalLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level = .info
    public var metadataProvider: Logger.MetadataProvider?

    /// Send entries to journald.
    let toJournal: Bool
    /// Write lines to stderr.
    let toStandardError: Bool

    init(toJournal: Bool, toStandardError: Bool, logLevel: Logger.Level = .info) {
        self.toJournal = toJournal
        self.toStandardError = toStandardError
        self.logLevel = logLevel
    }

    /// The handler of this process, for `Logger(label:factory:)` or `LoggingSystem.bootstrap`:
    /// everything from `info` to the journal (with fields) when there is a journald;
    /// `terminalLevel` and above also to stderr, unless stderr is the journal already
    /// (`JOURNAL_STREAM`).
    public static func handler(terminalLevel: Logger.Level = .notice) -> any LogHandler {
        handler(
            terminalLevel: terminalLevel, journal: destinations.journal, stderrIsJournal: destinations.stderrIsJournal)
    }

    /// `handler(terminalLevel:)` with the destinations given.
    static func handler(terminalLevel: Logger.Level, journal: Bool, stderrIsJournal: Bool) -> MultiplexLogHandler {
        MultiplexLogHandler([
            JournalLogHandler(toJournal: journal, toStandardError: false, logLevel: .info),
            JournalLogHandler(toJournal: false, toStandardError: !stderrIsJournal, logLevel: terminalLevel),
        ])
    }

    /// Looked up once per process.
    private static let destinations = (journal: Journal.isAvailable, stderrIsJournal: Journal.stderrIsJournal)

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let given = event.metadata { merged.merge(given) { $1 } }
        let fields = merged.sorted { $0.key < $1.key }.map { (key: $0.key, value: Self.text($0.value)) }
        let message = event.message.description
        let sent =
            toJournal
            && Journal.send(
                message, priority: Self.priority(event.level),
                fields: fields.map { (name: Self.fieldName($0.key), value: $0.value) })
        // A message journald did not take still goes to stderr (which may be its stream).
        if toStandardError || (toJournal && !sent) {
            StandardStreams.error(Self.line(message, fields: fields))
        }
    }

    /// syslog priority of a swift-log level.
    static func priority(_ level: Logger.Level) -> Journal.Priority {
        switch level {
        case .trace, .debug: .debug
        case .info: .info
        case .notice: .notice
        case .warning: .warning
        case .error: .error
        case .critical: .critical
        }
    }

    /// The journal field of a metadata key.
    static func fieldName(_ key: String) -> String {
        switch key {
        case "phase": "NODEBOOT_PHASE"
        case "duration": "NODEBOOT_DURATION_MS"
        case "file": "NODEBOOT_FILE"
        case "unit": "NODEBOOT_UNIT"
        default: Journal.fieldName(key)
        }
    }

    /// `nodeboot: <message> key=value key="two words"` with a newline.
    static func line(_ message: String, fields: [(key: String, value: String)]) -> String {
        var line = "nodeboot: " + message
        for field in fields {
            let quoted = field.value.isEmpty || field.value.contains { $0 == " " || $0 == "\"" || $0.isNewline }
            line += " \(field.key)=" + (quoted ? "\"" + escaped(field.value) + "\"" : field.value)
        }
        return line + "\n"
    }

    private static func escaped(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n", "\r\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }

    static func text(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let string): string
        case .stringConvertible(let convertible): convertible.description
        case .array(let values): "[" + values.map(text).joined(separator: ", ") + "]"
        case .dictionary(let values):
            "[" + values.sorted { $0.key < $1.key }.map { "\($0.key): \(text($0.value))" }.joined(separator: ", ") + "]"
        }
    }
}
