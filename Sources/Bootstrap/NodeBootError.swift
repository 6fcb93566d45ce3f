/// The agent's one error type: a code (which decides the exit status), a message naming the
/// object that is wrong, what to do about it, and the underlying cause.
public struct NodeBootError: Error, Sendable, CustomStringConvertible {
    /// The failing domain: status.json's `error.code` and the exit status.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public var name: String
        /// 2 for bad input (user data, flags, config), 1 for everything else.
        public var exitStatus: Int32

        /// The user data, a config source, a flag: the operator fixes the input (exit 2).
        public static let input = Code(name: "input", exitStatus: 2)
        /// IMDS, EC2, EKS, STS and credentials.
        public static let aws = Code(name: "aws", exitStatus: 1)
        /// The Kubernetes API server: TLS, authorization, the Node object, waits for it.
        public static let kube = Code(name: "kube", exitStatus: 1)
        /// systemd: the bus, daemon-reload, units that fail or time out.
        public static let systemd = Code(name: "systemd", exitStatus: 1)
        /// The node's disk and local programs (files, setup-local-disks, version commands).
        public static let io = Code(name: "io", exitStatus: 1)
        /// A bug or a cancelled run.
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
