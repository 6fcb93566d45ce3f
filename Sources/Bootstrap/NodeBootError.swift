/// The agent's one error type: a code (which decides the exit status), a message naming the
/// object that is wrong, what to do about it, and the underlying cause.
public struct NodeBootError: Error, Sendable, CustomStringConvertible {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public var name: String
        /// 2 for bad input (user data, flags, config), 1 for everything else.
        public var exitStatus: Int32

        public static let badInput = Code(name: "bad-input", exitStatus: 2)
        public static let aws = Code(name: "aws", exitStatus: 1)
        public static let io = Code(name: "io", exitStatus: 1)
        public static let `internal` = Code(name: "internal", exitStatus: 1)

        public var description: String { name }
    }

    public var code: Code
    public var message: String
    public var hint: String?
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, hint: String? = nil, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.hint = hint
        self.cause = cause
    }

    public var description: String {
        hint.map { "\(message)\nhint: \($0)" } ?? message
    }
}
