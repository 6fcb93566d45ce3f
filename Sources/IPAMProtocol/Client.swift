public import WireJSON

#if canImport(Glibc)
    import Glibc
#endif

/// One request to ipamd and its reply, over the Unix socket, with blocking calls bounded by
/// `poll`: the CNI plugin is a short-lived process with nothing else to do meanwhile. No
/// Foundation, no threads.
public struct IPAMClient: Sendable {
    public var socketPath: String
    /// Bound on reaching the daemon (a missing socket or a refused connect fails at once).
    public var connectTimeout: Duration
    /// Bound on the reply once the request is sent (an add answers in microseconds; this
    /// only bounds a wedged daemon).
    public var answerTimeout: Duration

    public init(
        socketPath: String = IPAMWire.socketPath, connectTimeout: Duration = .seconds(1),
        answerTimeout: Duration = .seconds(5)
    ) {
        self.socketPath = socketPath
        self.connectTimeout = connectTimeout
        self.answerTimeout = answerTimeout
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public enum Kind: Sendable { case unreachable, timeout, badReply }
        public var kind: Kind
        public var message: String
        public var description: String { message }

        public init(kind: Kind, message: String) {
            self.kind = kind
            self.message = message
        }
    }

    public func send(_ request: Request) throws(Failure) -> Reply {
        let descriptor = try connect()
        defer { close(descriptor) }
        let deadline = ContinuousClock.now + answerTimeout
        let line = request.json().line
        var offset = 0
        while offset < line.count {
            let sent = line.withUnsafeBytes { raw in
                Glibc.send(descriptor, raw.baseAddress! + offset, raw.count - offset, Int32(MSG_NOSIGNAL))
            }
            if sent > 0 {
                offset += sent
            } else if sent < 0 && (errno == EAGAIN || errno == EINTR) {
                try wait(descriptor, POLLOUT, until: deadline, doing: "sending the request")
            } else {
                throw Failure(kind: .unreachable, message: "ipamd at \(socketPath): send: \(Self.errorText(errno))")
            }
        }
        var framer = LineFramer()
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let received = chunk.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
            if received > 0 {
                let lines: [[UInt8]]
                do {
                    lines = try framer.append(chunk[..<received])
                } catch {
                    throw Failure(kind: .badReply, message: "ipamd at \(socketPath): \(error.message)")
                }
                guard let first = lines.first else { continue }
                do {
                    let reply = try JSON(parsing: first)
                    if let text = reply["v"]?.string, let version = ProtocolVersion(text), !IPAMWire.version.accepts(version) {
                        throw Failure(
                            kind: .badReply,
                            message: "ipamd at \(socketPath) speaks protocol \(version), this plugin \(IPAMWire.version): "
                                + "install matching nodeboot and nodeboot-cni builds")
                    }
                    return try Reply.decode(reply, answering: request)
                } catch let failure as Failure {
                    throw failure
                } catch let error as JSONError {
                    throw Failure(kind: .badReply, message: "ipamd at \(socketPath) answered with bad JSON: \(error)")
                } catch {
                    throw Failure(kind: .badReply, message: "ipamd at \(socketPath) answered: \(error)")
                }
            }
            if received == 0 {
                throw Failure(kind: .unreachable, message: "ipamd at \(socketPath) closed the connection without answering")
            }
            guard errno == EAGAIN || errno == EINTR else {
                throw Failure(kind: .unreachable, message: "ipamd at \(socketPath): recv: \(Self.errorText(errno))")
            }
            try wait(descriptor, POLLIN, until: deadline, doing: "waiting for the answer to \(request.op)")
        }
    }

    func connect() throws(Failure) -> Int32 {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let path = Array(socketPath.utf8)
        guard path.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw Failure(kind: .unreachable, message: "socket path \(socketPath) is too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: path)
            raw[path.count] = 0
        }
        let descriptor = socket(
            AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard descriptor >= 0 else {
            throw Failure(kind: .unreachable, message: "socket: \(Self.errorText(errno))")
        }
        let deadline = ContinuousClock.now + connectTimeout
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        if connected == 0 { return descriptor }
        // A Unix socket connect either succeeds, fails, or (backlog full) would block.
        guard errno == EAGAIN || errno == EINPROGRESS else {
            let code = errno
            close(descriptor)
            let hint =
                code == ENOENT || code == ECONNREFUSED
                ? " (is nodeboot-ipamd.service running? systemctl status nodeboot-ipamd)" : ""
            throw Failure(kind: .unreachable, message: "cannot reach ipamd at \(socketPath): \(Self.errorText(code))\(hint)")
        }
        do {
            try wait(descriptor, POLLOUT, until: deadline, doing: "connecting")
        } catch {
            close(descriptor)
            throw error
        }
        return descriptor
    }

    func wait(_ descriptor: Int32, _ events: Int32, until deadline: ContinuousClock.Instant, doing what: String)
        throws(Failure)
    {
        while true {
            let left = deadline - ContinuousClock.now
            guard left > .zero else {
                throw Failure(kind: .timeout, message: "ipamd at \(socketPath): no progress \(what) in time")
            }
            let (seconds, attoseconds) = left.components
            let milliseconds = Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
            var entry = pollfd(fd: descriptor, events: Int16(events), revents: 0)
            let ready = poll(&entry, 1, milliseconds)
            if ready > 0 { return }
            if ready < 0 && errno != EINTR {
                throw Failure(kind: .unreachable, message: "ipamd at \(socketPath): poll: \(Self.errorText(errno))")
            }
        }
    }

    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }
}
