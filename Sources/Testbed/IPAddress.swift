import Foundation

/// IPv4 and IPv6 addresses and CIDR blocks as numbers, for the network model's address
/// arithmetic. Text forms are the dotted quad and RFC 5952's (lowercase, longest zero run as `::`).
enum IPv4 {
    static func parse<S: StringProtocol>(_ text: S) -> UInt32? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard (1...3).contains(part.count), part.allSatisfy(\.isASCII), let octet = UInt32(part), octet <= 255,
                part.count == 1 || part.first != "0"
            else { return nil }
            value = value << 8 | octet
        }
        return value
    }

    static func format(_ value: UInt32) -> String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }
}

/// An IPv4 CIDR block (`base` has no host bits).
struct IPv4CIDR: Sendable, Hashable, CustomStringConvertible {
    var base: UInt32
    var length: Int

    init(base: UInt32, length: Int) {
        self.length = length
        self.base = length == 0 ? 0 : base & ~(UInt32.max >> UInt32(length))
    }

    /// `a.b.c.d/n` with no host bits set.
    init?<S: StringProtocol>(_ text: S) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4.parse(parts[0]), let length = Int(parts[1]), (0...32).contains(length)
        else { return nil }
        self.init(base: address, length: length)
        guard self.base == address else { return nil }
    }

    var size: UInt64 { 1 << UInt64(32 - length) }
    /// The last address (the broadcast address of a subnet).
    var last: UInt32 { base + UInt32(size - 1) }

    func contains(_ address: UInt32) -> Bool { address >= base && address <= last }

    var description: String { "\(IPv4.format(base))/\(length)" }
}

enum IPv6 {
    static func parse<S: StringProtocol>(_ text: S) -> UInt128? {
        let text = String(text)
        guard !text.isEmpty, text.allSatisfy({ $0.isHexDigit || $0 == ":" }) else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), let value = UInt16(group, radix: 16) else { return nil }
                out.append(value)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all = head
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count <= 7 else { return nil }
            all += Array(repeating: 0, count: 8 - head.count - tail.count) + tail
        }
        guard all.count == 8 else { return nil }
        return all.reduce(UInt128(0)) { $0 << 16 | UInt128($1) }
    }

    static func format(_ value: UInt128) -> String {
        let groups = (0..<8).map { UInt16(truncatingIfNeeded: value >> UInt128(112 - 16 * $0)) }
        // The longest run of two or more zero groups (the first on a tie) becomes "::".
        var best = (start: -1, count: 0)
        var index = 0
        while index < 8 {
            guard groups[index] == 0 else {
                index += 1
                continue
            }
            var end = index
            while end < 8 && groups[end] == 0 { end += 1 }
            if end - index > best.count && end - index >= 2 { best = (index, end - index) }
            index = end
        }
        func hex(_ range: Range<Int>) -> String {
            groups[range].map { String($0, radix: 16) }.joined(separator: ":")
        }
        guard best.start >= 0 else { return hex(0..<8) }
        return hex(0..<best.start) + "::" + hex((best.start + best.count)..<8)
    }
}

/// An IPv6 CIDR block (`base` has no host bits).
struct IPv6CIDR: Sendable, Hashable, CustomStringConvertible {
    var base: UInt128
    var length: Int

    init(base: UInt128, length: Int) {
        self.length = length
        self.base = length == 0 ? 0 : base & ~(UInt128.max >> UInt128(length))
    }

    init?<S: StringProtocol>(_ text: S) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv6.parse(parts[0]), let length = Int(parts[1]), (0...128).contains(length)
        else { return nil }
        self.init(base: address, length: length)
        guard self.base == address else { return nil }
    }

    /// The last address of the block.
    var last: UInt128 { length == 0 ? .max : base | (UInt128.max >> UInt128(length)) }

    func contains(_ address: UInt128) -> Bool { address >= base && address <= last }

    func overlaps(_ other: IPv6CIDR) -> Bool { base <= other.last && other.base <= last }

    var description: String { "\(IPv6.format(base))/\(length)" }
}
