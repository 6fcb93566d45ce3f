public import AWS
import FoundationEssentials
import Support
import Synchronization
import WireJSON

/// The pool's loop (docs/ipamd.md §4): builds the pool's view from the core, asks
/// `PoolView.decide` what to do, and carries it out through EC2: more secondary addresses on
/// an ENI with room, or a new ENI (created in the primary ENI's subnet with its security
/// groups and nodeboot's tags, attached at the lowest free device index, DeleteOnTermination
/// set, then waited for in IMDS), addresses given back above target, a spare ENI detached and
/// deleted. In prefix mode the same with /28 prefixes; an IPv6 node gets one /80 on the primary
/// ENI and nothing else. Every minute the checkpoint is reconciled with the kernel's pod routes
/// and rules (missed DELs released, unknown pods adopted; docs/ipamd.md §6). The CNI add path
/// never comes here: adds and deletes only wake the loop.
public actor Reconciler {
    public struct Context: Sendable {
        public var mode: PoolMode
        public var instanceID: String
        public var cluster: String?
        public var limits: InstanceLimits
        public var maxPods: Int
        public var settings: Settings
        /// The primary ENI's subnet and security groups: new ENIs get the same.
        public var subnet: String
        public var securityGroups: [String]
        /// The VPC (the leak sweeper looks for leaked ENIs in it).
        public var vpcID: String

        public init(
            mode: PoolMode = .secondaryIPv4, instanceID: String, cluster: String?, limits: InstanceLimits, maxPods: Int,
            settings: Settings, subnet: String, securityGroups: [String], vpcID: String = ""
        ) {
            self.mode = mode
            self.vpcID = vpcID
            self.instanceID = instanceID
            self.cluster = cluster
            self.limits = limits
            self.maxPods = maxPods
            self.settings = settings
            self.subnet = subnet
            self.securityGroups = securityGroups
        }
    }

    let core: IPAMCore
    let ec2: AWSClient
    let imds: IMDSClient
    let context: Context
    let log: @Sendable (String) -> Void
    /// Runs after every pass (the daemon writes the conflist once an address is free).
    var afterPass: @Sendable () async -> Void = {}
    /// Wires a new ENI's node side (NodeNetwork over netlink in the daemon; throws when the link
    /// is not there yet); nil: not wired (the testbed, `NODEBOOT_IPAMD_HOST_NETWORK=skip`).
    var wire: (@Sendable (ENIWiring) throws -> [String])?
    /// Undoes a freed ENI's node side (its rule and table), by device.
    var unwire: (@Sendable (Int) throws -> [String])?
    /// How long a new ENI may take to appear in IMDS with its addresses (vpc-cni.md §1 row 9).
    let attachWait: Duration
    /// Whether a new ENI (its MAC, its id) is visible on the instance yet, polled until
    /// `attachWait` (docs/ipamd.md §2, the attachment observer): by default IMDS lists the MAC with
    /// an address; against moto, which has no IMDS of the instance, a test asks EC2.
    let attachmentSeen: @Sendable (_ mac: String, _ eniID: String) async -> Bool
    var subnetBlockedUntil: ContinuousClock.Instant?
    var lastDecrease: ContinuousClock.Instant?
    var created: [String: ContinuousClock.Instant] = [:]
    public private(set) var calls: [String: Int] = [:]
    public private(set) var errors: [String: Int] = [:]
    public private(set) var lastDecision = PoolDecision()
    /// The latest failures by their kind (the API and EC2's code): the last line, when last seen
    /// (Unix ms) and how often (status, §7).
    var failures: [String: (line: String, at: Int64, count: Int)] = [:]
    /// Reads the kernel's pod traces for the periodic reconcile (nil: not read, e.g. in tests).
    var observe: (@Sendable ([ENIState]) -> HostObservation?)?
    let hostInterval: Duration
    var lastHostReconcile: ContinuousClock.Instant?
    var loggedNotes: Set<String> = []
    var lastPass: Int64?

    /// `attachmentSeen`: nil watches IMDS (the daemon).
    public init(
        core: IPAMCore, ec2: AWSClient, imds: IMDSClient, context: Context, attachWait: Duration = .seconds(60),
        hostInterval: Duration = .seconds(60),
        attachmentSeen: (@Sendable (_ mac: String, _ eniID: String) async -> Bool)? = nil,
        log: @escaping @Sendable (String) -> Void
    ) {
        self.hostInterval = hostInterval
        self.core = core
        self.ec2 = ec2
        self.imds = imds
        self.context = context
        self.attachWait = attachWait
        self.attachmentSeen = attachmentSeen ?? { mac, _ in await Self.seenInIMDS(mac: mac, imds: imds) }
        self.log = log
    }

    public func setAfterPass(_ callback: @escaping @Sendable () async -> Void) { afterPass = callback }
    public func setWiring(
        _ callback: @escaping @Sendable (ENIWiring) throws -> [String],
        unwire undo: (@Sendable (Int) throws -> [String])? = nil
    ) {
        wire = callback
        unwire = undo
    }
    public func setObserver(_ callback: @escaping @Sendable ([ENIState]) -> HostObservation?) { observe = callback }

    /// Wakes on `wake` (adds and deletes) and every `interval`, until cancelled.
    public func run(wake: AsyncStream<Void>, interval: Duration = .seconds(5)) async {
        await pass()
        await withTaskGroup(of: Void.self) { group in
            let (ticks, ticker) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: interval)
                    ticker.yield()
                }
                ticker.finish()
            }
            group.addTask {
                for await _ in wake { ticker.yield() }
            }
            for await _ in ticks {
                if Task.isCancelled { break }
                await self.pass()
            }
            group.cancelAll()
        }
    }

    /// The pool's view now.
    public func view() async -> PoolView {
        let enis = await core.enis
        let checkpoint = await core.checkpoint
        let now = core.wallClock()
        let clock = ContinuousClock.now
        let cooling = Set(checkpoint.cooling.filter { $0.until > now }.map(\.address))
        let assignedByENI = Dictionary(grouping: checkpoint.allocations, by: \.eni).mapValues(\.count)
        var poolENIs: [PoolENI] = []
        for eni in enis {
            let assigned = assignedByENI[eni.id] ?? 0
            let coolingHere = cooling.filter(eni.holds).count
            poolENIs.append(
                PoolENI(
                    id: eni.id, device: eni.device, isPrimary: eni.isPrimary, addresses: eni.addresses.count,
                    prefixes: eni.prefixes.count, assigned: assigned, cooling: coolingHere,
                    freePrefixes: context.mode == .prefixIPv4 ? await core.freePrefixCount(eni, now: now) : 0,
                    age: created[eni.id].map { clock - $0 } ?? .seconds(86_400)))
        }
        return PoolView(
            mode: context.mode, limits: context.limits, settings: context.settings, maxPods: context.maxPods, enis: poolENIs,
            foreignENIs: await core.foreignENIs, subnetBlockedUntil: subnetBlockedUntil, lastDecrease: lastDecrease,
            now: clock)
    }

    /// One decision and its EC2 calls, then `afterPass` (the conflist once an address exists).
    /// Errors are counted and logged, never thrown: the next pass tries again (an
    /// insufficient-capacity answer waits out a 120 s cooldown first).
    public func pass() async {
        await resumeIntents()
        await reconcileHost()
        await carryOut(await view().decide())
        lastPass = core.wallClock()
        await core.setReport(report(), blocked: Self.blockedText(lastDecision.blocked))
        await afterPass()
    }

    /// Finishes what a kill or a failed call left half done (docs/ipamd.md §4, §6): an ENI being
    /// created or freed that the pool does not hold is deleted (detached first); one the pool
    /// holds (adopted at start: attached and nodeboot's) stays, with DeleteOnTermination set. A
    /// creation killed before EC2's answer left no id: every detached nodeboot ENI of this
    /// instance is then such a leftover (the daemon never keeps one detached).
    func resumeIntents() async {
        let intents = await core.checkpoint.intents.filter { $0.operation != .unassign }
        guard !intents.isEmpty else { return }
        let held = Set(await core.enis.map(\.id))
        for intent in intents {
            let what = intent.operation == .createENI ? "made" : "freed"
            do {
                var ids = intent.eni.map { [$0] } ?? []
                if ids.isEmpty {
                    called("DescribeNetworkInterfaces")
                    ids = try await ec2.describeNetworkInterfaces(filters: [
                        "tag:node.k8s.amazonaws.com/instance_id": [context.instanceID], "status": ["available"],
                    ]).filter { $0.description == "nodeboot-\(context.instanceID)" }.map(\.id)
                }
                for id in ids {
                    called("DescribeNetworkInterfaces")
                    let eni: EC2NetworkInterface?
                    do {
                        eni = try await ec2.describeNetworkInterfaces(ids: [id]).first
                    } catch let error as AWSError where error.code == EC2ErrorCode.networkInterfaceNotFound {
                        eni = nil
                    }
                    guard let eni else { continue }  // gone already
                    if held.contains(id) {
                        if let attachment = eni.attachment, !attachment.deleteOnTermination {
                            called("ModifyNetworkInterfaceAttribute")
                            try await ec2.setDeleteOnTermination(eni: id, attachment: attachment.id)
                        }
                        continue
                    }
                    if let attachment = eni.attachment?.id {
                        try await detachAndDelete(id, attachment: attachment)
                    } else {
                        called("DeleteNetworkInterface")
                        _ = try await ec2.deleteNetworkInterface(id)
                    }
                    log("ipamd: deleted \(id), left half \(what) by an earlier attempt")
                }
                try await core.resolve(intent.token)
            } catch {
                failed("ipamd: an ENI left half \(what) is not removed yet (\(error)); tried again next pass", kind: "resume")
            }
        }
    }

    /// At most every `hostInterval`: the checkpoint against the kernel's pod routes and rules.
    /// The core's own ENI view stands for EC2's (it holds what EC2 answered; IMDS may lag).
    func reconcileHost() async {
        guard let observe, lastHostReconcile.map({ .now - $0 >= hostInterval }) ?? true else { return }
        lastHostReconcile = .now
        guard let observation = observe(await core.enis) else { return }
        // A line already logged (an orphan kept, pass after pass) is not repeated.
        if loggedNotes.count > 1000 { loggedNotes = [] }
        for note in await core.reconcile(with: observation) where loggedNotes.insert(note).inserted { log(note) }
        called("reconcile")
    }

    /// The status reply's pool part: limits, the decision in words, the failures (§7).
    func report() -> [JSON.Member] {
        let errors = failures.values.sorted { $0.at > $1.at }.prefix(10).map { seen -> JSON in
            ["at": .int(Int(seen.at)), "message": .string(seen.line), "count": .int(seen.count)]
        }
        var members: [JSON.Member] = [
            .init("instanceType", .string(context.limits.instanceType)), .init("limits", .string(context.limits.text)),
            .init("maxPods", .int(context.maxPods)), .init("target", .string(lastDecision.reason)),
            .init("errors", .array(Array(errors))),
        ]
        if let lastPass { members.append(.init("lastReconcile", .int(Int(lastPass)))) }
        return members
    }

    /// One failure: logged the first time its kind is seen, counted after that (a request id
    /// differs every time; the journal gets one line, not one per pass).
    func failed(_ line: String, kind: String) {
        let now = core.wallClock()
        if let seen = failures[kind] {
            failures[kind] = (line, now, seen.count + 1)
        } else {
            failures[kind] = (line, now, 1)
            log(line)
        }
    }

    func carryOut(_ decision: PoolDecision) async {
        // One line per change of state (growing, or blocked for a new reason), not per pass.
        if !decision.actions.isEmpty
            || (decision.blocked != nil && Self.kind(decision.blocked) != Self.kind(lastDecision.blocked))
        {
            log("ipamd: \(decision.reason)")
        }
        lastDecision = decision
        for action in decision.actions {
            do {
                try await perform(action)
            } catch let error as AWSError {
                let api = error.operation.split(separator: " ").last.map(String.init) ?? error.operation
                errors[api, default: 0] += 1
                if [EC2ErrorCode.insufficientFreeAddresses, EC2ErrorCode.insufficientCidrBlocks].contains(error.code) {
                    subnetBlockedUntil = .now + .seconds(120)
                }
                failed("ipamd: \(error)", kind: "\(api) \(error.code ?? "")")
                return
            } catch {
                errors["ipamd", default: 0] += 1
                failed("ipamd: \(error)", kind: "\(error)")
                return
            }
        }
    }

    /// The words a refused add ends with: "m5.large allows 3 ENIs × 10 IPv4 addresses; all 27 are assigned".
    static func blockedText(_ blocked: PoolDecision.Blocked?) -> String? {
        switch blocked {
        case nil: nil
        case .limits(let text): text
        case .maxPods(let maxPods): "the pool is at maxPods (\(maxPods))"
        case .subnet: "the subnet has no free addresses (EC2 InsufficientFreeAddressesInSubnet); tried again after 120 s"
        }
    }

    static func kind(_ blocked: PoolDecision.Blocked?) -> String {
        switch blocked {
        case nil: ""
        // Growing full is said again: "19 of 27 assigned" then "all 27 are assigned".
        case .limits(let text): text.contains("; all ") ? "limits, full" : "limits"
        case .maxPods: "maxPods"
        case .subnet: "subnet"
        }
    }

    func called(_ api: String) { calls[api, default: 0] += 1 }

    /// Test seam: when `eni` was created, for the age the pool's ENI hysteresis counts
    /// (`PoolView.minimumENIAge`), so a test frees a spare ENI without waiting 60 s.
    func setCreated(_ eni: String, at instant: ContinuousClock.Instant) { created[eni] = instant }

    func perform(_ action: PoolAction) async throws {
        switch action {
        case .assignIPs(let eni, let count):
            called("AssignPrivateIpAddresses")
            var answered = try await ec2.assignPrivateIPs(eni: eni, count: count)
            if answered.count > count {
                // Not only the new ones (moto lists every address of the ENI, its own primary
                // address too, which must never go to a pod): EC2's description says which are
                // secondary. The core then adds those it does not know yet.
                called("DescribeNetworkInterfaces")
                let secondary = Set(try await ec2.describeNetworkInterfaces(ids: [eni]).first?.secondaryIPv4s ?? [])
                answered.removeAll { !secondary.contains($0) }
            }
            await core.addAddresses(answered, to: eni)
        case .assignPrefixes(let eni, let count):
            called("AssignPrivateIpAddresses")
            await core.addPrefixes(try await ec2.assignIPv4Prefixes(eni: eni, count: count), to: eni)
        case .assignIPv6Prefix(let eni):
            called("AssignIpv6Addresses")
            await core.addPrefixes(try await ec2.assignIPv6Prefix(eni: eni), to: eni)
        case .createENI(let count):
            try await createENI(slots: count)
        case .unassignIPs(let eni, let count):
            try await giveBack(await core.takeFree(count, from: eni), of: eni)
        case .unassignPrefixes(let eni, let count):
            try await giveBack(await core.takeFreePrefixes(count, from: eni), of: eni)
        case .freeENI(let eni):
            try await freeENI(eni)
        }
    }

    /// Gives free addresses (or /28 prefixes) of `eni` back to EC2.
    func giveBack(_ released: [String], of eni: String) async throws {
        guard !released.isEmpty else { return }
        // Recorded first: a restart before EC2's answer must not trust a lagging IMDS that
        // still lists them (another node may have them by then).
        let token = "unassign-\(UInt64.random(in: 1...UInt64.max))"
        try await core.record(
            .init(operation: .unassign, token: token, eni: eni, addresses: released, since: core.wallClock()))
        called("UnassignPrivateIpAddresses")
        let prefixes = released.first?.contains("/") == true
        do {
            if prefixes {
                try await ec2.unassignIPv4Prefixes(eni: eni, prefixes: released)
            } else {
                try await ec2.unassignPrivateIPs(eni: eni, addresses: released)
            }
        } catch {
            // Back only what EC2 still lists on the ENI: an attempt that succeeded before its
            // answer was lost must not hand out addresses EC2 already took back.
            called("DescribeNetworkInterfaces")
            if let still = try? await ec2.describeNetworkInterfaces(ids: [eni]).first {
                if prefixes {
                    await core.addPrefixes(released.filter(still.ipv4Prefixes.contains), to: eni)
                } else {
                    await core.addAddresses(released.filter(still.secondaryIPv4s.contains), to: eni)
                }
                try? await core.resolve(token)  // if this write fails, the next start resolves it
            }
            throw error
        }
        try? await core.resolve(token)  // if this write fails, the next start resolves it
        lastDecrease = .now
    }

    /// A new ENI with `count` secondary addresses (or /28 prefixes in prefix mode).
    func createENI(slots count: Int) async throws {
        var tags = [
            "node.k8s.amazonaws.com/instance_id": context.instanceID,
            "node.k8s.amazonaws.com/createdAt": Date.now.formatted(.iso8601),
        ]
        if let cluster = context.cluster { tags["cluster.k8s.amazonaws.com/name"] = cluster }
        // Recorded first: a restart finds the ENI a kill left half made (by id, or as a detached
        // ENI of this instance) and deletes it, rather than leaving it to the leak sweeper.
        let token = "nodeboot-\(UInt64.random(in: 1...UInt64.max))"
        var intent = Checkpoint.Intent(operation: .createENI, token: token, eni: nil, addresses: [], since: core.wallClock())
        try await core.record(intent)
        called("CreateNetworkInterface")
        let eni: EC2NetworkInterface
        do {
            eni = try await ec2.createNetworkInterface(
                subnet: context.subnet, groups: context.securityGroups, description: "nodeboot-\(context.instanceID)",
                addresses: context.mode == .prefixIPv4 ? .ipv4Prefixes(count: count) : .secondaryIPv4(count: count),
                tags: tags, clientToken: token)
        } catch {
            // Not made (or made and not answered: the next start looks for it).
            if (error as? AWSError)?.status.map({ $0 < 500 }) == true { try? await core.resolve(token) }
            throw error
        }
        intent.eni = eni.id
        try? await core.record(intent)  // unwritten, the next start still finds it as a detached ENI of ours
        var attachment: String?
        do {
            called("DescribeInstances")
            let instance = try await ec2.describeInstance(id: context.instanceID)
            let used = Set(instance.networkInterfaces.filter { $0.networkCardIndex == 0 }.map(\.deviceIndex))
            let device = (0...).first { !used.contains($0) } ?? used.count
            called("AttachNetworkInterface")
            attachment = try await ec2.attachNetworkInterface(eni: eni.id, instance: context.instanceID, deviceIndex: device)
            called("ModifyNetworkInterfaceAttribute")
            try await ec2.setDeleteOnTermination(eni: eni.id, attachment: attachment ?? "")
            try await waitAttached(mac: eni.macAddress, eni: eni.id)
            // The node side before any address is handed out: without its table and rule a pod
            // on this ENI would have no route. Bounded like the IMDS wait (the NIC's hot-plug).
            try await wireNew(mac: eni.macAddress, device: device)
            created[eni.id] = .now
            let state =
                context.mode == .prefixIPv4
                ? ENIState(id: eni.id, device: device, isPrimary: false, prefixes: eni.ipv4Prefixes)
                : ENIState(id: eni.id, device: device, isPrimary: false, addresses: eni.secondaryIPv4s)
            // Resolved before its addresses are served: from here a restart adopts the ENI (it is
            // attached and nodeboot's) instead of deleting it under a pod.
            try await core.resolve(token)
            await core.attach(state)
            log("ipamd: attached \(eni.id) at device \(device) with \(state.addresses.count) addresses")
        } catch {
            // Undo in EC2 what was done, so neither a half-made ENI nor an attached one nobody
            // manages is left (the leak sweeper is the backstop for what this cannot undo).
            do {
                if let attachment {
                    try await detachAndDelete(eni.id, attachment: attachment)
                } else {
                    called("DeleteNetworkInterface")
                    _ = try await ec2.deleteNetworkInterface(eni.id)
                }
                try? await core.resolve(token)
            } catch let cleanup {
                log("ipamd: could not remove the new ENI \(eni.id) after a failed setup: \(cleanup); the next start tries again")
            }
            throw error
        }
    }

    /// Wires a new ENI's node side once IMDS and the kernel show it; no wiring configured (the
    /// testbed, or `NODEBOOT_IPAMD_HOST_NETWORK=skip`): nothing to do.
    func wireNew(mac: String, device: Int) async throws {
        guard let wire else { return }
        let policy = RetryPolicy(
            maxAttempts: .max, baseDelay: .milliseconds(100), maxBackoff: .seconds(2), deadline: attachWait,
            attemptTimeout: attachWait, random: { 1 })
        var last = "IMDS does not describe it"
        let wired = try await policy.firstValue { _ -> Bool? in
            guard let interface = try? await self.imds.networkInterface(mac: mac),
                let wiring = ENIWiring(interface, device: device, mtu: self.context.settings.mtu)
            else { return nil }
            do {
                for note in try wire(wiring) { self.log("ipamd: \(note)") }
                return true
            } catch {
                last = "\(error)"
                return nil
            }
        }
        guard wired != nil else { throw IPAMError("the new ENI \(mac) could not be wired within \(attachWait): \(last)") }
    }

    /// Until the attachment observer sees the ENI (IMDS lists its MAC with an address): backoff
    /// from 100 ms doubling to 2 s, bounded by `attachWait` (aws-node: 12 attempts from 100 ms,
    /// vpc-cni.md §1 row 9).
    func waitAttached(mac: String, eni: String) async throws {
        let policy = RetryPolicy(
            maxAttempts: .max, baseDelay: .milliseconds(100), maxBackoff: .seconds(2), deadline: attachWait,
            attemptTimeout: attachWait, random: { 1 })
        let seen = try await policy.firstValue { _ in await self.attachmentSeen(mac, eni) ? true : nil }
        guard seen != nil else {
            throw IPAMError("the new ENI \(eni) (\(mac)) did not appear on the instance within \(attachWait)")
        }
    }

    /// The daemon's attachment observer: IMDS lists the MAC with at least one address.
    static func seenInIMDS(mac: String, imds: IMDSClient) async -> Bool {
        // Not listed yet (404), or IMDS did not answer this time: not seen, looked at again.
        let interface = try? await imds.networkInterface(mac: mac)
        return interface?.localIPv4s.isEmpty == false
    }

    func freeENI(_ id: String) async throws {
        guard let saved = await core.detach(id) else { return }
        // Recorded first (after the core let go of it): a restart finishes the detach and delete
        // instead of adopting a half-freed ENI or leaking a detached one.
        let token = "free-\(UInt64.random(in: 1...UInt64.max))"
        do {
            try await core.record(.init(operation: .freeENI, token: token, eni: id, addresses: [], since: core.wallClock()))
        } catch {
            await core.attach(saved)
            throw error
        }
        let detaching = Mutex(false)
        do {
            called("DescribeNetworkInterfaces")
            if let attachment = try await ec2.describeNetworkInterfaces(ids: [id]).first?.attachment?.id {
                try await detachAndDelete(id, attachment: attachment) { detaching.withLock { $0 = true } }
            } else {
                called("DeleteNetworkInterface")
                _ = try await ec2.deleteNetworkInterface(id)
            }
        } catch {
            // Not detached: the pool keeps it and the next pass may try again. Detached (or
            // detaching): the intent stays and the next start deletes it.
            if !detaching.withLock({ $0 }) {
                await core.attach(saved)
                try? await core.resolve(token)
            }
            throw error
        }
        try? await core.resolve(token)
        created[id] = nil
        log("ipamd: detached and deleted \(id) (a spare ENI above the warm target)")
        // Its rule and table go too (the kernel dropped the routes with the link, not the rule).
        if let unwire {
            do {
                for note in try unwire(saved.device) { log("ipamd: \(note)") }
            } catch {
                failed("ipamd: device \(saved.device)'s rule and table not removed after freeing \(id): \(error)", kind: "unwire")
            }
        }
    }

    /// Detach, then poll until `available` (not a fixed sleep), then delete.
    func detachAndDelete(_ id: String, attachment: String, detached: @Sendable () -> Void = {}) async throws {
        called("DetachNetworkInterface")
        try await ec2.detachNetworkInterface(attachment: attachment)
        detached()
        let policy = RetryPolicy.poll(every: .milliseconds(500), deadline: .seconds(30))
        let detached = try await policy.firstValue { _ -> Bool? in
            await self.called("DescribeNetworkInterfaces")
            do {
                let status = try await self.ec2.describeNetworkInterfaces(ids: [id]).first?.status
                return status == "available" || status == nil ? true : nil
            } catch let error as AWSError where error.code == EC2ErrorCode.networkInterfaceNotFound {
                return true  // gone already
            } catch {
                return nil  // a throttle or a blip: look again (bounded by the poll's deadline)
            }
        }
        guard detached != nil else { throw IPAMError("\(id) was still attached 30 s after DetachNetworkInterface") }
        called("DeleteNetworkInterface")
        _ = try await ec2.deleteNetworkInterface(id)
    }
}
