/// `IFA_F_*` flags of an address (linux/if_addr.h).
public struct AddressFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let secondary = AddressFlags(rawValue: 0x01)
    /// No duplicate address detection (IPv6): the address is usable at once.
    public static let noDAD = AddressFlags(rawValue: 0x02)
    public static let tentative = AddressFlags(rawValue: 0x40)
    public static let permanent = AddressFlags(rawValue: 0x80)
}

/// An address on a link, as `RTM_NEWADDR` describes it: `10.0.97.30/32 dev eth0`.
public struct InterfaceAddress: Sendable, Hashable, CustomStringConvertible {
    /// The local address and its prefix length (host bits kept: `10.0.1.5/24`).
    public var prefix: IPPrefix
    public var device: Device
    public var scope: RouteScope
    public var flags: AddressFlags
    /// `IFA_LABEL` (IPv4 only; the link's name unless an alias label was given).
    public var label: String?

    public init(
        _ prefix: IPPrefix, device: Device, scope: RouteScope = .universe, flags: AddressFlags = [],
        label: String? = nil
    ) {
        self.prefix = prefix
        self.device = device
        self.scope = scope
        self.flags = flags
        self.label = label
    }

    public var description: String { "\(prefix) dev \(device)" }

    /// `struct ifaddrmsg` and its attributes: the local address is `IFA_LOCAL` (IPv4; `IFA_ADDRESS`
    /// is the peer there) or `IFA_ADDRESS` (IPv6, which sends no `IFA_LOCAL`); `IFA_FLAGS` holds
    /// the flags that do not fit the header's byte.
    init?(_ message: Message) {
        let payload = message.payload
        guard payload.count >= IFA.headerSize, let family = AddressFamily(rawValue: payload[payload.startIndex]),
            let attributes = Attributes(payload.dropFirst(IFA.headerSize)),
            let address = attributes.address(IFA.local) ?? attributes.address(IFA.address), address.family == family,
            let prefix = IPPrefix(address, length: Int(payload[payload.startIndex + 1]))
        else { return nil }
        let start = payload.startIndex
        self.prefix = prefix
        flags = AddressFlags(rawValue: attributes.u32(IFA.flags) ?? UInt32(payload[start + 2]))
        scope = RouteScope(rawValue: payload[start + 3])
        device = Device(index: Int32(bitPattern: readU32(payload, at: start + 4)), name: attributes.string(IFA.label) ?? "")
        label = attributes.string(IFA.label)
    }
}

extension RouteNetlink {
    /// `ip addr add PREFIX dev DEV [nodad]`: `IFA_LOCAL` and `IFA_ADDRESS` both the address, as
    /// `ip` sends them for an address without a peer.
    public func addAddress(_ prefix: IPPrefix, to device: Device, noDAD: Bool = false) throws(NetlinkError) {
        let body = Self.addressBody(prefix, device, flags: noDAD ? AddressFlags.noDAD : [])
        try change(RTM.newAddress, [.create, .exclusive], body, "add address \(prefix) dev \(device)")
    }

    /// `ip addr del PREFIX dev DEV`.
    public func deleteAddress(_ prefix: IPPrefix, from device: Device) throws(NetlinkError) {
        try change(RTM.delAddress, [], Self.addressBody(prefix, device, flags: []), "delete address \(prefix) dev \(device)")
    }

    /// Every address of the namespace, or of one family (`ip addr show`).
    public func addresses(family: AddressFamily? = nil) throws(NetlinkError) -> [InterfaceAddress] {
        var body = MessageWriter()
        body.u8(family?.rawValue ?? 0)
        body.zeros(IFA.headerSize - 1)
        let operation = "dump \(family.map { "\($0) " } ?? "")addresses"
        return try dump(RTM.getAddress, body, operation).compactMap { message in
            message.type == RTM.newAddress ? InterfaceAddress(message) : nil
        }
    }

    static func addressBody(_ prefix: IPPrefix, _ device: Device, flags: AddressFlags) -> MessageWriter {
        var body = MessageWriter()
        body.u8(prefix.family.rawValue)
        body.u8(UInt8(prefix.length))
        body.u8(UInt8(flags.rawValue & 0xFF))
        body.u8(RouteScope.universe.rawValue)
        body.i32(device.index)
        body.attribute(IFA.local, prefix.address.bytes)
        body.attribute(IFA.address, prefix.address.bytes)
        return body
    }
}
