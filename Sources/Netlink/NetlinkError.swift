#if canImport(Glibc)
    import Glibc
#endif

/// Why an rtnetlink operation failed, naming the operation and its object the way `ip` would
/// write the command: `add route 10.0.97.30/32 dev eni1a2b: File exists (EEXIST)`. Callers that
/// make operations idempotent test `isExists` (an add of what is there) or `isNotFound` (a delete
/// of what is gone).
public struct NetlinkError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: Sendable, Equatable {
        /// The kernel refused the request (`NLMSG_ERROR` with a negative errno).
        case kernel
        /// A socket call failed (`socket`, `bind`, `sendto`, `recv`).
        case socket
        /// The kernel sent nothing within the socket's receive timeout.
        case timeout
        /// A reply that does not parse, or an answer that does not fit the request.
        case malformed
        /// An argument refused before anything was sent (an interface name over 15 bytes).
        case invalidArgument
        /// A network namespace could not be opened or entered.
        case namespace
        /// Every attempt at a dump was interrupted by changes (`NLM_F_DUMP_INTR`).
        case interrupted
    }

    public var code: Code
    /// The operation and its object: `add route 10.0.97.30/32 dev eni1a2b`.
    public var operation: String
    /// The errno (positive) for `kernel`, `socket` and `namespace`; 0 otherwise.
    public var errno: Int32
    /// The kernel's extended acknowledgement text, or what was wrong with a reply or argument.
    public var detail: String?

    public init(_ code: Code, _ operation: String, errno: Int32 = 0, detail: String? = nil) {
        self.code = code
        self.operation = operation
        self.errno = errno
        self.detail = detail
    }

    /// `EEXIST`: an add of something that is already there.
    public var isExists: Bool { code == .kernel && errno == EEXIST }

    /// `ENOENT`, `ESRCH`, `ENODEV` or `EADDRNOTAVAIL`: the route, rule, link or address is not
    /// there (what a delete of something already gone answers).
    public var isNotFound: Bool {
        code == .kernel && [ENOENT, ESRCH, ENODEV, EADDRNOTAVAIL].contains(errno)
    }

    public var description: String {
        var text = operation + ": "
        switch code {
        case .kernel, .socket, .namespace:
            text += Self.errnoText(errno)
        case .timeout:
            text += "no answer from the kernel in time"
        case .malformed:
            text += "malformed reply"
        case .invalidArgument:
            text += "invalid argument"
        case .interrupted:
            text += "dump interrupted"
        }
        if let detail { text += ": " + detail }
        return text
    }

    /// `File exists (EEXIST)`: the C library's text and the symbolic name (`errno 134` when the
    /// name is not in the table).
    public static func errnoText(_ code: Int32) -> String {
        let name = errnoNames[code] ?? "errno \(code)"
        return "\(String(cString: strerror(code))) (\(name))"
    }

    /// The errnos rtnetlink answers with in practice.
    static let errnoNames: [Int32: String] = [
        EPERM: "EPERM", ENOENT: "ENOENT", ESRCH: "ESRCH", EINTR: "EINTR", EIO: "EIO", ENXIO: "ENXIO",
        E2BIG: "E2BIG", EBADF: "EBADF", EAGAIN: "EAGAIN", ENOMEM: "ENOMEM", EACCES: "EACCES", EFAULT: "EFAULT",
        EBUSY: "EBUSY", EEXIST: "EEXIST", ENODEV: "ENODEV", ENOTDIR: "ENOTDIR", EINVAL: "EINVAL", ENFILE: "ENFILE",
        EMFILE: "EMFILE", ENOSPC: "ENOSPC", ERANGE: "ERANGE", ENOSYS: "ENOSYS", ENOTSUP: "EOPNOTSUPP",
        EMSGSIZE: "EMSGSIZE", EPROTONOSUPPORT: "EPROTONOSUPPORT", EAFNOSUPPORT: "EAFNOSUPPORT",
        EADDRINUSE: "EADDRINUSE", EADDRNOTAVAIL: "EADDRNOTAVAIL", ENETDOWN: "ENETDOWN", ENETUNREACH: "ENETUNREACH",
        ENOBUFS: "ENOBUFS", ETIMEDOUT: "ETIMEDOUT", EHOSTUNREACH: "EHOSTUNREACH", ENOTEMPTY: "ENOTEMPTY",
        EOVERFLOW: "EOVERFLOW", EPROTO: "EPROTO",
    ]
}
