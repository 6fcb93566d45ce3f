/// `FR_ACT_*`: what a matching rule does.
public struct RuleAction: RawRepresentable, Sendable, Hashable {
    public let rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Look the destination up in the rule's table (`lookup T`).
    public static let lookup = RuleAction(rawValue: 1)
    public static let goto = RuleAction(rawValue: 2)
    public static let nop = RuleAction(rawValue: 3)
    public static let blackhole = RuleAction(rawValue: 6)
    public static let unreachable = RuleAction(rawValue: 7)
    public static let prohibit = RuleAction(rawValue: 8)
}

/// A policy routing rule: `from 10.0.97.30/32 lookup 2 prio 1536`, `fwmark 0x80/0x80 lookup main
/// prio 1024`.
public struct Rule: Sendable, Hashable, CustomStringConvertible {
    public var family: AddressFamily
    /// `FRA_PRIORITY`; nil lets the kernel pick (one below the lowest existing priority).
    public var priority: UInt32?
    public var source: IPPrefix?
    public var destination: IPPrefix?
    public var fwmark: UInt32?
    public var fwmask: UInt32?
    public var table: UInt32
    public var action: RuleAction
    /// `not`: the selector is inverted (`FIB_RULE_INVERT`).
    public var invert: Bool
    /// `iif`, `oif` (read from dumps; not sent by `addRule`).
    public var inputInterface: String?
    public var outputInterface: String?

    /// The family is the prefixes' (IPv4 when the rule has none, as `ip rule` assumes).
    public init(
        priority: UInt32?, from source: IPPrefix? = nil, to destination: IPPrefix? = nil, fwmark: UInt32? = nil,
        fwmask: UInt32? = nil, table: UInt32, family: AddressFamily? = nil, invert: Bool = false
    ) {
        self.family = family ?? source?.family ?? destination?.family ?? .inet
        self.priority = priority
        self.source = source
        self.destination = destination
        self.fwmark = fwmark
        self.fwmask = fwmask
        self.table = table
        action = .lookup
        self.invert = invert
        inputInterface = nil
        outputInterface = nil
    }

    /// As `ip rule` writes the command: `[not] from PREFIX|all [to PREFIX] [fwmark M/MASK]
    /// lookup T prio P`.
    public var description: String {
        var text = invert ? "not " : ""
        text += "from " + (source.map(\.description) ?? "all")
        if let destination { text += " to \(destination)" }
        if let fwmark { text += " fwmark " + hex(fwmark) + (fwmask.map { "/" + hex($0) } ?? "") }
        if let inputInterface { text += " iif \(inputInterface)" }
        if let outputInterface { text += " oif \(outputInterface)" }
        switch action {
        case .lookup: text += " lookup \(Route.tableName(table))"
        case .blackhole: text += " blackhole"
        case .unreachable: text += " unreachable"
        case .prohibit: text += " prohibit"
        default: text += " action \(action.rawValue)"
        }
        if let priority { text += " prio \(priority)" }
        return text
    }

    private func hex(_ value: UInt32) -> String { "0x" + String(value, radix: 16) }

    /// `struct fib_rule_hdr` and its attributes.
    init?(_ message: Message) {
        let payload = message.payload
        let start = payload.startIndex
        guard payload.count >= FRA.headerSize, let family = AddressFamily(rawValue: payload[start]),
            let attributes = Attributes(payload.dropFirst(FRA.headerSize))
        else { return nil }
        func prefix(_ type: UInt16, length: UInt8) -> IPPrefix? {
            guard let address = attributes.address(type), address.family == family else { return nil }
            return IPPrefix(address, length: Int(length))
        }
        self.family = family
        destination = prefix(FRA.destination, length: payload[start + 1])
        source = prefix(FRA.source, length: payload[start + 2])
        table = attributes.u32(FRA.table) ?? UInt32(payload[start + 4])
        action = RuleAction(rawValue: payload[start + 7])
        invert = readU32(payload, at: start + 8) & FRA.invert != 0
        priority = attributes.u32(FRA.priority) ?? 0  // the kernel leaves out a priority of 0
        fwmark = attributes.u32(FRA.fwmark)
        fwmask = attributes.u32(FRA.fwmask)
        inputInterface = attributes.string(FRA.inputInterface)
        outputInterface = attributes.string(FRA.outputInterface)
    }
}

extension RouteNetlink {
    /// `ip rule add RULE` (`NLM_F_CREATE | NLM_F_EXCL`). The kernel answers `EEXIST` when an
    /// identical rule exists (the same selectors, priority and table); callers that ensure a rule
    /// treat that as success (`NetlinkError.isExists`).
    public func addRule(_ rule: Rule) throws(NetlinkError) {
        try change(RTM.newRule, [.create, .exclusive], Self.ruleBody(rule, delete: false), "add rule \(rule)")
    }

    /// `ip rule del RULE`: deletes the first rule that matches every selector given (action
    /// left as a wildcard, as `ip` sends it).
    public func deleteRule(_ rule: Rule) throws(NetlinkError) {
        try change(RTM.delRule, [], Self.ruleBody(rule, delete: true), "delete rule \(rule)")
    }

    /// The rules of one family (`ip rule show`), in the kernel's order (by priority).
    public func rules(family: AddressFamily) throws(NetlinkError) -> [Rule] {
        var body = MessageWriter()
        body.u8(family.rawValue)
        body.zeros(FRA.headerSize - 1)
        return try dump(RTM.getRule, body, "dump \(family) rules").compactMap { message in
            message.type == RTM.newRule ? Rule(message) : nil
        }
    }

    /// `struct fib_rule_hdr` then `FRA_SRC`, `FRA_DST`, `FRA_FWMARK`, `FRA_FWMASK`, `FRA_TABLE`,
    /// `FRA_PRIORITY`: the order of `ip rule add from S to D fwmark M/K lookup T prio P`. A table
    /// up to 255 goes in the header, a larger one in `FRA_TABLE`.
    static func ruleBody(_ rule: Rule, delete: Bool) -> MessageWriter {
        var body = MessageWriter()
        body.u8(rule.family.rawValue)
        body.u8(UInt8(rule.destination?.length ?? 0))
        body.u8(UInt8(rule.source?.length ?? 0))
        body.u8(0)  // tos
        body.u8(rule.table <= 255 ? UInt8(rule.table) : UInt8(RouteTableID.unspecified))
        body.u8(0)  // res1
        body.u8(0)  // res2
        body.u8(delete ? 0 : rule.action.rawValue)
        body.u32(rule.invert ? FRA.invert : 0)
        if let source = rule.source { body.attribute(FRA.source, source.address.bytes) }
        if let destination = rule.destination { body.attribute(FRA.destination, destination.address.bytes) }
        if let fwmark = rule.fwmark { body.attribute(FRA.fwmark, u32: fwmark) }
        if let fwmask = rule.fwmask { body.attribute(FRA.fwmask, u32: fwmask) }
        if rule.table > 255 { body.attribute(FRA.table, u32: rule.table) }
        if let priority = rule.priority { body.attribute(FRA.priority, u32: priority) }
        return body
    }
}
