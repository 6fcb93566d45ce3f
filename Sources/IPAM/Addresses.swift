/// An IPv4 address as a number (pool arithmetic, subnet gateways) with its dotted text.
public struct IPv4Address: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var value: UInt32

    public init(_ value: UInt32) { self.value = value }

    /// Dotted-quad text only: four decimal parts 0–255, no leading zeros (Go's net.ParseIP).
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var value: UInt32 = 0
        for part in parts {
            guard !part.isEmpty, part.count <= 3, part.allSatisfy(\.isASCII), part.allSatisfy(\.isNumber),
                part == "0" || !part.hasPrefix("0"), let byte = UInt32(part), byte <= 255
            else { return nil }
            value = value << 8 | byte
        }
        self.value = value
    }

    public var description: String {
        "\(value >> 24).\(value >> 16 & 0xFF).\(value >> 8 & 0xFF).\(value & 0xFF)"
    }

    public static func < (lhs: Self, rhs: Self) -> Bool { lhs.value < rhs.value }
}

/// An IPv4 network: `10.0.0.0/16`. The address is the network's first (host bits must be zero).
public struct IPv4CIDR: Sendable, Hashable, CustomStringConvertible {
    public var network: IPv4Address
    public var prefixLength: Int

    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let address = IPv4Address(parts[0]), parts[1].allSatisfy(\.isNumber),
            let length = Int(parts[1]), (0...32).contains(length)
        else { return nil }
        let cidr = IPv4CIDR(network: address, prefixLength: length)
        guard cidr.network == address else { return nil }
        self = cidr
    }

    /// The network containing `address` (host bits cleared).
    public init(network address: IPv4Address, prefixLength: Int) {
        self.prefixLength = prefixLength
        self.network = IPv4Address(address.value & Self.mask(prefixLength))
    }

    static func mask(_ length: Int) -> UInt32 { length == 0 ? 0 : UInt32.max << UInt32(32 - length) }

    public var size: UInt64 { UInt64(1) << UInt64(32 - prefixLength) }

    public func contains(_ address: IPv4Address) -> Bool {
        address.value & Self.mask(prefixLength) == network.value
    }

    /// The VPC router: the subnet's network address + 1.
    public var gateway: IPv4Address { IPv4Address(network.value &+ 1) }

    /// The addresses of the network, in order (a /28 prefix's 16 pod addresses).
    public var addresses: [IPv4Address] { (0..<UInt32(size)).map { IPv4Address(network.value &+ $0) } }

    public var description: String { "\(network)/\(prefixLength)" }
}
