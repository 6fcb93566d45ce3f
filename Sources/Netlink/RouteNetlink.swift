import Synchronization

/// rtnetlink (`NETLINK_ROUTE`) over one socket: links, addresses, routes, rules and neighbours of
/// the network namespace the socket was opened in. Each request gets the next sequence number
/// and (for changes) `NLM_F_ACK`; the answer is read up to its acknowledgement or `NLMSG_DONE`,
/// and a refusal becomes a `NetlinkError` naming the operation and object. One request runs at
/// a time; the class may be shared between tasks and threads.
public final class RouteNetlink: Sendable {
    let socket: any NetlinkSocket
    /// The last sequence number used; held for a whole exchange, so requests never interleave.
    let sequence = Mutex<UInt32>(0)
    /// How often a dump the kernel marks interrupted (`NLM_F_DUMP_INTR`: the table changed while
    /// it was read) is started again.
    static let dumpAttempts = 3

    public init(socket: any NetlinkSocket) {
        self.socket = socket
    }

    /// A `KernelNetlinkSocket` in the calling thread's network namespace.
    public convenience init(receiveTimeout: Duration = .seconds(5)) throws(NetlinkError) {
        self.init(socket: try KernelNetlinkSocket(receiveTimeout: receiveTimeout))
    }

    /// A change (or a single get): `NLM_F_REQUEST | NLM_F_ACK` plus `flags`; returns the messages
    /// before the acknowledgement (a get's answer; none for a change).
    @discardableResult
    func change(_ type: UInt16, _ flags: NLFlags = [], _ body: MessageWriter, _ operation: String)
        throws(NetlinkError) -> [Message]
    {
        try exchange(Request(type: type, flags: flags.union([.request, .ack]), body: body), operation).messages
    }

    /// A dump (`NLM_F_REQUEST | NLM_F_DUMP`): every message up to `NLMSG_DONE`, started again when
    /// the kernel reports it interrupted.
    func dump(_ type: UInt16, _ body: MessageWriter, _ operation: String) throws(NetlinkError) -> [Message] {
        let request = Request(type: type, flags: [.request, .dump], body: body)
        for _ in 1..<Self.dumpAttempts {
            let answer = try exchange(request, operation)
            if !answer.interrupted { return answer.messages }
        }
        let answer = try exchange(request, operation)
        guard !answer.interrupted else {
            throw NetlinkError(
                .interrupted, operation,
                detail: "the kernel's table changed during each of \(Self.dumpAttempts) dumps (NLM_F_DUMP_INTR)")
        }
        return answer.messages
    }

    func exchange(_ request: Request, _ operation: String) throws(NetlinkError) -> (
        messages: [Message], interrupted: Bool
    ) {
        try sequence.withLock { last throws(NetlinkError) in
            last = last == UInt32.max ? 1 : last + 1
            let sequence = last
            do throws(NetlinkError) {
                try socket.send(request.encoded(sequence: sequence))
            } catch {
                throw error.during(operation)
            }
            var messages: [Message] = []
            var interrupted = false
            while true {
                let datagram: [UInt8]
                do throws(NetlinkError) {
                    datagram = try socket.receive()
                } catch {
                    throw error.during(operation)
                }
                guard let parts = Message.split(datagram) else {
                    throw NetlinkError(.malformed, operation, detail: "a message length runs past its datagram")
                }
                for message in parts where message.sequence == sequence {
                    // Messages with another sequence number answer an earlier request whose
                    // reader gave up (a timeout); they are dropped.
                    if message.flags.contains(.dumpInterrupted) { interrupted = true }
                    switch message.type {
                    case NLMessage.error:
                        let code = try Self.errorCode(message, operation)
                        guard code == 0 else {
                            throw NetlinkError(
                                .kernel, operation, errno: -code, detail: Self.extendedAck(message))
                        }
                        return (messages, interrupted)
                    case NLMessage.done:
                        // A dump that failed part way reports the errno here.
                        if message.payload.count >= 4 {
                            let code = Int32(bitPattern: readU32(message.payload, at: message.payload.startIndex))
                            if code < 0 { throw NetlinkError(.kernel, operation, errno: -code) }
                        }
                        return (messages, interrupted)
                    case NLMessage.noop:
                        continue
                    case NLMessage.overrun:
                        throw NetlinkError(.malformed, operation, detail: "the kernel reported an overrun")
                    default:
                        messages.append(message)
                        if !message.flags.contains(.multi) && !request.flags.contains(.ack) {
                            return (messages, interrupted)
                        }
                    }
                }
            }
        }
    }

    /// `struct nlmsgerr`: `int error` (0 for an acknowledgement, else -errno), then the request's
    /// header.
    static func errorCode(_ message: Message, _ operation: String) throws(NetlinkError) -> Int32 {
        guard message.payload.count >= 4 else {
            throw NetlinkError(.malformed, operation, detail: "an error message of \(message.payload.count) bytes")
        }
        return Int32(bitPattern: readU32(message.payload, at: message.payload.startIndex))
    }

    /// `NLMSGERR_ATTR_MSG` of an extended acknowledgement: after the error and the request's
    /// header (capped) or the whole request (not capped).
    static func extendedAck(_ message: Message) -> String? {
        guard message.flags.contains(.ackTLVs), message.payload.count >= 4 + NLMessage.headerSize else { return nil }
        let start = message.payload.startIndex
        var offset = start + 4 + NLMessage.headerSize
        if !message.flags.contains(.capped) {
            offset = start + 4 + align4(Int(readU32(message.payload, at: start + 4)))
        }
        guard offset <= message.payload.endIndex, let attributes = Attributes(message.payload[offset...]),
            let text = attributes.string(1), !text.isEmpty
        else { return nil }
        return text
    }
}

extension NetlinkError {
    /// The same failure, named after the operation it interrupted (socket errors arrive as
    /// "send" or "receive").
    func during(_ operation: String) -> NetlinkError {
        var error = self
        if code == .socket { error.detail = [self.operation, detail].compactMap { $0 }.joined(separator: ": ") }
        error.operation = operation
        return error
    }
}
