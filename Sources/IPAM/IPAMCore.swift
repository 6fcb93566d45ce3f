public import IPAMProtocol
import Netlink
public import WireJSON

/// One ENI's pod addresses as the daemon holds them.
public struct ENIState: Sendable, Equatable {
    public var id: String
    public var device: Int
    public var isPrimary: Bool
    /// Pod addresses (secondary IPs, or the addresses of its /28 prefixes), in EC2's order.
    public var addresses: [String]
    /// Delegated prefixes pods take addresses from: /28s (their 16 addresses are in `addresses`),
    /// or the /80 of an IPv6 node (too many to list: an add picks inside it).
    public var prefixes: [String]
    public var createdAt: ContinuousClock.Instant?

    public init(
        id: String, device: Int, isPrimary: Bool, addresses: [String], prefixes: [String] = [],
        createdAt: ContinuousClock.Instant? = nil
    ) {
        self.id = id
        self.device = device
        self.isPrimary = isPrimary
        self.addresses = addresses
        self.prefixes = prefixes
        self.createdAt = createdAt
    }

    /// An ENI holding `prefixes`: a /28's 16 addresses become pod addresses; a /80 is kept whole.
    public init(id: String, device: Int, isPrimary: Bool, prefixes: [String]) {
        self.init(
            id: id, device: device, isPrimary: isPrimary, addresses: prefixes.flatMap(Self.addresses(in:)),
            prefixes: prefixes)
    }

    /// The addresses of an IPv4 /28 (or any IPv4 prefix of /24 or longer); none for IPv6 or a
    /// malformed prefix.
    public static func addresses(in cidr: String) -> [String] {
        guard let prefix = IPPrefix(cidr), prefix.family == .inet, prefix.length >= 24 else { return [] }
        return (0..<(UInt64(1) << UInt64(32 - prefix.length))).compactMap { prefix.address(at: $0).map(\.description) }
    }

    /// The IPv6 prefixes (a /80) pods take addresses from.
    var ipv6Prefixes: [IPPrefix] { prefixes.compactMap(IPPrefix.init).filter { $0.family == .inet6 } }

    /// Whether a pod address belongs to this ENI (listed, or inside its IPv6 prefix).
    public func holds(_ address: String) -> Bool {
        if addresses.contains(address) { return true }
        guard address.contains(":"), let parsed = IPAddress(address) else { return false }
        return ipv6Prefixes.contains { $0.contains(parsed) }
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
            case .gc(let network, let valid): return .collected(try collect(network, keeping: valid))
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

    /// CNI GC (the runtime holds no other operation on the network meanwhile): every attachment
    /// of `network` the runtime no longer has goes into the cooldown, as its DEL would. Adopted
    /// kernel addresses are not the runtime's and stay.
    public func collect(_ network: String, keeping valid: [AttachmentKey]) throws(ProtocolError) -> [Released] {
        let keep = Set(valid.map { $0.container + "\u{0}" + $0.ifname })
        let stale = checkpoint.allocations.filter {
            $0.key.network == network && !keep.contains($0.key.container + "\u{0}" + $0.key.ifname)
        }
        guard !stale.isEmpty else { return [] }
        let now = wallClock()
        let until = now + Int64(cooldown / .milliseconds(1))
        let gone = Set(stale.map(\.key))
        var next = checkpoint
        next.allocations.removeAll { gone.contains($0.key) }
        next.cooling += stale.map { Checkpoint.Cooling(address: $0.address, until: until) }
        try commit(next)
        for allocation in stale { released[allocation.address] = now }
        deletes += stale.count
        changed?()
        return stale.map { Released(key: $0.key, address: $0.address, pod: $0.pod) }
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

    /// Prefixes EC2 delegated to `eni` (/28s: their addresses become pod addresses; the IPv6 /80).
    public func addPrefixes(_ prefixes: [String], to eni: String) {
        guard let index = enis.firstIndex(where: { $0.id == eni }) else { return }
        let new = prefixes.filter { !enis[index].prefixes.contains($0) }
        enis[index].prefixes += new
        addAddresses(new.flatMap(ENIState.addresses(in:)), to: eni)
    }

    /// Removes up to `count` /28 prefixes of `eni` none of whose addresses is assigned or cooling,
    /// and returns them (no address of theirs is handed out while EC2 takes them back).
    public func takeFreePrefixes(_ count: Int, from eni: String) -> [String] {
        guard let index = enis.firstIndex(where: { $0.id == eni }) else { return [] }
        let busy = busyAddresses(now: wallClock())
        let free = enis[index].prefixes.filter { prefix in
            let addresses = ENIState.addresses(in: prefix)
            return !addresses.isEmpty && !addresses.contains(where: busy.contains)
        }.suffix(count)
        let gone = Set(free.flatMap(ENIState.addresses(in:)))
        enis[index].prefixes.removeAll { free.contains($0) }
        enis[index].addresses.removeAll { gone.contains($0) }
        return Array(free)
    }

    /// /28 prefixes of `eni` none of whose addresses is assigned or cooling.
    public func freePrefixCount(_ eni: ENIState, now: Int64) -> Int {
        let busy = busyAddresses(now: now)
        return eni.prefixes.filter { prefix in
            let addresses = ENIState.addresses(in: prefix)
            return !addresses.isEmpty && !addresses.contains(where: busy.contains)
        }.count
    }

    func busyAddresses(now: Int64) -> Set<String> {
        Set(checkpoint.allocations.map(\.address)).union(checkpoint.cooling.filter { $0.until > now }.map(\.address))
    }

    /// An IPv6 node's capacity for the counts (kubelet's maxPods; the /80 itself is 2^48).
    public private(set) var ipv6Capacity = 110
    public func setIPv6Capacity(_ capacity: Int) { ipv6Capacity = capacity }

    /// What the reconciler last decided and met, for the status reply (docs/ipamd.md §7).
    public private(set) var report: [JSON.Member] = []
    /// Why the pool cannot grow now (the instance's limits, maxPods, the subnet), for a refused add.
    public private(set) var blocked: String?
    public func setReport(_ members: [JSON.Member], blocked: String? = nil) {
        report = members
        self.blocked = blocked
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
        let busy = busyAddresses(now: wallClock())
        let free = enis[index].addresses.filter { !busy.contains($0) }.suffix(count)
        enis[index].addresses.removeAll { free.contains($0) }
        return Array(free)
    }

    /// Forgets a non-primary ENI with nothing assigned or cooling on it, before EC2 detaches it,
    /// and returns it (to put back if EC2 fails); nil (and nothing changes) when it is in use.
    public func detach(_ id: String) -> ENIState? {
        guard let eni = enis.first(where: { $0.id == id }), !eni.isPrimary else { return nil }
        let now = wallClock()
        let inUse =
            checkpoint.allocations.contains { $0.eni == id || eni.holds($0.address) }
            || checkpoint.cooling.contains { $0.until > now && eni.holds($0.address) }
        guard !inUse else { return nil }
        enis.removeAll { $0.id == id }
        return eni
    }

    /// The periodic reconcile (docs/ipamd.md §6): the checkpoint against the kernel's pod traces,
    /// recorded when it changes anything; returns its journal lines.
    public func reconcile(with host: HostObservation) -> [String] {
        let now = wallClock()
        let result = checkpoint.reconcile(with: host, now: now, cooldown: cooldown)
        guard result.checkpoint != checkpoint else { return result.notes }
        let cooling = Set(checkpoint.cooling.map(\.address))
        do {
            try commit(result.checkpoint)
        } catch {
            return result.notes.isEmpty ? [] : ["ipamd: the reconcile is not recorded (\(error.message)); tried again later"]
        }
        for entry in result.checkpoint.cooling where !cooling.contains(entry.address) { released[entry.address] = now }
        return result.notes
    }

    /// Records an EC2 change before it is made (resumed or resolved after a restart); an intent
    /// with the same token is replaced (the ENI's id, once EC2 answered).
    public func record(_ intent: Checkpoint.Intent) throws(ProtocolError) {
        var next = checkpoint
        next.intents.removeAll { $0.token == intent.token }
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
                ?? enis.first(where: { $0.holds(allocation.address) })
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
        let busy = busyAddresses(now: now)
        let load = Dictionary(grouping: checkpoint.allocations, by: \.eni).mapValues(\.count)
        let ordered = enis.sorted { ((load[$0.id] ?? 0) == 0 ? 1 : 0, $0.device) < ((load[$1.id] ?? 0) == 0 ? 1 : 0, $1.device) }
        for eni in ordered {
            let free = eni.addresses.filter { !busy.contains($0) }
            if let address = free.min(by: { (released[$0] ?? 0, $0) < (released[$1] ?? 0, $1) }) {
                return (eni, address)
            }
            // IPv6: the lowest address of the /80 that is neither taken nor cooling (the
            // network address itself is skipped).
            for prefix in eni.ipv6Prefixes {
                var offset: UInt64 = 1
                while let address = prefix.address(at: offset)?.description {
                    if !busy.contains(address) { return (eni, address) }
                    offset += 1
                }
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
        if checkpoint.mode == .ipv6 {
            // The /80 holds far more than any node runs: its capacity is the kubelet's maxPods.
            let held = enis.filter { !$0.ipv6Prefixes.isEmpty }
            guard !held.isEmpty else { return Counts(total: 0, assigned: 0, cooling: 0) }
            let inPrefix = { (address: String) in held.contains { $0.holds(address) } }
            let assigned = checkpoint.allocations.filter { inPrefix($0.address) }.count
            let cooling = Set(checkpoint.cooling.filter { $0.until > now }.map(\.address)).filter(inPrefix).count
            return Counts(total: max(ipv6Capacity, assigned + cooling), assigned: assigned, cooling: cooling)
        }
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
        if let blocked { message += " and cannot grow: \(blocked)" }
        return message
    }

    /// The status reply's body (and `nodeboot status`'s ipamd section).
    public func status() -> JSON {
        let counts = counts()
        var members: [JSON.Member] = [
            .init("ready", .bool(counts.total > 0)), .init("mode", .string(checkpoint.mode.rawValue)),
            .init("instance", .string(checkpoint.instance)),
            .init("total", .int(counts.total)), .init("assigned", .int(counts.assigned)), .init("cooling", .int(counts.cooling)),
            .init("free", .int(counts.free)), .init("adds", .int(adds)), .init("deletes", .int(deletes)),
            .init(
                "enis",
                .array(
                    enis.map { eni in
                        let assigned = checkpoint.allocations.filter { $0.eni == eni.id }.count
                        var row: [JSON.Member] = [
                            .init("id", .string(eni.id)), .init("device", .int(eni.device)),
                            .init("primary", .bool(eni.isPrimary)),
                            .init("addresses", .int(eni.addresses.count)), .init("assigned", .int(assigned)),
                        ]
                        if !eni.prefixes.isEmpty { row.append(.init("prefixes", .array(eni.prefixes.map(JSON.string)))) }
                        return .object(row)
                    })
            ),
        ]
        members += report
        return .object(members)
    }
}
