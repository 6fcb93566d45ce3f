public import WireJSON

/// A failed CNI operation as the runtime sees it: the spec's error object on stdout
/// (`{"cniVersion","code","msg","details"}`, vpc-cni.md §13) and a non-zero exit. The message
/// says what went wrong and names the object; `details` carries the cause or the fix.
public struct CNIError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The spec's well-known codes (1–99) and this plugin's own (100 and up).
    public struct Code: RawRepresentable, Sendable, Hashable {
        public let rawValue: Int
        public init(rawValue: Int) { self.rawValue = rawValue }

        public static let incompatibleVersion = Code(rawValue: 1)
        public static let unsupportedField = Code(rawValue: 2)
        public static let unknownContainer = Code(rawValue: 3)
        public static let invalidEnvironment = Code(rawValue: 4)
        public static let ioFailure = Code(rawValue: 5)
        public static let decodingFailure = Code(rawValue: 6)
        public static let invalidConfig = Code(rawValue: 7)
        public static let tryAgainLater = Code(rawValue: 11)
        /// STATUS: the plugin cannot serve an ADD now.
        public static let notAvailable = Code(rawValue: 50)
        public static let limitedConnectivity = Code(rawValue: 51)
        /// ipamd refused the request for a reason a retry does not change.
        public static let ipamdRefused = Code(rawValue: 100)
        /// The kernel refused part of the pod's wiring (the netlink operation is named).
        public static let podNetwork = Code(rawValue: 101)
        /// CHECK found the pod's network different from what ADD made.
        public static let checkFailed = Code(rawValue: 102)
    }

    public var code: Code
    public var message: String
    public var details: String

    public init(_ code: Code, _ message: String, details: String = "") {
        self.code = code
        self.message = message
        self.details = details
    }

    public var description: String {
        "code \(code.rawValue): \(message)" + (details.isEmpty ? "" : " (\(details))")
    }

    /// The error object the spec prints on stdout.
    public func json(cniVersion: String) -> JSON {
        var members: [JSON.Member] = [
            .init("cniVersion", .string(cniVersion)), .init("code", .int(code.rawValue)), .init("msg", .string(message)),
        ]
        if !details.isEmpty { members.append(.init("details", .string(details))) }
        return .object(members)
    }
}
