/// `NUD_*` states of a neighbour entry (linux/neighbour.h).
public struct NeighbourState: OptionSet, Sendable, Hashable {
    public let rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let incomplete = NeighbourState(rawValue: 0x01)
    public static let reachable = NeighbourState(rawValue: 0x02)
    public static let stale = NeighbourState(rawValue: 0x04)
    public static let delay = NeighbourState(rawValue: 0x08)
    public static let probe = NeighbourState(rawValue: 0x10)
    public static let failed = NeighbourState(rawValue: 0x20)
    public static let noARP = NeighbourState(rawValue: 0x40)
    /// Static, never expires: the pod's entry for its gateway 169.254.1.1.
    public static let permanent = NeighbourState(rawValue: 0x80)
}

/// A neighbour (ARP or NDP) entry: `169.254.1.1 lladdr 02:… dev eth0 nud permanent`.
public struct Neighbour: Sendable, Hashable, CustomStringConvertible {
    public var address: IPAddress
    public var linkAddress: MACAddress?
    public var device: Device
    public var state: NeighbourState

    public init(_ address: IPAddress, linkAddress: MACAddress?, device: Device, state: NeighbourState = .permanent) {
        self.address = address
        self.linkAddress = linkAddress
        self.device = device
        self.state = state
    }

    public var description: String {
        "\(address)" + (linkAddress.map { " lladdr \($0)" } ?? "") + " dev \(device)"
            + (state == .permanent ? " nud permanent" : "")
    }

    /// `struct ndmsg` and its attributes.
    init?(_ message: Message) {
        let payload = message.payload
        let start = payload.startIndex
        guard payload.count >= NDA.headerSize, AddressFamily(rawValue: payload[start]) != nil,
            let attributes = Attributes(payload.dropFirst(NDA.headerSize)),
            let address = attributes.address(NDA.destination)
        else { return nil }
        self.address = address
        linkAddress = attributes[NDA.linkAddress].flatMap { MACAddress(bytes: $0) }
        device = Device(index: Int32(bitPattern: readU32(payload, at: start + 4)))
        state = NeighbourState(rawValue: readU16(payload, at: start + 8))
    }
}

extension RouteNetlink {
    /// `ip neigh add ADDRESS lladdr MAC dev DEV nud STATE` (`replace`: `ip neigh replace`, which
    /// also updates an existing entry).
    public func addNeighbour(_ neighbour: Neighbour, replace: Bool = false) throws(NetlinkError) {
        var body = Self.neighbourHeader(neighbour.address.family, neighbour.device, neighbour.state)
        body.attribute(NDA.destination, neighbour.address.bytes)
        if let linkAddress = neighbour.linkAddress { body.attribute(NDA.linkAddress, linkAddress.bytes) }
        let flags: NLFlags = replace ? [.create, .replace] : [.create, .exclusive]
        try change(RTM.newNeighbour, flags, body, "\(replace ? "replace" : "add") neighbour \(neighbour)")
    }

    /// `ip neigh del ADDRESS dev DEV`.
    public func deleteNeighbour(_ address: IPAddress, device: Device) throws(NetlinkError) {
        var body = Self.neighbourHeader(address.family, device, .permanent)
        body.attribute(NDA.destination, address.bytes)
        try change(RTM.delNeighbour, [], body, "delete neighbour \(address) dev \(device)")
    }

    /// The neighbour entries of one family (`ip neigh show`).
    public func neighbours(family: AddressFamily) throws(NetlinkError) -> [Neighbour] {
        var body = MessageWriter()
        body.u8(family.rawValue)
        body.zeros(NDA.headerSize - 1)
        return try dump(RTM.getNeighbour, body, "dump \(family) neighbours").compactMap { message in
            message.type == RTM.newNeighbour ? Neighbour(message) : nil
        }
    }

    /// `struct ndmsg`: family, padding, the interface, the state, no flags, no type.
    static func neighbourHeader(_ family: AddressFamily, _ device: Device, _ state: NeighbourState) -> MessageWriter {
        var body = MessageWriter()
        body.u8(family.rawValue)
        body.u8(0)
        body.u16(0)
        body.i32(device.index)
        body.u16(state.rawValue)
        body.u8(0)  // ndm_flags
        body.u8(0)  // ndm_type
        return body
    }
}
