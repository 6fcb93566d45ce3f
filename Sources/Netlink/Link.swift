#if canImport(Glibc)
    import Glibc
#endif

/// An interface as operations address it: the index the kernel knows it by, and the name error
/// messages print. Two devices are equal when their indices are (a dump knows only the index of
/// a route's device).
public struct Device: Sendable, Hashable, CustomStringConvertible {
    public var index: Int32
    /// Empty when unknown; then the description is `if<index>`, as `ip` prints it.
    public var name: String

    public init(index: Int32, name: String = "") {
        self.index = index
        self.name = name
    }

    public static func == (lhs: Device, rhs: Device) -> Bool { lhs.index == rhs.index }
    public func hash(into hasher: inout Hasher) { hasher.combine(index) }
    public var description: String { name.isEmpty ? "if\(index)" : name }
}

/// `IFF_*` flags of a link (linux/if.h).
public struct LinkFlags: OptionSet, Sendable, Hashable {
    public let rawValue: UInt32
    public init(rawValue: UInt32) { self.rawValue = rawValue }

    public static let up = LinkFlags(rawValue: 0x1)
    public static let broadcast = LinkFlags(rawValue: 0x2)
    public static let loopback = LinkFlags(rawValue: 0x8)
    public static let pointToPoint = LinkFlags(rawValue: 0x10)
    public static let running = LinkFlags(rawValue: 0x40)
    public static let noARP = LinkFlags(rawValue: 0x80)
    public static let promiscuous = LinkFlags(rawValue: 0x100)
    public static let multicast = LinkFlags(rawValue: 0x1000)
    /// The carrier is up (`IFF_LOWER_UP`).
    public static let lowerUp = LinkFlags(rawValue: 0x10000)
}

/// A link as `RTM_NEWLINK` describes it.
public struct Link: Sendable, Hashable {
    public var index: Int32
    public var name: String
    /// `IFLA_ADDRESS` when it is an Ethernet address (nil for links without one, or with
    /// another length such as an IPIP tunnel's).
    public var address: MACAddress?
    public var mtu: UInt32
    public var flags: LinkFlags
    /// `IFLA_INFO_KIND`: `veth`, `dummy`, `bridge`…; nil for a physical NIC (an ENI) or loopback.
    public var kind: String?
    /// `IFLA_LINK`: for a veth, the peer's index (in the peer's namespace).
    public var parentIndex: Int32?
    /// `IFLA_MASTER`: the bridge or bond the link is enslaved to.
    public var masterIndex: Int32?

    public var device: Device { Device(index: index, name: name) }
    public var isUp: Bool { flags.contains(.up) }

    /// Parses `struct ifinfomsg` and its attributes; nil when it is not a well-formed link.
    init?(_ message: Message) {
        let payload = message.payload
        guard payload.count >= IFLA.headerSize, let attributes = Attributes(payload.dropFirst(IFLA.headerSize)),
            let name = attributes.string(IFLA.name)
        else { return nil }
        let start = payload.startIndex
        index = Int32(bitPattern: readU32(payload, at: start + 4))
        flags = LinkFlags(rawValue: readU32(payload, at: start + 8))
        self.name = name
        address = attributes[IFLA.address].flatMap { MACAddress(bytes: $0) }
        mtu = attributes.u32(IFLA.mtu) ?? 0
        kind = attributes.nested(IFLA.linkInfo)?.string(IFLA.infoKind)
        parentIndex = attributes.i32(IFLA.link)
        masterIndex = attributes.i32(IFLA.master)
    }
}

extension RouteNetlink {
    /// Every link of the namespace (`ip link show`). Not for a per-pod path: a dump under churn is
    /// slow and can be interrupted; use `link(named:)` there.
    public func links() throws(NetlinkError) -> [Link] {
        let operation = "dump links"
        return try dump(RTM.getLink, Self.linkHeader(extMask: true), operation).compactMap { message in
            message.type == RTM.newLink ? Link(message) : nil
        }
    }

    /// One link by name (one `RTM_GETLINK`, no dump); nil when there is none (`ENODEV`).
    public func link(named name: String) throws(NetlinkError) -> Link? {
        let operation = "get link \(name)"
        try Self.validate(name: name, operation)
        var body = Self.linkHeader(extMask: true)
        body.attribute(IFLA.name, string: name)
        return try getLink(body, operation)
    }

    /// One link by index; nil when there is none.
    public func link(index: Int32) throws(NetlinkError) -> Link? {
        try getLink(Self.linkHeader(index: index, extMask: true), "get link if\(index)")
    }

    func getLink(_ body: MessageWriter, _ operation: String) throws(NetlinkError) -> Link? {
        let messages: [Message]
        do {
            messages = try change(RTM.getLink, [], body, operation)
        } catch let error where error.code == .kernel && error.errno == ENODEV {
            return nil
        }
        guard let message = messages.first(where: { $0.type == RTM.newLink }), let link = Link(message) else {
            throw NetlinkError(.malformed, operation, detail: "no link in the answer")
        }
        return link
    }

    /// `ip link set DEV up` or `down`: `RTM_NEWLINK` with `IFF_UP` in the change mask.
    public func setLink(_ device: Device, up: Bool) throws(NetlinkError) {
        let body = Self.linkHeader(index: device.index, flags: up ? LinkFlags.up.rawValue : 0, change: LinkFlags.up.rawValue)
        try change(RTM.newLink, [], body, "set link \(device) \(up ? "up" : "down")")
    }

    /// `ip link set DEV mtu N`.
    public func setLink(_ device: Device, mtu: UInt32) throws(NetlinkError) {
        var body = Self.linkHeader(index: device.index)
        body.attribute(IFLA.mtu, u32: mtu)
        try change(RTM.newLink, [], body, "set link \(device) mtu \(mtu)")
    }

    /// `ip link add NAME [address MAC] [mtu N] type veth peer name PEER [address MAC] [mtu N]
    /// [netns NS]`: both ends are created at once, the peer directly in `peerNamespace` when
    /// given (never moved afterwards: a move waits in the kernel for an RCU grace period under
    /// the rtnl lock). `mtu` applies to both ends.
    public func createVeth(
        _ name: String, address: MACAddress? = nil, peer peerName: String, peerAddress: MACAddress? = nil,
        peerNamespace: NetworkNamespace? = nil, mtu: UInt32? = nil
    ) throws(NetlinkError) {
        var operation = "add veth \(name) peer \(peerName)"
        if let peerNamespace { operation += " netns \(peerNamespace.path)" }
        try Self.validate(name: name, operation)
        try Self.validate(name: peerName, operation)
        var body = Self.linkHeader()
        if let address { body.attribute(IFLA.address, address.bytes) }
        if let mtu { body.attribute(IFLA.mtu, u32: mtu) }
        body.attribute(IFLA.name, string: name)
        body.nested(IFLA.linkInfo) { info in
            info.attribute(IFLA.infoKind, string: "veth", terminated: false)
            info.nested(IFLA.infoData) { data in
                data.nested(IFLA.vethPeer) { peer in
                    peer.zeros(IFLA.headerSize)  // the peer's struct ifinfomsg
                    if let peerAddress { peer.attribute(IFLA.address, peerAddress.bytes) }
                    if let mtu { peer.attribute(IFLA.mtu, u32: mtu) }
                    if let peerNamespace {
                        peer.attribute(IFLA.netNamespaceFD, u32: UInt32(bitPattern: peerNamespace.descriptor))
                    }
                    peer.attribute(IFLA.name, string: peerName)
                }
            }
        }
        try change(RTM.newLink, [.create, .exclusive], body, operation)
    }

    /// `ip link set DEV netns NS`. The link keeps its name and index there if they are free.
    public func moveLink(_ device: Device, to namespace: NetworkNamespace) throws(NetlinkError) {
        var body = Self.linkHeader(index: device.index)
        body.attribute(IFLA.netNamespaceFD, u32: UInt32(bitPattern: namespace.descriptor))
        try change(RTM.newLink, [], body, "move link \(device) to netns \(namespace.path)")
    }

    /// `ip link del DEV` (a veth takes its peer with it).
    public func deleteLink(_ device: Device) throws(NetlinkError) {
        try change(RTM.delLink, [], Self.linkHeader(index: device.index), "delete link \(device)")
    }

    /// `struct ifinfomsg` (family `AF_UNSPEC`), optionally followed by `IFLA_EXT_MASK` asking to
    /// leave out the statistics.
    static func linkHeader(index: Int32 = 0, flags: UInt32 = 0, change: UInt32 = 0, extMask: Bool = false)
        -> MessageWriter
    {
        var body = MessageWriter()
        body.u8(0)  // ifi_family
        body.u8(0)  // pad
        body.u16(0)  // ifi_type
        body.i32(index)
        body.u32(flags)
        body.u32(change)
        if extMask { body.attribute(IFLA.extMask, u32: IFLA.skipStats) }
        return body
    }

    /// The kernel's rule for names (`dev_valid_name`): 1 to 15 bytes, no `/`, `:` or white space,
    /// not `.` or `..`. Checked here so the error names the problem rather than `EINVAL`.
    static func validate(name: String, _ operation: String) throws(NetlinkError) {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count <= 15 else {
            throw NetlinkError(
                .invalidArgument, operation, detail: "interface name '\(name)' is not 1 to 15 bytes long")
        }
        guard name != ".", name != "..", !bytes.contains(where: { $0 == 0x2F || $0 == 0x3A || $0 <= 0x20 || $0 == 0x7F })
        else {
            throw NetlinkError(
                .invalidArgument, operation, detail: "interface name '\(name)' contains '/', ':' or white space")
        }
    }
}
