/// Why the testbed could not start or load its configuration. The message names the file,
/// field or endpoint; `hint` says what to do about it.
public struct TestbedError: Error, Sendable, CustomStringConvertible {
    public struct Code: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The configuration file cannot be read or is not valid.
        public static let configuration = Code(rawValue: "configuration")
        /// A listener could not be bound.
        public static let bind = Code(rawValue: "bind")
        /// What was asked for does not exist (a node of the Kubernetes API server).
        public static let notFound = Code(rawValue: "notFound")
    }

    public var code: Code
    public var message: String
    public var hint: String?
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, hint: String? = nil, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
        self.cause = cause
    }

    public var description: String {
        var text = message
        if let cause { text += " (\(cause))" }
        if let hint { text += "; \(hint)" }
        return text
    }
}
