/// IPv4/IPv6 addresses and CIDRs, parsed strictly (as Go's `net.ParseIP`/`ParseCIDR`): no
/// leading zeros in IPv4 octets, one `::` at most in IPv6, prefix within the family's range.
public enum IPAddress: Sendable, Equatable {
    case v4([UInt8])
    case v6([UInt8])

    public var isIPv4: Bool { if case .v4 = self { true } else { false } }

    public init?(_ text: some StringProtocol) {
        if text.contains(":") {
            guard let bytes = Self.parseV6(Substring(text)) else { return nil }
            // An IPv4-mapped address (::ffff:a.b.c.d) is IPv4, as in Go.
            if bytes[0..<10].allSatisfy({ $0 == 0 }) && bytes[10] == 0xff && bytes[11] == 0xff {
                self = .v4(Array(bytes[12...]))
            } else {
                self = .v6(bytes)
            }
        } else {
            guard let bytes = Self.parseV4(Substring(text)) else { return nil }
            self = .v4(bytes)
        }
    }

    static func parseV4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCIIDigit),
                part.count == 1 || part.first != "0", let value = UInt8(part)
            else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    static func parseV6(_ input: Substring) -> [UInt8]? {
        var text = input
        // An embedded IPv4 suffix (::ffff:1.2.3.4) becomes two hex groups.
        if let lastColon = text.lastIndex(of: ":"), text[text.index(after: lastColon)...].contains(".") {
            guard let v4 = parseV4(text[text.index(after: lastColon)...]) else { return nil }
            let high = String(UInt16(v4[0]) << 8 | UInt16(v4[1]), radix: 16)
            let low = String(UInt16(v4[2]) << 8 | UInt16(v4[3]), radix: 16)
            text = Substring(text[...lastColon] + high + ":" + low)
        }
        let tail: [UInt8] = []
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring) -> [UInt8]? {
            if part.isEmpty { return [] }
            var bytes: [UInt8] = []
            for group in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard (1...4).contains(group.count), let value = UInt16(group, radix: 16) else { return nil }
                bytes += [UInt8(value >> 8), UInt8(value & 0xff)]
            }
            return bytes
        }
        guard let head = groups(halves[0]) else { return nil }
        if halves.count == 1 {
            let bytes = head + tail
            return bytes.count == 16 ? bytes : nil
        }
        guard let rest = groups(halves[1]) else { return nil }
        let fill = 16 - head.count - rest.count - tail.count
        guard fill >= 2 else { return nil }
        return head + Array(repeating: 0, count: fill) + rest + tail
    }
}

extension Substring {
    fileprivate func components(separatedBy separator: String) -> [Substring] {
        var parts: [Substring] = []
        var start = startIndex
        var index = startIndex
        while index < endIndex {
            if self[index...].hasPrefix(separator) {
                parts.append(self[start..<index])
                index = self.index(index, offsetBy: separator.count)
                start = index
            } else {
                index = self.index(after: index)
            }
        }
        parts.append(self[start...])
        return parts
    }
}

/// `address/prefix`, as Go's `net.ParseCIDR`.
public struct CIDR: Sendable, Equatable {
    public var address: IPAddress
    public var prefix: Int

    public init?(_ text: String) {
        guard let slash = text.firstIndex(of: "/"), let address = IPAddress(text[..<slash]) else { return nil }
        let digits = text[text.index(after: slash)...]
        guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy(\.isASCIIDigit), let prefix = Int(digits),
            prefix <= (address.isIPv4 ? 32 : 128)
        else { return nil }
        self.address = address
        self.prefix = prefix
    }
}

extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
