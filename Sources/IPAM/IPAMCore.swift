public import IPAMProtocol
public import WireJSON

/// One ENI's pod addresses as the daemon holds them.
public struct ENIState: Sendable, Equatable {
    public var id: String
    public var device: Int
    public var isPrimary: Bool
    /// Pod addresses (secondary IPs, or the addresses of its /28 prefixes), in EC2's order.
    public var addresses: [String]
    public var createdAt: ContinuousClock.Instant?

    public init(
        id: String, device: Int, isPrimary: Bool, addresses: [String], createdAt: ContinuousClock.Instant? = nil
    ) {
        self.id = id
        self.device = device
        self.isPrimary = isPrimary
        self.addresses = addresses
        self.createdAt = createdAt
    }

    /// The pod route table: main (254) on the primary ENI, else device + 1 (vpc-cni.md §1 row 19).
    public var table: Int { Self.routeTable(device: device) }

    /// The route table of device `device`'s pods: main (254) for the primary ENI, else device + 1.
    public static func routeTable(device: Int) -> Int { device == 0 ? 254 : device + 1 }
}

/// What the daemon tells every plugin about the node's network.
public struct NetworkFacts: Sendable, Equatable {
    public var vpcCIDRs: [String]
    public var mtu: Int
    public var externalSNAT: Bool

    public init(vpcCIDRs: [String], mtu: Int, externalSNAT: Bool) {
        self.vpcCIDRs = vpcCIDRs
        self.mtu = mtu
        self.externalSNAT = externalSNAT
    }
}

/// The one owner of the pool's state (docs/ipamd.md §7): adds and deletes are synchronous
/// methods of this actor, each writes the checkpoint before it answers, and none awaits
/// anything else, so the add path can never reach EC2, IMDS or netlink.
public actor IPAMCore {
    public let facts: NetworkFacts
    public let cooldown: Duration
    public let checkpointPath: String
    /// Wall-clock Unix milliseconds (checkpoint times must mean the same after a restart).
    nonisolated let wallClock: @Sendable () -> Int64
    public private(set) var enis: [ENIState]
    public private(set) var checkpoint: Checkpoint
    /// When each address was last released (Unix ms): the longest-released is handed out first.
    var released: [String: Int64] = [:]
    public private(set) var adds = 0
    public private(set) var deletes = 0

    public init(
        checkpoint: Checkpoint, enis: [ENIState], facts: NetworkFacts, cooldown: Duration,
        checkpointPath: String = Checkpoint.path, wallClock: @escaping @Sendable () -> Int64
    ) {
        self.checkpoint = checkpoint
        self.enis = enis
        self.facts = facts
        self.cooldown = cooldown
        self.checkpointPath = checkpointPath
        self.wallClock = wallClock
        // When each cooling address was released: its end of cooldown less the cooldown.
        let cooldownMilliseconds = Int64(cooldown / .milliseconds(1))
        for entry in checkpoint.cooling { released[entry.address] = entry.until - cooldownMilliseconds }
    }

    public func handle(_ request: Request) -> Reply {
        do {
            switch request {
            case .add(let key, _, let pod): return .added(try add(key, pod: pod))
            case .del(let key, _, _):
                let (known, assignment) = try delete(key)
                return .deleted(known: known, assignment)
            case .check(let key): return .checked(try check(key))
            case .status: return .status(status())
            case .other(let op):
                return .failed(ProtocolError(.unsupported, "operation '\(op)' is not known to this ipamd (\(IPAMWire.version))"))
            }
        } catch {
            return .failed(error)
        }
    }

    /// The attachment's address: the same one again for a key it already has (an add is
    /// idempotent), else a free address, recorded on disk before the answer.
    public func add(_ key: AttachmentKey, pod: PodReference) throws(ProtocolError) -> Assignment {
        if let existing = checkpoint.allocations.first(where: { $0.key == key }) {
            return try assignment(for: existing)
        }
        let now = wallClock()
        guard let (eni, address) = pick(now: now) else {
            changed?()  // the pool is short now: wake the reconciler, not at its next tick
            throw ProtocolError(.noAddress, noAddressMessage(now: now))
        }
        var next = checkpoint
        next.allocations.append(.init(key: key, address: address, eni: eni.id, pod: pod, since: now))
        next.cooling.removeAll { $0.address == address }
        try commit(next)
        adds += 1
        changed?()
        return assignment(address: address, eni: eni)
    }

    /// Releases the attachment's address into the cooldown; unknown keys are not an error (a
    /// repeated DEL is still a success, as CNI requires).
    /// An allocation whose ENI is gone is still deleted (known, without the ENI's details): a DEL
    /// must not fail for ever.
    public func delete(_ key: AttachmentKey) throws(ProtocolError) -> (known: Bool, assignment: Assignment?) {
        guard let existing = checkpoint.allocations.first(where: { $0.key == key }) else { return (false, nil) }
        let assignment = try? assignment(for: existing)
        let now = wallClock()
        let until = now + Int64(cooldown / .milliseconds(1))
        var next = checkpoint
        next.allocations.removeAll { $0.key == key }
        next.cooling.append(.init(address: existing.address, until: until))
        try commit(next)
        released[existing.address] = now
        deletes += 1
        changed?()
        return (true, assignment)
    }

    public func check(_ key: AttachmentKey) throws(ProtocolError) -> Assignment {
        guard let existing = checkpoint.allocations.first(where: { $0.key == key }) else {
            throw ProtocolError(.unknown, "no attachment \(key) in ipamd's checkpoint")
        }
        return try assignment(for: existing)
    }

    /// Attached ENIs that are not ours (they use device slots).
    public private(set) var foreignENIs = 0
    /// Called after every change an add or delete makes (wakes the reconciler).
    var changed: (@Sendable () -> Void)?

    public func setForeignENIs(_ count: Int) { foreignENIs = count }
    public func onChange(_ callback: @escaping @Sendable () -> Void) { changed = callback }

    /// Addresses EC2 assigned to `eni` (only those not known yet are added: moto answers with all).
    public func addAddresses(_ addresses: [String], to eni: String) {
        guard let index = enis.firstIndex(where: { $0.id == eni }) else { return }
        let known = Set(enis[index].addresses)
        enis[index].addresses += addresses.filter { !known.contains($0) }
    }

    /// A newly attached ENI, its addresses ready to hand out.
    public func attach(_ eni: ENIState) {
        enis.removeAll { $0.id == eni.id }
        enis.append(eni)
        enis.sort { $0.device < $1.device }
    }

    /// Removes up to `count` addresses of `eni` that are neither assigned nor cooling, and returns
    /// them (they can no longer be handed out while EC2 takes them back).
    public func takeFree(_ count: Int, from eni: String) -> [String] {
        guard let index = enis.firstIndex(where: { $0.id == eni }) else { return [] }
        let now = wallClock()
        let taken = Set(checkpoint.allocations.map(\.address))
        let cooling = Set(checkpoint.cooling.filter { $0.until > now }.map(\.address))
        let free = enis[index].addresses.filter { !taken.contains($0) && !cooling.contains($0) }.suffix(count)
        enis[index].addresses.removeAll { free.contains($0) }
        return Array(free)
    }

    /// Forgets a non-primary ENI with nothing assigned or cooling on it, before EC2 detaches it,
    /// and returns it (to put back if EC2 fails); nil (and nothing changes) when it is in use.
    public func detach(_ id: String) -> ENIState? {
        guard let eni = enis.first(where: { $0.id == id }), !eni.isPrimary else { return nil }
        let now = wallClock()
        let addresses = Set(eni.addresses)
        let inUse =
            checkpoint.allocations.contains { $0.eni == id || addresses.contains($0.address) }
            || checkpoint.cooling.contains { $0.until > now && addresses.contains($0.address) }
        guard !inUse else { return nil }
        enis.removeAll { $0.id == id }
        return eni
    }

    /// Records an EC2 change before it is made (resumed or resolved after a restart).
    public func record(_ intent: Checkpoint.Intent) throws(ProtocolError) {
        var next = checkpoint
        next.intents.append(intent)
        try commit(next)
    }

    /// The EC2 change is done (or undone): its intent is dropped.
    public func resolve(_ token: String) throws(ProtocolError) {
        guard checkpoint.intents.contains(where: { $0.token == token }) else { return }
        var next = checkpoint
        next.intents.removeAll { $0.token == token }
        try commit(next)
    }

    func commit(_ next: Checkpoint) throws(ProtocolError) {
        do {
            try next.write(checkpointPath)
        } catch {
            throw ProtocolError(
                .internal, "cannot record the assignment in \(checkpointPath): \(error); nothing was assigned", retry: true)
        }
        checkpoint = next
    }

    func assignment(for allocation: Checkpoint.Allocation) throws(ProtocolError) -> Assignment {
        guard
            let eni = enis.first(where: { $0.id == allocation.eni })
                ?? enis.first(where: { $0.addresses.contains(allocation.address) })
        else {
            throw ProtocolError(
                .internal, "\(allocation.address) is recorded on \(allocation.eni), which this node no longer has")
        }
        return assignment(address: allocation.address, eni: eni)
    }

    func assignment(address: String, eni: ENIState) -> Assignment {
        Assignment(
            ips: ["\(address)/\(address.contains(":") ? 128 : 32)"], device: eni.device, table: eni.table, mtu: facts.mtu,
            vpcCIDRs: facts.vpcCIDRs, externalSNAT: facts.externalSNAT, eni: eni.id)
    }

    /// Packing: ENIs that already serve pods first (spare ENIs stay empty and can be freed),
    /// then the lowest device; on an ENI, the address released longest ago (never-used first).
    func pick(now: Int64) -> (ENIState, String)? {
        let taken = Set(checkpoint.allocations.map(\.address))
        let cooling = Set(checkpoint.cooling.filter { $0.until > now }.map(\.address))
        let load = Dictionary(grouping: checkpoint.allocations, by: \.eni).mapValues(\.count)
        let ordered = enis.sorted { ((load[$0.id] ?? 0) == 0 ? 1 : 0, $0.device) < ((load[$1.id] ?? 0) == 0 ? 1 : 0, $1.device) }
        for eni in ordered {
            let free = eni.addresses.filter { !taken.contains($0) && !cooling.contains($0) }
            if let address = free.min(by: { (released[$0] ?? 0, $0) < (released[$1] ?? 0, $1) }) {
                return (eni, address)
            }
        }
        return nil
    }

    public struct Counts: Sendable, Equatable {
        public var total: Int
        public var assigned: Int
        public var cooling: Int
        public var free: Int { total - assigned - cooling }
    }

    public func counts(now: Int64? = nil) -> Counts {
        let now = now ?? wallClock()
        let all = Set(enis.flatMap(\.addresses))
        let assigned = checkpoint.allocations.filter { all.contains($0.address) }.count
        let cooling = Set(checkpoint.cooling.filter { $0.until > now }.map(\.address)).intersection(all).count
        return Counts(total: all.count, assigned: assigned, cooling: cooling)
    }

    func noAddressMessage(now: Int64) -> String {
        let counts = counts(now: now)
        var message = "no free address: ipamd has \(counts.free) of \(counts.total) free"
        if counts.cooling > 0 {
            let first = checkpoint.cooling.filter { $0.until > now }.map(\.until).min() ?? now
            message += ", \(counts.cooling) cooling down (the first is free again in \(max(first - now, 0) / 1000 + 1) s)"
        }
        return message
    }

    /// The status reply's body (and `nodeboot status`'s ipamd section).
    public func status() -> JSON {
        let counts = counts()
        return [
            "mode": .string(checkpoint.mode.rawValue), "instance": .string(checkpoint.instance),
            "total": .int(counts.total), "assigned": .int(counts.assigned), "cooling": .int(counts.cooling),
            "free": .int(counts.free), "adds": .int(adds), "deletes": .int(deletes),
            "enis": .array(
                enis.map { eni in
                    let assigned = checkpoint.allocations.filter { $0.eni == eni.id }.count
                    return [
                        "id": .string(eni.id), "device": .int(eni.device), "primary": .bool(eni.isPrimary),
                        "addresses": .int(eni.addresses.count), "assigned": .int(assigned),
                    ]
                }),
        ]
    }
}
