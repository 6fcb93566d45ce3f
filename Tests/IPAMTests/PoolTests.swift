import IPAM
import Testing

/// The warm-pool decision against vpc-cni.md §2, on an m5.large (3 ENIs × 10 IPv4: 9 pod slots per ENI).
@Suite("warm pool decision")
struct PoolTests {
    static let m5large = InstanceLimits(instanceType: "m5.large", maxENIs: 3, ipv4PerENI: 10)
    static let now = ContinuousClock.now

    static func view(
        _ enis: [PoolENI], mode: PoolMode = .secondaryIPv4, settings: [String: String] = [:], maxPods: Int = 29,
        limits: InstanceLimits = m5large, foreign: Int = 0, lastDecrease: Duration? = nil,
        subnetBlockedFor: Duration? = nil
    ) throws -> PoolView {
        // Prefix delegation is refused by Settings.parse (not carried out yet); the decision is tested all the same.
        var parsed = try Settings.parse(settings.filter { $0.key != "ENABLE_PREFIX_DELEGATION" }).0
        if settings["ENABLE_PREFIX_DELEGATION"] == "true" {
            parsed.prefixDelegation = true
            if settings["WARM_PREFIX_TARGET"] == nil { parsed.warmPrefixTarget = 1 }
        }
        return PoolView(
            mode: mode, limits: limits, settings: parsed, maxPods: maxPods, enis: enis,
            foreignENIs: foreign, subnetBlockedUntil: subnetBlockedFor.map { now + $0 },
            lastDecrease: lastDecrease.map { now - $0 }, now: now)
    }

    static func primary(addresses: Int = 0, assigned: Int = 0, cooling: Int = 0) -> PoolENI {
        PoolENI(id: "eni-p", device: 0, isPrimary: true, addresses: addresses, assigned: assigned, cooling: cooling)
    }

    static func secondary(_ device: Int, addresses: Int = 9, assigned: Int = 0, cooling: Int = 0, age: Duration = .seconds(3600))
        -> PoolENI
    {
        PoolENI(id: "eni-\(device)", device: device, addresses: addresses, assigned: assigned, cooling: cooling, age: age)
    }

    @Test("WARM_ENI_TARGET=1: a fresh node fills the primary ENI, then a full ENI's worth stays free")
    func eniTarget() throws {
        #expect(try Self.view([Self.primary()]).decide().actions == [.assignIPs(eni: "eni-p", count: 9)])
        // Primary full and busy: one more ENI, filled whole (one EC2 call for 9 addresses).
        let busy = try Self.view([Self.primary(addresses: 9, assigned: 9)]).decide()
        #expect(busy.actions == [.createENI(count: 9)])
        // 9 free: at target, nothing to do.
        let atTarget = try Self.view([Self.primary(addresses: 9, assigned: 9), Self.secondary(1)]).decide()
        #expect(atTarget.actions.isEmpty)
        #expect(atTarget.reason.contains("at target"))
    }

    @Test("several ENIs in one pass when the shortfall needs them (aws-node adds one per 5 s)")
    func severalENIs() throws {
        let decision = try Self.view([Self.primary(addresses: 9, assigned: 9)], settings: ["WARM_ENI_TARGET": "2"]).decide()
        #expect(decision.actions == [.createENI(count: 9), .createENI(count: 9)])
    }

    @Test("the instance's limits: the error names them")
    func limits() throws {
        let full = try Self.view([
            Self.primary(addresses: 9, assigned: 9), Self.secondary(1, assigned: 9), Self.secondary(2, assigned: 9),
        ]).decide()
        #expect(full.actions.isEmpty)
        #expect(full.blocked == .limits("m5.large allows 3 ENIs × 10 IPv4 addresses; all 27 are assigned"))
        var capped = Self.m5large
        capped.maxENISetting = 2
        let maxENI = try Self.view(
            [Self.primary(addresses: 9, assigned: 9), Self.secondary(1, assigned: 7, cooling: 2)], limits: capped
        ).decide()
        #expect(
            maxENI.blocked
                == .limits(
                    "MAX_ENI=2 allows 2 ENIs (m5.large: 3) × 10 IPv4 addresses; 16 of 18 are assigned, 2 cooling down"))
        // A foreign ENI (EFA, launch template) takes a device slot.
        let foreign = try Self.view([Self.primary(addresses: 9, assigned: 9), Self.secondary(1, assigned: 9)], foreign: 1)
            .decide()
        #expect(foreign.actions.isEmpty && foreign.blocked != nil)
    }

    @Test("never more addresses than maxPods")
    func maxPods() throws {
        let capped = try Self.view(
            [Self.primary(addresses: 9, assigned: 9), Self.secondary(1, addresses: 9, assigned: 9)], maxPods: 20
        )
        .decide()
        #expect(capped.actions == [.createENI(count: 2)])
        let at = try Self.view([Self.primary(addresses: 9, assigned: 9)], maxPods: 9).decide()
        #expect(at.actions.isEmpty && at.blocked == .maxPods(9))
    }

    @Test("IP targets: exactly what is short; over target given back after the 30 s interval; MIN without WARM stops")
    func ipTargets() throws {
        let settings = ["WARM_IP_TARGET": "2", "MINIMUM_IP_TARGET": "10"]
        let fresh = try Self.view([Self.primary()], settings: settings).decide()
        #expect(fresh.actions == [.assignIPs(eni: "eni-p", count: 9), .createENI(count: 1)])
        #expect(fresh.short == 10)
        let over = try Self.view(
            [Self.primary(addresses: 9, assigned: 3), Self.secondary(1, addresses: 6, assigned: 4)], settings: settings)
        #expect(over.decide().over == 5)
        // From the ENI with the fewest assigned first.
        #expect(over.decide().actions == [.unassignIPs(eni: "eni-p", count: 5)])
        let recent = try Self.view(
            [Self.primary(addresses: 9, assigned: 3), Self.secondary(1, addresses: 6, assigned: 4)], settings: settings,
            lastDecrease: .seconds(10))
        #expect(recent.decide().actions.isEmpty, "within 30 s of the last decrease")
        let minOnly = try Self.view(
            [Self.primary(addresses: 9, assigned: 9), Self.secondary(1, addresses: 1, assigned: 1)],
            settings: ["MINIMUM_IP_TARGET": "10"])
        #expect(minOnly.decide().actions.isEmpty, "MIN=10 reached and WARM=0: no spare, as aws-node")
    }

    @Test("a spare ENI is freed when two ENIs' worth are free, only if old enough and empty")
    func freeENI() throws {
        let spare = try Self.view([Self.primary(addresses: 9, assigned: 0), Self.secondary(1), Self.secondary(2)]).decide()
        #expect(spare.actions == [.freeENI(eni: "eni-2")])
        let young = try Self.view([
            Self.primary(addresses: 9), Self.secondary(1, assigned: 1), Self.secondary(2, age: .seconds(10)),
        ])
        .decide()
        #expect(young.actions.isEmpty, "an ENI younger than 60 s is kept")
        let cooling = try Self.view([Self.primary(addresses: 9), Self.secondary(1, cooling: 1), Self.secondary(2, cooling: 1)])
            .decide()
        #expect(cooling.actions.isEmpty, "an ENI with cooling addresses is kept")
        let needed = try Self.view([Self.primary(addresses: 9, assigned: 9), Self.secondary(1)]).decide()
        #expect(needed.actions.isEmpty, "the only spare ENI is the warm target")
    }

    @Test("prefix delegation: /28s, WARM_PREFIX_TARGET free prefixes, surplus given back")
    func prefixes() throws {
        let settings = ["ENABLE_PREFIX_DELEGATION": "true"]
        let fresh = try Self.view([Self.primary()], mode: .prefixIPv4, settings: settings, maxPods: 110).decide()
        #expect(fresh.actions == [.assignPrefixes(eni: "eni-p", count: 1)])
        let busy = PoolENI(id: "eni-p", device: 0, isPrimary: true, addresses: 16, prefixes: 1, assigned: 16)
        #expect(
            try Self.view([busy], mode: .prefixIPv4, settings: settings, maxPods: 110).decide().actions
                == [.assignPrefixes(eni: "eni-p", count: 1)])
        let surplus = PoolENI(id: "eni-p", device: 0, isPrimary: true, addresses: 48, prefixes: 3, assigned: 5, freePrefixes: 2)
        #expect(
            try Self.view([surplus], mode: .prefixIPv4, settings: settings, maxPods: 110).decide().actions
                == [.unassignPrefixes(eni: "eni-p", count: 1)])
        let withIPTargets = try Self.view(
            [Self.primary()], mode: .prefixIPv4, settings: settings.merging(["WARM_IP_TARGET": "20"]) { $1 }, maxPods: 110
        ).decide()
        #expect(withIPTargets.actions == [.assignPrefixes(eni: "eni-p", count: 2)], "20 addresses: ceil(20/16) prefixes")
    }

    @Test("IPv6: one /80 on the primary ENI, nothing else ever")
    func ipv6() throws {
        #expect(try Self.view([Self.primary()], mode: .ipv6).decide().actions == [.assignIPv6Prefix(eni: "eni-p")])
        let has = PoolENI(id: "eni-p", device: 0, isPrimary: true, addresses: 1 << 20, prefixes: 1, assigned: 500)
        #expect(try Self.view([has], mode: .ipv6).decide().actions.isEmpty)
    }

    @Test("an EC2 insufficient-capacity cooldown stops growth, with the reason")
    func blocked() throws {
        let subnet = try Self.view([Self.primary(addresses: 9, assigned: 9)], subnetBlockedFor: .seconds(60)).decide()
        #expect(subnet.actions.isEmpty)
        #expect(subnet.blocked == .subnet(until: Self.now + .seconds(60)))
    }
}
