import Synchronization

/// A `NetlinkSocket` for tests: records every datagram sent, byte for byte, and answers each one
/// with the datagrams `respond` returns (by default an acknowledgement, `NLMSG_ERROR` with error
/// 0). Receiving with nothing queued fails as a real socket's timeout does.
public final class RecordingNetlinkSocket: NetlinkSocket {
    public typealias Responder = @Sendable (_ request: [UInt8]) -> [[UInt8]]

    struct State {
        var sent: [[UInt8]] = []
        var queued: [[UInt8]] = []
        var respond: Responder
    }

    let state: Mutex<State>

    public init(respond: @escaping Responder = { [RecordingNetlinkSocket.ack(for: $0)] }) {
        state = Mutex(State(respond: respond))
    }

    /// Every datagram sent so far, in order.
    public var sent: [[UInt8]] { state.withLock { $0.sent } }

    /// Replaces the answer to the next requests.
    public func respond(with responder: @escaping Responder) {
        state.withLock { $0.respond = responder }
    }

    public func send(_ datagram: [UInt8]) throws(NetlinkError) {
        state.withLock { state in
            state.sent.append(datagram)
            state.queued += state.respond(datagram)
        }
    }

    public func receive() throws(NetlinkError) -> [UInt8] {
        let next: [UInt8]? = state.withLock { state in
            state.queued.isEmpty ? nil : state.queued.removeFirst()
        }
        guard let next else { throw NetlinkError(.timeout, "receive") }
        return next
    }

    /// The kernel's acknowledgement of `request`: `NLMSG_ERROR` carrying `-errno` (0 for
    /// success) and the request's header, capped (`NLM_F_CAPPED`) as with `NETLINK_CAP_ACK`, plus
    /// the extended-ack message (`NLMSGERR_ATTR_MSG`, flag `NLM_F_ACK_TLVS`) when given.
    public static func ack(for request: [UInt8], errno: Int32 = 0, message: String? = nil) -> [UInt8] {
        var body = MessageWriter()
        body.i32(-errno)
        let header = request.prefix(NLMessage.headerSize)
        var flags = NLFlags.capped
        var tlvs = MessageWriter()
        if let message {
            flags.insert(.ackTLVs)
            tlvs.attribute(1, string: message)
        }
        let echoed = Array(header) + [UInt8](repeating: 0, count: NLMessage.headerSize - header.count)
        let payload = body.bytes + echoed + tlvs.bytes
        return datagram(type: NLMessage.error, flags: flags.rawValue, sequence: sequence(of: request), payload: payload)
    }

    /// `NLMSG_DONE` ending a dump, with error 0.
    public static func done(for request: [UInt8]) -> [UInt8] {
        datagram(type: NLMessage.done, flags: NLFlags.multi.rawValue, sequence: sequence(of: request), payload: [0, 0, 0, 0])
    }

    /// Captured datagrams with each message's sequence number changed to the request's, so a
    /// capture answers whatever request a test sends.
    public static func answering(_ request: [UInt8], with captured: [[UInt8]]) -> [[UInt8]] {
        let sequence = sequence(of: request)
        return captured.map { datagram in
            var datagram = datagram
            var offset = 0
            while datagram.count - offset >= NLMessage.headerSize {
                let length = Int(readU32(datagram, at: offset))
                guard length >= NLMessage.headerSize else { break }
                withUnsafeBytes(of: sequence) { raw in
                    for byte in 0..<4 { datagram[offset + 8 + byte] = raw[byte] }
                }
                offset += align4(length)
            }
            return datagram
        }
    }

    /// One message in a datagram of its own.
    public static func datagram(type: UInt16, flags: UInt16, sequence: UInt32, portID: UInt32 = 0, payload: [UInt8])
        -> [UInt8]
    {
        var header = MessageWriter()
        header.u32(UInt32(NLMessage.headerSize + payload.count))
        header.u16(type)
        header.u16(flags)
        header.u32(sequence)
        header.u32(portID)
        return header.bytes + payload + [UInt8](repeating: 0, count: align4(payload.count) - payload.count)
    }

    static func sequence(of request: [UInt8]) -> UInt32 {
        request.count >= NLMessage.headerSize ? readU32(request, at: 8) : 0
    }
}
