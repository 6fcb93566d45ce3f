/// `RT_SCOPE_*`: how far a route or address reaches.
public struct RouteScope: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let universe = RouteScope(rawValue: 0)
    public static let site = RouteScope(rawValue: 200)
    /// On the link itself: `ip route add 169.254.1.1 dev eth0 scope link`.
    public static let link = RouteScope(rawValue: 253)
    public static let host = RouteScope(rawValue: 254)
    public static let nowhere = RouteScope(rawValue: 255)

    public var description: String {
        switch rawValue {
        case 0: "global"
        case 200: "site"
        case 253: "link"
        case 254: "host"
        case 255: "nowhere"
        default: String(rawValue)
        }
    }
}

/// `RTN_*`: what a route does with a packet.
public struct RouteType: RawRepresentable, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let unicast = RouteType(rawValue: 1)
    public static let local = RouteType(rawValue: 2)
    public static let broadcast = RouteType(rawValue: 3)
    public static let multicast = RouteType(rawValue: 5)
    public static let blackhole = RouteType(rawValue: 6)
    public static let unreachable = RouteType(rawValue: 7)
    public static let prohibit = RouteType(rawValue: 8)
}

/// `RTPROT_*`: who installed a route.
public struct RouteProtocol: RawRepresentable, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let unspecified = RouteProtocol(rawValue: 0)
    /// Installed by the kernel (the subnet route of an address).
    public static let kernel = RouteProtocol(rawValue: 2)
    /// What `ip route add` records.
    public static let boot = RouteProtocol(rawValue: 3)
    public static let `static` = RouteProtocol(rawValue: 4)
}

/// A route in a table: `10.0.97.30/32 dev eni1a2b scope link`, `default via 10.0.96.1 dev eth1
/// table 2`.
public struct Route: Sendable, Hashable, CustomStringConvertible {
    /// `RT_TABLE_MAIN`, where `ip route` adds without `table`.
    public static let mainTable: UInt32 = 254
    /// `RT_TABLE_LOCAL`: the kernel's local and broadcast routes.
    public static let localTable: UInt32 = 255

    /// `0.0.0.0/0` (or `::/0`) is the default route.
    public var destination: IPPrefix
    public var gateway: IPAddress?
    public var device: Device?
    /// Any table id; ids above 255 travel in `RTA_TABLE`.
    public var table: UInt32
    public var scope: RouteScope
    public var type: RouteType
    public var origin: RouteProtocol
    /// `RTA_PRIORITY` (`metric`).
    public var metric: UInt32?
    /// `RTA_PREFSRC` (`src`).
    public var preferredSource: IPAddress?

    /// Without a scope, `ip`'s choice: `link` for an IPv4 route without a gateway, else
    /// `universe` (IPv6 routes have no scope; the kernel reports them all as `universe`).
    public init(
        _ destination: IPPrefix, gateway: IPAddress? = nil, device: Device? = nil, table: UInt32 = Route.mainTable,
        scope: RouteScope? = nil, metric: UInt32? = nil, preferredSource: IPAddress? = nil,
        type: RouteType = .unicast, origin: RouteProtocol = .boot
    ) {
        self.destination = destination
        self.gateway = gateway
        self.device = device
        self.table = table
        self.scope = scope ?? (gateway == nil && destination.family == .inet ? .link : .universe)
        self.type = type
        self.origin = origin
        self.metric = metric
        self.preferredSource = preferredSource
    }

    public var family: AddressFamily { destination.family }

    /// As `ip route` writes it: destination, `via`, `dev`, `table` (unless main), `metric`,
    /// `src`.
    public var description: String {
        var text = destination.length == 0 ? "default" : destination.description
        if let gateway { text += " via \(gateway)" }
        if let device { text += " dev \(device)" }
        if table != Route.mainTable { text += " table \(Route.tableName(table))" }
        if let metric { text += " metric \(metric)" }
        if let preferredSource { text += " src \(preferredSource)" }
        return text
    }

    static func tableName(_ table: UInt32) -> String {
        switch table {
        case 253: "default"
        case 254: "main"
        case 255: "local"
        default: String(table)
        }
    }

    /// `struct rtmsg` and its attributes; nil for a message that is not a route of a known family,
    /// a multipath route's legs aside (their gateways are not read).
    init?(_ message: Message) {
        let payload = message.payload
        let start = payload.startIndex
        guard payload.count >= RTA.headerSize, let family = AddressFamily(rawValue: payload[start]),
            let attributes = Attributes(payload.dropFirst(RTA.headerSize))
        else { return nil }
        let length = Int(payload[start + 1])
        let zero = IPAddress(family: family, checked: [UInt8](repeating: 0, count: family.addressLength))
        guard let destination = IPPrefix(attributes.address(RTA.destination) ?? zero, length: length),
            destination.family == family
        else { return nil }
        self.destination = destination
        gateway = attributes.address(RTA.gateway)
        device = attributes.i32(RTA.outputInterface).map { Device(index: $0) }
        table = attributes.u32(RTA.table) ?? UInt32(payload[start + 4])
        origin = RouteProtocol(rawValue: payload[start + 5])
        scope = RouteScope(rawValue: payload[start + 6])
        type = RouteType(rawValue: payload[start + 7])
        metric = attributes.u32(RTA.priority)
        preferredSource = attributes.address(RTA.preferredSource)
    }

    /// `RTM_F_CLONED`: a cached clone (IPv6 exceptions), not a route someone added.
    static let cloned: UInt32 = 0x200
}

extension RouteNetlink {
    /// `ip route add ROUTE` (`NLM_F_CREATE | NLM_F_EXCL`): `EEXIST` when the table has it.
    public func addRoute(_ route: Route) throws(NetlinkError) {
        try change(RTM.newRoute, [.create, .exclusive], Self.routeBody(route, delete: false), "add route \(route)")
    }

    /// `ip route replace ROUTE` (`NLM_F_CREATE | NLM_F_REPLACE`): adds, or replaces the route to
    /// the same destination in the same table.
    public func replaceRoute(_ route: Route) throws(NetlinkError) {
        try change(RTM.newRoute, [.create, .replace], Self.routeBody(route, delete: false), "replace route \(route)")
    }

    /// `ip route del ROUTE`: scope, type and protocol are left as wildcards, as `ip` does; the
    /// gateway and device narrow the match when given.
    public func deleteRoute(_ route: Route) throws(NetlinkError) {
        try change(RTM.delRoute, [], Self.routeBody(route, delete: true), "delete route \(route)")
    }

    /// The routes of one family, of one table or all (`ip route show table all`); cached clones
    /// are left out.
    public func routes(family: AddressFamily, table: UInt32? = nil) throws(NetlinkError) -> [Route] {
        var body = MessageWriter()
        body.u8(family.rawValue)
        body.zeros(RTA.headerSize - 1)
        let operation = "dump \(family) routes" + (table.map { " table \(Route.tableName($0))" } ?? "")
        return try dump(RTM.getRoute, body, operation).compactMap { message in
            guard message.type == RTM.newRoute, let route = Route(message) else { return nil }
            let flags = readU32(message.payload, at: message.payload.startIndex + 8)
            guard flags & Route.cloned == 0, table == nil || route.table == table else { return nil }
            return route
        }
    }

    /// `struct rtmsg` then `RTA_DST`, `RTA_GATEWAY`, `RTA_PREFSRC`, `RTA_PRIORITY`, `RTA_TABLE`,
    /// `RTA_OIF`: the order `ip route add DST via GW src S metric M table T dev D` sends. A table
    /// id up to 255 goes in the header only; a larger one as `RT_TABLE_UNSPEC` there and
    /// `RTA_TABLE`.
    static func routeBody(_ route: Route, delete: Bool) -> MessageWriter {
        var body = MessageWriter()
        body.u8(route.family.rawValue)
        body.u8(UInt8(route.destination.length))
        body.u8(0)  // rtm_src_len
        body.u8(0)  // rtm_tos
        body.u8(route.table <= 255 ? UInt8(route.table) : UInt8(RouteTableID.unspecified))
        body.u8(delete ? RouteProtocol.unspecified.rawValue : route.origin.rawValue)
        body.u8(delete ? RouteScope.nowhere.rawValue : route.scope.rawValue)
        body.u8(delete ? 0 : route.type.rawValue)
        body.u32(0)  // rtm_flags
        if route.destination.length > 0 { body.attribute(RTA.destination, route.destination.address.bytes) }
        if let gateway = route.gateway { body.attribute(RTA.gateway, gateway.bytes) }
        if let source = route.preferredSource { body.attribute(RTA.preferredSource, source.bytes) }
        if let metric = route.metric { body.attribute(RTA.priority, u32: metric) }
        if route.table > 255 { body.attribute(RTA.table, u32: route.table) }
        if let device = route.device { body.attribute(RTA.outputInterface, u32: UInt32(bitPattern: device.index)) }
        return body
    }
}
