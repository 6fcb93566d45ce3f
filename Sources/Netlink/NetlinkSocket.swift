#if canImport(Glibc)
    import Glibc
#endif

/// A datagram socket to the kernel's rtnetlink: one request out, then the datagrams of its
/// answer (acknowledgement, single reply or the parts of a dump) in. `RouteNetlink` does the
/// framing, sequence numbers and acknowledgements on top, so a fake only has to record bytes and
/// hand back bytes (`RecordingNetlinkSocket`).
public protocol NetlinkSocket: Sendable {
    /// Sends one datagram holding one request.
    func send(_ datagram: [UInt8]) throws(NetlinkError)
    /// Receives the next datagram; blocks until one arrives or the socket's timeout passes.
    func receive() throws(NetlinkError) -> [UInt8]
}

/// `socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE)`, bound to a port id the kernel
/// picks. The socket belongs to the network namespace of the thread that created it, for its
/// whole life: create it inside `NetworkNamespace.run` to program another namespace from any
/// thread afterwards.
public final class KernelNetlinkSocket: NetlinkSocket {
    let descriptor: Int32
    /// The port id the kernel assigned (`nl_pid` of the socket's address).
    public let portID: UInt32
    /// Bound on each receive: the kernel answers rtnetlink requests while handling the send, so
    /// this only catches a wedged kernel or a request it never answers.
    public let receiveTimeout: Duration

    static let maximumDatagram = 64 << 10
    static let solNetlink: Int32 = 270  // SOL_NETLINK
    static let capAck: Int32 = 10  // NETLINK_CAP_ACK: errors do not echo the whole request
    static let extAck: Int32 = 11  // NETLINK_EXT_ACK: errors carry the kernel's message

    public init(receiveTimeout: Duration = .seconds(5)) throws(NetlinkError) {
        let operation = "open rtnetlink socket"
        let descriptor = socket(AF_NETLINK, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw NetlinkError(.socket, operation, errno: errno) }
        // struct sockaddr_nl: u16 family, u16 pad, u32 pid (0: the kernel picks), u32 groups.
        var address = MessageWriter()
        address.u16(UInt16(AF_NETLINK))
        address.u16(0)
        address.u32(0)
        address.u32(0)
        var length = socklen_t(address.bytes.count)
        var bound = address.bytes
        let failure: (call: String, errno: Int32)? = bound.withUnsafeMutableBytes { raw in
            let pointer = raw.baseAddress?.assumingMemoryBound(to: sockaddr.self)
            guard bind(descriptor, pointer, length) == 0 else { return ("bind", errno) }
            guard getsockname(descriptor, pointer, &length) == 0 else { return ("getsockname", errno) }
            var on: Int32 = 1
            let size = socklen_t(MemoryLayout<Int32>.size)
            // Both are refinements: a kernel without them still answers with plain errors.
            _ = setsockopt(descriptor, Self.solNetlink, Self.capAck, &on, size)
            _ = setsockopt(descriptor, Self.solNetlink, Self.extAck, &on, size)
            let (seconds, attoseconds) = receiveTimeout.components
            var timeout = timeval(tv_sec: Int(seconds), tv_usec: Int(attoseconds / 1_000_000_000_000))
            guard setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size)) == 0
            else { return ("setsockopt SO_RCVTIMEO", errno) }
            return nil
        }
        if let failure {
            close(descriptor)
            throw NetlinkError(.socket, operation, errno: failure.errno, detail: failure.call)
        }
        self.descriptor = descriptor
        self.portID = readU32(bound, at: 4)
        self.receiveTimeout = receiveTimeout
    }

    deinit { close(descriptor) }

    public func send(_ datagram: [UInt8]) throws(NetlinkError) {
        // The kernel is the default destination of an unconnected netlink socket.
        while true {
            let sent = datagram.withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, 0) }
            if sent == datagram.count { return }
            if sent < 0 && errno == EINTR { continue }
            if sent >= 0 {
                throw NetlinkError(.socket, "send", detail: "sent \(sent) of \(datagram.count) bytes")
            }
            throw NetlinkError(.socket, "send", errno: errno)
        }
    }

    public func receive() throws(NetlinkError) -> [UInt8] {
        var failure: Int32 = 0
        let datagram = [UInt8](unsafeUninitializedCapacity: Self.maximumDatagram) { buffer, count in
            while true {
                // MSG_TRUNC: the datagram's real length, so an oversized one is noticed.
                let received = recv(descriptor, buffer.baseAddress, buffer.count, Int32(MSG_TRUNC))
                if received < 0 && errno == EINTR { continue }
                if received < 0 {
                    failure = errno
                    count = 0
                } else if received > buffer.count {
                    failure = EMSGSIZE
                    count = 0
                } else {
                    count = received
                }
                return
            }
        }
        switch failure {
        case 0: return datagram
        case EAGAIN, EWOULDBLOCK: throw NetlinkError(.timeout, "receive")
        case EMSGSIZE:
            throw NetlinkError(.malformed, "receive", detail: "a datagram over \(Self.maximumDatagram) bytes")
        default: throw NetlinkError(.socket, "receive", errno: failure)
        }
    }
}
