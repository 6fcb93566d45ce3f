/// The address families rtnetlink messages carry (`AF_INET`, `AF_INET6`).
public enum AddressFamily: UInt8, Sendable, Hashable, CustomStringConvertible {
    case inet = 2
    case inet6 = 10

    /// The address length in bytes.
    public var addressLength: Int { self == .inet ? 4 : 16 }
    /// The longest prefix: 32 or 128.
    public var maximumPrefixLength: Int { addressLength * 8 }
    public var description: String { self == .inet ? "inet" : "inet6" }
}

/// An IPv4 or IPv6 address as the kernel stores it: the bytes in network order.
public struct IPAddress: Sendable, Hashable, CustomStringConvertible {
    public let family: AddressFamily
    /// 4 or 16 bytes, network order.
    public let bytes: [UInt8]

    /// An IPv4 address from its 32-bit value (`0x0A00611E` is 10.0.97.30).
    public init(v4 value: UInt32) {
        family = .inet
        bytes = [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
    }

    /// Bytes already checked to have the family's length.
    init(family: AddressFamily, checked bytes: [UInt8]) {
        self.family = family
        self.bytes = bytes
    }

    /// 4 bytes make an IPv4 address, 16 an IPv6 one; any other count is nil.
    public init?(bytes: some Collection<UInt8>) {
        switch bytes.count {
        case 4: family = .inet
        case 16: family = .inet6
        default: return nil
        }
        self.bytes = Array(bytes)
    }

    /// Dotted-quad IPv4 (four decimal parts 0–255, no leading zeros) or RFC 4291 IPv6 text
    /// (`::` once, an embedded dotted quad at the end); no zone, no prefix.
    public init?(_ text: some StringProtocol) {
        let text = String(text)
        if text.utf8.contains(0x3A) {  // ":"
            guard let bytes = Self.parseV6(text) else { return nil }
            family = .inet6
            self.bytes = bytes
        } else {
            guard let bytes = Self.parseV4(text) else { return nil }
            family = .inet
            self.bytes = bytes
        }
    }

    /// The IPv4 value (nil for IPv6), for address arithmetic (a subnet's router is its network + 1).
    public var v4Value: UInt32? {
        guard family == .inet else { return nil }
        return bytes.reduce(0) { $0 << 8 | UInt32($1) }
    }

    /// Dotted quad, or RFC 5952 IPv6 text (lowercase, the first longest run of two or more zero
    /// groups as `::`), as `ip` prints them.
    public var description: String {
        if family == .inet { return bytes.map(String.init).joined(separator: ".") }
        let groups = (0..<8).map { UInt16(bytes[2 * $0]) << 8 | UInt16(bytes[2 * $0 + 1]) }
        var best = (start: -1, count: 0)
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > best.count { best = (index, end - index) }
            index = end
        }
        // IPv4-mapped (::ffff:a.b.c.d) and -compatible (::a.b.c.d) addresses end in a dotted
        // quad, as inet_ntop writes them.
        if best.start == 0 && (best.count == 6 || (best.count == 5 && groups[5] == 0xFFFF)) {
            let quad = bytes[12...].map(String.init).joined(separator: ".")
            return best.count == 6 ? "::" + quad : "::ffff:" + quad
        }
        let hex = groups.map { String($0, radix: 16) }
        guard best.count >= 2 else { return hex.joined(separator: ":") }
        let head = hex[..<best.start].joined(separator: ":")
        let tail = hex[(best.start + best.count)...].joined(separator: ":")
        return head + "::" + tail
    }

    static func parseV4(_ text: String) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
                part == "0" || !part.hasPrefix("0"), let value = UInt8(part)
            else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    /// The 16 bytes of IPv6 text, nil when it is not valid.
    static func parseV6(_ text: String) -> [UInt8]? {
        // Split at the one `::` by hand: String.split(separator: String) is _StringProcessing.
        let utf8 = Array(text.utf8)
        var halves: [Substring] = []
        if let gap = (0..<max(0, utf8.count - 1)).first(where: { utf8[$0] == 0x3A && utf8[$0 + 1] == 0x3A }) {
            let head = String(decoding: utf8[..<gap], as: UTF8.self)
            let tail = String(decoding: utf8[(gap + 2)...], as: UTF8.self)
            halves = [Substring(head), Substring(tail)]
        } else {
            halves = [Substring(text)]
        }
        func groups(_ part: Substring, allowV4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            var result: [UInt16] = []
            let pieces = part.split(separator: ":", omittingEmptySubsequences: false)
            for (position, piece) in pieces.enumerated() {
                if allowV4Tail && position == pieces.count - 1 && piece.utf8.contains(0x2E) {
                    guard let v4 = parseV4(String(piece)) else { return nil }
                    result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard (1...4).contains(piece.count), piece.utf8.allSatisfy(isHexDigit),
                    let value = UInt16(piece, radix: 16)
                else { return nil }
                result.append(value)
            }
            return result
        }
        let all: [UInt16]
        if halves.count == 1 {
            guard let only = groups(halves[0], allowV4Tail: true), only.count == 8 else { return nil }
            all = only
        } else {
            guard let head = groups(halves[0], allowV4Tail: false), let tail = groups(halves[1], allowV4Tail: true),
                head.count + tail.count <= 7
            else { return nil }
            all = head + Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        return all.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }
}

/// An address with a prefix length: `10.0.97.30/32`, `10.0.0.0/16`, `fd00::1e/128`. Host bits
/// may be set (an interface address such as `10.0.1.5/24`); `network` clears them.
public struct IPPrefix: Sendable, Hashable, CustomStringConvertible {
    public let address: IPAddress
    public let length: Int

    /// Nil when the length exceeds the family's maximum.
    public init?(_ address: IPAddress, length: Int) {
        guard (0...address.family.maximumPrefixLength).contains(length) else { return nil }
        self.address = address
        self.length = length
    }

    /// The host prefix of an address: /32 or /128.
    public init(host address: IPAddress) {
        self.address = address
        length = address.family.maximumPrefixLength
    }

    /// `ADDRESS/LENGTH`, or a bare address for its host prefix.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(parts[0]) else { return nil }
        if parts.count == 1 {
            self.init(host: address)
            return
        }
        guard !parts[1].isEmpty, parts[1].count <= 3, parts[1].utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let length = Int(parts[1])
        else { return nil }
        self.init(address, length: length)
    }

    /// The default route's destination, `0.0.0.0/0` or `::/0`.
    public static func any(_ family: AddressFamily) -> IPPrefix {
        IPPrefix(checked: IPAddress(family: family, checked: [UInt8](repeating: 0, count: family.addressLength)), 0)
    }

    /// A length already checked against the family.
    init(checked address: IPAddress, _ length: Int) {
        self.address = address
        self.length = length
    }

    public var family: AddressFamily { address.family }

    /// The address with the host bits cleared.
    public var network: IPAddress {
        var bytes = address.bytes
        for index in bytes.indices {
            let keep = max(0, min(8, length - index * 8))
            bytes[index] &= keep == 0 ? 0 : ~UInt8(0) << (8 - keep)
        }
        return IPAddress(family: address.family, checked: bytes)
    }

    /// Whether `other` lies in this prefix (same family, same network bits).
    public func contains(_ other: IPAddress) -> Bool {
        other.family == family && IPPrefix(checked: other, length).network == network
    }

    /// The address `offset` after the network address; nil past the prefix's end.
    public func address(at offset: UInt64) -> IPAddress? {
        let hostBits = family.maximumPrefixLength - length
        guard hostBits >= 64 || offset < (UInt64(1) << UInt64(hostBits)) else { return nil }
        var bytes = network.bytes
        var carry = offset
        for index in bytes.indices.reversed() where carry > 0 {
            let sum = UInt64(bytes[index]) + (carry & 0xff)
            bytes[index] = UInt8(truncatingIfNeeded: sum)
            carry = (carry >> 8) + (sum >> 8)
        }
        return IPAddress(family: family, checked: bytes)
    }

    /// The offset of `other` from the network address (its low 64 bits); nil outside the prefix.
    public func offset(of other: IPAddress) -> UInt64? {
        guard contains(other) else { return nil }
        return other.bytes.suffix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            & (family.maximumPrefixLength - length >= 64 ? .max : (UInt64(1) << UInt64(family.maximumPrefixLength - length)) - 1)
    }

    public var description: String { "\(address)/\(length)" }
}

/// An Ethernet address (`IFLA_ADDRESS` of a veth or ENI, `NDA_LLADDR`).
public struct MACAddress: Sendable, Hashable, CustomStringConvertible {
    public let bytes: [UInt8]

    /// Nil unless exactly 6 bytes.
    public init?(bytes: some Collection<UInt8>) {
        guard bytes.count == 6 else { return nil }
        self.bytes = Array(bytes)
    }

    /// Six two-digit hex parts separated by `:` (`02:00:0a:00:61:1e`), either case.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 6 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard part.count == 2, part.utf8.allSatisfy(isHexDigit), let byte = UInt8(part, radix: 16) else {
                return nil
            }
            bytes.append(byte)
        }
        self.bytes = bytes
    }

    /// Lowercase, colon-separated, as `ip` prints it.
    public var description: String {
        bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined(separator: ":")
    }
}

/// `0-9`, `a-f`, `A-F` (the radix initialisers would also take a sign).
func isHexDigit(_ byte: UInt8) -> Bool {
    (0x30...0x39).contains(byte) || (0x41...0x46).contains(byte) || (0x61...0x66).contains(byte)
}
