/// The warm-pool decision (docs/ipamd.md §3, vpc-cni.md §2): from a snapshot of the pool, what
/// to ask EC2 for, what to give back, or why nothing can be done. Pure: the reconciler builds
/// the view, calls `decide`, and carries out the actions; the CNI add path never comes here.

/// How pods get addresses: secondary IPv4 addresses, /28 IPv4 prefixes, or one /80 IPv6 prefix.
public enum PoolMode: String, Sendable, Equatable {
    case secondaryIPv4 = "ipv4-secondary"
    case prefixIPv4 = "ipv4-prefix"
    case ipv6
}

/// The instance's network limits on its default network card, and `MAX_ENI`.
public struct InstanceLimits: Sendable, Equatable {
    public var instanceType: String
    public var maxENIs: Int
    public var ipv4PerENI: Int
    /// `MAX_ENI`, when it is below the instance's limit.
    public var maxENISetting: Int?

    public init(instanceType: String, maxENIs: Int, ipv4PerENI: Int, maxENISetting: Int? = nil) {
        self.instanceType = instanceType
        self.maxENIs = maxENIs
        self.ipv4PerENI = ipv4PerENI
        self.maxENISetting = maxENISetting
    }

    public var effectiveMaxENIs: Int { min(maxENIs, maxENISetting ?? maxENIs) }

    /// Pod slots per ENI: secondary addresses (all but the ENI's own), or /28 prefixes in PD.
    public var slotsPerENI: Int { max(ipv4PerENI - 1, 0) }

    /// `m5.large allows 3 ENIs × 10 IPv4 addresses` (with `MAX_ENI`: `MAX_ENI=2 allows 2 ENIs (m5.large: 3) × 10 …`).
    public var text: String {
        if let maxENISetting, maxENISetting < maxENIs {
            return
                "MAX_ENI=\(maxENISetting) allows \(maxENISetting) ENIs (\(instanceType): \(maxENIs)) × \(ipv4PerENI) IPv4 addresses"
        }
        return "\(instanceType) allows \(maxENIs) ENIs × \(ipv4PerENI) IPv4 addresses"
    }
}

/// One ENI the daemon manages (the primary and those it created), as the pool sees it.
public struct PoolENI: Sendable, Equatable {
    public var id: String
    public var device: Int
    public var isPrimary: Bool
    /// Pod addresses on the ENI: its secondary addresses, or 16 per /28 prefix.
    public var addresses: Int
    /// /28 prefixes held (PD), or /80 prefixes (IPv6).
    public var prefixes: Int
    public var assigned: Int
    public var cooling: Int
    /// PD: prefixes none of whose addresses is assigned or cooling.
    public var freePrefixes: Int
    /// Free addresses that may be given back (not cooling, no kernel trace; docs/ipamd.md §6).
    public var releasable: Int
    public var age: Duration

    public init(
        id: String, device: Int, isPrimary: Bool = false, addresses: Int = 0, prefixes: Int = 0, assigned: Int = 0,
        cooling: Int = 0, freePrefixes: Int = 0, releasable: Int? = nil, age: Duration = .seconds(3600)
    ) {
        self.id = id
        self.device = device
        self.isPrimary = isPrimary
        self.addresses = addresses
        self.prefixes = prefixes
        self.assigned = assigned
        self.cooling = cooling
        self.freePrefixes = freePrefixes
        self.releasable = releasable ?? max(addresses - assigned - cooling, 0)
        self.age = age
    }

    /// Addresses an add may take now.
    public var available: Int { max(addresses - assigned - cooling, 0) }
}

/// A snapshot of everything the decision needs.
public struct PoolView: Sendable {
    public var mode: PoolMode
    public var limits: InstanceLimits
    public var settings: Settings
    /// The kubelet's maxPods: the pool never holds more addresses.
    public var maxPods: Int
    public var enis: [PoolENI]
    /// Attached ENIs that are not ours (launch template, EFA, aws-node's): they use device slots.
    public var foreignENIs: Int
    /// An EC2 insufficient-capacity answer blocks growth until then.
    public var subnetBlockedUntil: ContinuousClock.Instant?
    public var lastDecrease: ContinuousClock.Instant?
    public var now: ContinuousClock.Instant

    public init(
        mode: PoolMode, limits: InstanceLimits, settings: Settings, maxPods: Int, enis: [PoolENI], foreignENIs: Int = 0,
        subnetBlockedUntil: ContinuousClock.Instant? = nil, lastDecrease: ContinuousClock.Instant? = nil,
        now: ContinuousClock.Instant
    ) {
        self.mode = mode
        self.limits = limits
        self.settings = settings
        self.maxPods = maxPods
        self.enis = enis
        self.foreignENIs = foreignENIs
        self.subnetBlockedUntil = subnetBlockedUntil
        self.lastDecrease = lastDecrease
        self.now = now
    }

    public var total: Int { enis.reduce(0) { $0 + $1.addresses } }
    public var assigned: Int { enis.reduce(0) { $0 + $1.assigned } }
    public var available: Int { enis.reduce(0) { $0 + $1.available } }
    public var freePrefixes: Int { enis.reduce(0) { $0 + $1.freePrefixes } }
}

public enum PoolAction: Sendable, Equatable {
    case assignIPs(eni: String, count: Int)
    case assignPrefixes(eni: String, count: Int)
    case assignIPv6Prefix(eni: String)
    /// A new ENI with this many secondary addresses (or /28 prefixes in PD).
    case createENI(count: Int)
    case unassignIPs(eni: String, count: Int)
    case unassignPrefixes(eni: String, count: Int)
    case freeENI(eni: String)
}

public struct PoolDecision: Sendable, Equatable {
    public enum Blocked: Sendable, Equatable {
        /// The instance's (or MAX_ENI's) limits: the text says which.
        case limits(String)
        case maxPods(Int)
        case subnet(until: ContinuousClock.Instant)
    }

    public var actions: [PoolAction] = []
    /// Addresses the pool lacks (after the actions, what is still missing is `blocked`).
    public var short = 0
    /// Addresses above target.
    public var over = 0
    public var blocked: Blocked?
    /// One line for status and the journal.
    public var reason = ""
}

extension PoolView {
    /// How long after a decrease the next may come (vpc-cni.md §1 row 2: `decreaseIPPoolInterval`).
    public static let decreaseInterval: Duration = .seconds(30)
    /// A free ENI younger than this is kept: hysteresis against create/delete churn.
    public static let minimumENIAge: Duration = .seconds(60)
    /// Addresses in a /28.
    public static let prefixSize = 16

    public func decide() -> PoolDecision {
        var decision = PoolDecision()
        if mode == .ipv6 {
            if let primary = enis.first(where: \.isPrimary), primary.prefixes == 0 {
                decision.actions = [.assignIPv6Prefix(eni: primary.id)]
                decision.reason = "the primary ENI has no /80 prefix yet"
            } else {
                decision.reason = "IPv6: one /80 prefix on the primary ENI"
            }
            return decision
        }
        let room = max(maxPods - total, 0)
        let settings = self.settings
        let unit = mode == .prefixIPv4 ? Self.prefixSize : limits.slotsPerENI
        var short: Int
        var over = 0
        var target: String
        if settings.usesIPTargets {
            short = max(settings.warmIPTarget - available, settings.minimumIPTarget - total, 0)
            over = max(min(available - settings.warmIPTarget, total - settings.minimumIPTarget), 0)
            target = "WARM_IP_TARGET=\(settings.warmIPTarget), MINIMUM_IP_TARGET=\(settings.minimumIPTarget)"
        } else {
            let wanted = mode == .prefixIPv4 ? settings.warmPrefixTarget : settings.warmENITarget
            let low = available < unit * wanted || (wanted == 0 && available == 0)
            short = low ? max(unit * wanted - available, 1) : 0
            if mode == .prefixIPv4 && freePrefixes > settings.warmPrefixTarget {
                over = (freePrefixes - settings.warmPrefixTarget) * Self.prefixSize
            }
            target =
                mode == .prefixIPv4
                ? "WARM_PREFIX_TARGET=\(settings.warmPrefixTarget)" : "WARM_ENI_TARGET=\(settings.warmENITarget)"
        }
        let state = "\(available) free of \(total), \(assigned) assigned (\(target))"
        if short > 0 && room == 0 {
            decision.short = short
            decision.blocked = .maxPods(maxPods)
            decision.reason = "\(state): at maxPods \(maxPods), the pool does not grow"
            return decision
        }
        short = min(short, room)
        decision.short = short
        decision.over = over
        if short > 0 {
            if let until = subnetBlockedUntil, until > now {
                decision.blocked = .subnet(until: until)
                decision.reason = "\(state): the subnet has no free addresses (EC2); next try after the cooldown"
                return decision
            }
            grow(short: short, room: room, into: &decision)
            if decision.actions.isEmpty {
                let cooling = enis.reduce(0) { $0 + $1.cooling }
                let usage =
                    assigned == total
                    ? "all \(total) are assigned"
                    : (["\(assigned) of \(total) are assigned"] + (cooling > 0 ? ["\(cooling) cooling down"] : [])
                        + (available > 0 ? ["\(available) free"] : [])).joined(separator: ", ")
                decision.blocked = .limits("\(limits.text); \(usage)")
                decision.reason = "\(state): cannot grow: \(limits.text); \(usage)"
            } else {
                decision.reason = "\(state): short by \(short), growing"
            }
            return decision
        }
        if over > 0, lastDecrease.map({ now - $0 >= Self.decreaseInterval }) ?? true {
            shrink(over: over, into: &decision)
        }
        if decision.actions.isEmpty, let eni = removableENI(unit: unit) {
            decision.actions = [.freeENI(eni: eni.id)]
        }
        decision.reason = decision.actions.isEmpty ? "\(state): at target" : "\(state): above target, giving back"
        return decision
    }

    /// Fills existing ENIs lowest device first, then creates ENIs while there is room.
    func grow(short: Int, room: Int, into decision: inout PoolDecision) {
        var short = short
        var room = room
        let pd = mode == .prefixIPv4
        // ENI mode fills a whole ENI (fewer EC2 calls); IP targets ask for exactly what is short.
        let whole = !settings.usesIPTargets && !pd
        for eni in enis.sorted(by: { $0.device < $1.device }) where short > 0 && room > 0 {
            let free = limits.slotsPerENI - (pd ? eni.prefixes : eni.addresses)
            guard free > 0 else { continue }
            if pd {
                let count = min(free, (min(short, room) + Self.prefixSize - 1) / Self.prefixSize)
                decision.actions.append(.assignPrefixes(eni: eni.id, count: count))
                short -= count * Self.prefixSize
                room -= count * Self.prefixSize
            } else {
                let count = min(free, room, whole ? free : short)
                decision.actions.append(.assignIPs(eni: eni.id, count: count))
                short -= count
                room -= count
            }
        }
        var attached = enis.count + foreignENIs
        while short > 0 && room > 0 && attached < limits.effectiveMaxENIs {
            if pd {
                let count = min(limits.slotsPerENI, (min(short, room) + Self.prefixSize - 1) / Self.prefixSize)
                decision.actions.append(.createENI(count: count))
                short -= count * Self.prefixSize
                room -= count * Self.prefixSize
            } else {
                let count = min(limits.slotsPerENI, room, whole ? limits.slotsPerENI : short)
                decision.actions.append(.createENI(count: count))
                short -= count
                room -= count
            }
            attached += 1
        }
    }

    /// Gives back `over` addresses (or free prefixes), from the ENIs with the fewest assigned.
    func shrink(over: Int, into decision: inout PoolDecision) {
        var over = over
        for eni in enis.sorted(by: { ($0.assigned, -$0.device) < ($1.assigned, -$1.device) }) where over > 0 {
            if mode == .prefixIPv4 {
                let count = min(eni.freePrefixes, over / Self.prefixSize)
                guard count > 0 else { continue }
                decision.actions.append(.unassignPrefixes(eni: eni.id, count: count))
                over -= count * Self.prefixSize
            } else {
                let count = min(eni.releasable, over)
                guard count > 0 else { continue }
                decision.actions.append(.unassignIPs(eni: eni.id, count: count))
                over -= count
            }
        }
    }

    /// A non-primary ENI with nothing assigned or cooling, old enough, whose addresses the pool
    /// can do without (at most one per pass, vpc-cni.md §2 step 6).
    func removableENI(unit: Int) -> PoolENI? {
        let candidates = enis.filter {
            !$0.isPrimary && $0.assigned == 0 && $0.cooling == 0 && $0.age >= Self.minimumENIAge
        }
        guard let eni = candidates.max(by: { $0.device < $1.device }) else { return nil }
        let remaining = available - eni.available
        if settings.usesIPTargets {
            return remaining >= settings.warmIPTarget && total - eni.addresses >= settings.minimumIPTarget ? eni : nil
        }
        let wanted = mode == .prefixIPv4 ? settings.warmPrefixTarget : settings.warmENITarget
        return remaining >= unit * wanted && available >= (wanted + 1) * unit ? eni : nil
    }
}
