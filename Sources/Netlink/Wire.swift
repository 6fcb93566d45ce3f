// The rtnetlink wire format: numbers from the kernel's UAPI headers (linux/netlink.h,
// linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h, linux/neighbour.h, linux/fib_rules.h,
// linux/veth.h), written down here because Swift's Glibc module does not carry them.
// Integers travel in host byte order (little-endian on x86_64 and aarch64), addresses in
// network order.

/// `struct nlmsghdr` types and flags (linux/netlink.h).
enum NLMessage {
    static let headerSize = 16  // u32 len, u16 type, u16 flags, u32 seq, u32 pid
    static let noop: UInt16 = 1
    static let error: UInt16 = 2
    static let done: UInt16 = 3
    static let overrun: UInt16 = 4
}

/// `nlmsg_flags` bits.
struct NLFlags: OptionSet, Sendable, Hashable {
    let rawValue: UInt16
    static let request = NLFlags(rawValue: 0x1)
    static let multi = NLFlags(rawValue: 0x2)
    static let ack = NLFlags(rawValue: 0x4)
    static let echo = NLFlags(rawValue: 0x8)
    static let dumpInterrupted = NLFlags(rawValue: 0x10)
    // GET requests
    static let dump = NLFlags(rawValue: 0x300)  // NLM_F_ROOT | NLM_F_MATCH
    // NEW requests
    static let replace = NLFlags(rawValue: 0x100)
    static let exclusive = NLFlags(rawValue: 0x200)
    static let create = NLFlags(rawValue: 0x400)
    // NLMSG_ERROR acknowledgements
    static let capped = NLFlags(rawValue: 0x100)
    static let ackTLVs = NLFlags(rawValue: 0x200)
}

/// rtnetlink message types (linux/rtnetlink.h).
enum RTM {
    static let newLink: UInt16 = 16
    static let delLink: UInt16 = 17
    static let getLink: UInt16 = 18
    static let newAddress: UInt16 = 20
    static let delAddress: UInt16 = 21
    static let getAddress: UInt16 = 22
    static let newRoute: UInt16 = 24
    static let delRoute: UInt16 = 25
    static let getRoute: UInt16 = 26
    static let newNeighbour: UInt16 = 28
    static let delNeighbour: UInt16 = 29
    static let getNeighbour: UInt16 = 30
    static let newRule: UInt16 = 32
    static let delRule: UInt16 = 33
    static let getRule: UInt16 = 34
}

/// `IFLA_*` attributes of `struct ifinfomsg` (16 bytes: u8 family, u8 pad, u16 type, i32 index,
/// u32 flags, u32 change).
enum IFLA {
    static let headerSize = 16
    static let address: UInt16 = 1
    static let name: UInt16 = 3
    static let mtu: UInt16 = 4
    static let link: UInt16 = 5
    static let master: UInt16 = 10
    static let linkInfo: UInt16 = 18
    static let netNamespaceFD: UInt16 = 28
    static let extMask: UInt16 = 29
    // nested in IFLA_LINKINFO
    static let infoKind: UInt16 = 1
    static let infoData: UInt16 = 2
    // nested in IFLA_INFO_DATA of a veth (linux/veth.h): a struct ifinfomsg, then IFLA_* attributes
    static let vethPeer: UInt16 = 1
    /// `RTEXT_FILTER_SKIP_STATS`: leave the IPv6 counters out of `IFLA_AF_SPEC` (several hundred
    /// bytes per link; `IFLA_STATS64` stays).
    static let skipStats: UInt32 = 1 << 3
}

/// `IFA_*` attributes of `struct ifaddrmsg` (8 bytes: u8 family, u8 prefixlen, u8 flags, u8 scope,
/// u32 index).
enum IFA {
    static let headerSize = 8
    static let address: UInt16 = 1
    static let local: UInt16 = 2
    static let label: UInt16 = 3
    static let flags: UInt16 = 8
}

/// `RTA_*` attributes of `struct rtmsg` (12 bytes: u8 family, dst_len, src_len, tos, table,
/// protocol, scope, type; u32 flags).
enum RTA {
    static let headerSize = 12
    static let destination: UInt16 = 1
    static let outputInterface: UInt16 = 4
    static let gateway: UInt16 = 5
    static let priority: UInt16 = 6
    static let preferredSource: UInt16 = 7
    static let table: UInt16 = 15
}

/// `FRA_*` attributes of `struct fib_rule_hdr` (12 bytes: u8 family, dst_len, src_len, tos, table,
/// res1, res2, action; u32 flags).
enum FRA {
    static let headerSize = 12
    static let destination: UInt16 = 1
    static let source: UInt16 = 2
    static let inputInterface: UInt16 = 3
    static let priority: UInt16 = 6
    static let fwmark: UInt16 = 10
    static let table: UInt16 = 15
    static let fwmask: UInt16 = 16
    static let outputInterface: UInt16 = 17
    /// `FIB_RULE_INVERT` in the header's flags: `ip rule add not …`.
    static let invert: UInt32 = 0x2
}

/// `NDA_*` attributes of `struct ndmsg` (12 bytes: u8 family, u8 pad, u16 pad, i32 index,
/// u16 state, u8 flags, u8 type).
enum NDA {
    static let headerSize = 12
    static let destination: UInt16 = 1
    static let linkAddress: UInt16 = 2
}

/// Table ids with a meaning of their own (`RT_TABLE_*`).
enum RouteTableID {
    static let unspecified: UInt32 = 0
    static let main: UInt32 = 254
}

/// Rounds up to the 4-byte boundary both NLMSG_ALIGN and RTA_ALIGN use.
@inline(__always) func align4(_ length: Int) -> Int { (length + 3) & ~3 }

/// Appends rtnetlink structures to a message body: fixed headers field by field, attributes with
/// their 4-byte header and padding (RTA_ALIGN), nests whose length covers their content.
struct MessageWriter {
    private(set) var bytes: [UInt8] = []

    mutating func u8(_ value: UInt8) { bytes.append(value) }
    mutating func u16(_ value: UInt16) { withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ value: UInt32) { withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) } }
    mutating func i32(_ value: Int32) { withUnsafeBytes(of: value) { bytes.append(contentsOf: $0) } }
    mutating func zeros(_ count: Int) { bytes.append(contentsOf: repeatElement(0, count: count)) }

    /// One attribute: `rta_len` counts header and payload, the padding after it does not.
    mutating func attribute(_ type: UInt16, _ payload: some Collection<UInt8>) {
        u16(UInt16(4 + payload.count))
        u16(type)
        bytes.append(contentsOf: payload)
        zeros(align4(bytes.count) - bytes.count)
    }

    mutating func attribute(_ type: UInt16, u32 value: UInt32) {
        attribute(type, withUnsafeBytes(of: value) { Array($0) })
    }

    /// A string attribute, NUL-terminated as `IFLA_IFNAME` wants; `IFLA_INFO_KIND` goes without
    /// the NUL, as `ip` sends it.
    mutating func attribute(_ type: UInt16, string: String, terminated: Bool = true) {
        attribute(type, Array(string.utf8) + (terminated ? [0] : []))
    }

    /// A nested attribute (`NLA_F_NESTED` not set, as `ip` sends these legacy nests). Its length
    /// covers the content and the content's padding.
    mutating func nested(_ type: UInt16, _ content: (inout MessageWriter) -> Void) {
        let start = bytes.count
        u16(0)
        u16(type)
        content(&self)
        let length = UInt16(bytes.count - start)
        withUnsafeBytes(of: length) { raw in
            bytes[start] = raw[0]
            bytes[start + 1] = raw[1]
        }
    }
}

/// A request before its sequence number is known.
struct Request {
    var type: UInt16
    var flags: NLFlags
    var body: MessageWriter

    /// The datagram: `struct nlmsghdr` (length including the body's padding, pid 0 for the
    /// kernel) and the body.
    func encoded(sequence: UInt32) -> [UInt8] {
        var header = MessageWriter()
        header.u32(UInt32(NLMessage.headerSize + body.bytes.count))
        header.u16(type)
        header.u16(flags.rawValue)
        header.u32(sequence)
        header.u32(0)
        return header.bytes + body.bytes
    }
}

/// One message of a reply, with its payload (fixed header and attributes).
struct Message: Sendable {
    var type: UInt16
    var flags: NLFlags
    var sequence: UInt32
    var portID: UInt32
    var payload: ArraySlice<UInt8>

    /// Splits a datagram into its messages (NLMSG_OK/NLMSG_NEXT); nil when a length field
    /// points outside the datagram.
    static func split(_ datagram: [UInt8]) -> [Message]? {
        var messages: [Message] = []
        var offset = 0
        while datagram.count - offset >= NLMessage.headerSize {
            let length = Int(readU32(datagram, at: offset))
            guard length >= NLMessage.headerSize, length <= datagram.count - offset else { return nil }
            messages.append(
                Message(
                    type: readU16(datagram, at: offset + 4), flags: NLFlags(rawValue: readU16(datagram, at: offset + 6)),
                    sequence: readU32(datagram, at: offset + 8), portID: readU32(datagram, at: offset + 12),
                    payload: datagram[(offset + NLMessage.headerSize)..<(offset + length)]))
            offset += align4(length)
        }
        // Trailing bytes shorter than a header are padding at most.
        return offset >= datagram.count || datagram[offset...].allSatisfy({ $0 == 0 }) ? messages : nil
    }
}

/// The attributes after a fixed header, by type (the last one wins when a type repeats; the
/// `NLA_F_NESTED` and `NLA_F_NET_BYTEORDER` bits are masked off).
struct Attributes {
    private(set) var values: [UInt16: ArraySlice<UInt8>] = [:]

    /// Nil when an attribute's length runs past the end.
    init?(_ bytes: ArraySlice<UInt8>) {
        var offset = bytes.startIndex
        while bytes.endIndex - offset >= 4 {
            let length = Int(readU16(bytes, at: offset))
            let type = readU16(bytes, at: offset + 2) & 0x3FFF
            guard length >= 4, length <= bytes.endIndex - offset else { return nil }
            values[type] = bytes[(offset + 4)..<(offset + length)]
            offset += align4(length)
        }
    }

    subscript(type: UInt16) -> ArraySlice<UInt8>? { values[type] }

    func u32(_ type: UInt16) -> UInt32? {
        guard let value = values[type], value.count >= 4 else { return nil }
        return readU32(value, at: value.startIndex)
    }

    func i32(_ type: UInt16) -> Int32? { u32(type).map { Int32(bitPattern: $0) } }

    /// A string attribute up to its NUL (or its end when it has none).
    func string(_ type: UInt16) -> String? {
        guard let value = values[type] else { return nil }
        let end = value.firstIndex(of: 0) ?? value.endIndex
        return String(decoding: value[..<end], as: UTF8.self)
    }

    func address(_ type: UInt16) -> IPAddress? { values[type].flatMap { IPAddress(bytes: $0) } }

    func nested(_ type: UInt16) -> Attributes? { values[type].flatMap { Attributes($0) } }
}

/// The host-order integer at `index` (an absolute index, as slices keep their base's).
func readU16<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, at index: Int) -> UInt16 where Bytes.Index == Int {
    var value: UInt16 = 0
    withUnsafeMutableBytes(of: &value) { raw in
        for byte in 0..<2 { raw[byte] = bytes[index + byte] }
    }
    return value
}

func readU32<Bytes: RandomAccessCollection<UInt8>>(_ bytes: Bytes, at index: Int) -> UInt32 where Bytes.Index == Int {
    var value: UInt32 = 0
    withUnsafeMutableBytes(of: &value) { raw in
        for byte in 0..<4 { raw[byte] = bytes[index + byte] }
    }
    return value
}
