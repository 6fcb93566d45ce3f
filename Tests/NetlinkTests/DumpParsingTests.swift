import Netlink
import Testing

/// The kernel's own answers (`Captured`, read in a scratch namespace by an independent Python
/// client) replayed through the fake socket: what each dump yields.
@Suite("captured rtnetlink answers, parsed")
struct DumpParsingTests {
    @Test("link dump: name, index, MAC, MTU, flags, kind and peer of lo and a veth pair")
    func links() throws {
        let links = try replaying(Captured.links).links()
        #expect(links.map(\.name) == ["lo", "eni1a2b3c4d5e6", "eth0"])
        #expect(links.map(\.index) == [1, 2, 3])
        let lo = links[0]
        #expect(lo.kind == nil)
        #expect(lo.flags.isSuperset(of: [.up, .loopback, .running, .lowerUp]))
        #expect(lo.mtu == 65536)
        #expect(lo.address == MACAddress("00:00:00:00:00:00"))
        let eni = links[1]
        #expect(eni.kind == "veth")
        #expect(eni.address == MACAddress("02:00:00:00:00:01"))
        #expect(eni.mtu == 9001)
        #expect(eni.isUp)
        #expect(eni.flags.isSuperset(of: [.broadcast, .multicast, .lowerUp]))
        #expect(eni.parentIndex == 3)  // the peer, eth0
        let eth0 = links[2]
        #expect(eth0.device == Device(index: 3, name: "eth0"))
        #expect(eth0.address?.description == "02:00:0a:00:61:1e")
        #expect(eth0.parentIndex == 2)
        #expect(eth0.masterIndex == nil)
    }

    @Test("get link by name: the one link, then the acknowledgement; ENODEV is nil")
    func getLink() throws {
        let eth0 = try #require(try replaying(Captured.getLinkEth0).link(named: "eth0"))
        #expect(eth0.index == 3)
        #expect(eth0.name == "eth0")
        #expect(eth0.kind == "veth")
        #expect(eth0.mtu == 9001)
        #expect(eth0.address == MACAddress("02:00:0a:00:61:1e"))
        #expect(try replaying(Captured.getLinkNoSuch).link(named: "nosuch") == nil)
    }

    @Test("address dump: IPv4 from IFA_LOCAL with its label, IPv6 from IFA_ADDRESS with IFA_FLAGS")
    func addresses() throws {
        let addresses = try replaying(Captured.addresses).addresses()
        #expect(
            addresses.map { "\($0.prefix) if\($0.device.index)" } == [
                "127.0.0.1/8 if1", "10.0.97.30/32 if3", "::1/128 if1", "fe80::ff:fe00:1/64 if2", "fd00::1e/128 if3",
                "fe80::aff:fe00:611e/64 if3",
            ])
        let pod = addresses[1]
        #expect(pod.label == "eth0")
        #expect(pod.device.name == "eth0")
        #expect(pod.scope == .universe)
        #expect(pod.flags.contains(.permanent))
        let v6 = addresses[4]
        #expect(v6.prefix.family == .inet6)
        #expect(v6.flags.isSuperset(of: [.noDAD, .permanent]))
        #expect(v6.label == nil)
        #expect(addresses[3].scope == .link)
        #expect(addresses[0].scope == .host)
    }

    @Test("route dump: destinations, gateways, devices, tables (300 from RTA_TABLE), scopes, types")
    func routes() throws {
        let all = try replaying(Captured.inetRoutes).routes(family: .inet)
        #expect(
            all.map(\.description) == [
                "default via 10.0.96.1 dev if2 table 2", "10.0.96.1/32 dev if2 table 2",
                "10.0.97.32/32 dev if2 table 300", "default via 169.254.1.1 dev if3", "169.254.1.1/32 dev if3",
                "10.0.97.30/32 dev if3 table local src 10.0.97.30", "127.0.0.0/8 dev if1 table local src 127.0.0.1",
                "127.0.0.1/32 dev if1 table local src 127.0.0.1", "127.255.255.255/32 dev if1 table local src 127.0.0.1",
            ])
        let table2 = try replaying(Captured.inetRoutes).routes(family: .inet, table: 2)
        #expect(
            table2 == [
                Route(.any(.inet), gateway: .a("10.0.96.1"), device: Device(index: 2), table: 2),
                Route(.p("10.0.96.1/32"), device: Device(index: 2), table: 2, scope: .link),
            ])
        let main = try replaying(Captured.inetRoutes).routes(family: .inet, table: Route.mainTable)
        #expect(
            main == [
                Route(.any(.inet), gateway: .a("169.254.1.1"), device: Device(index: 3, name: "eth0")),
                Route(.p("169.254.1.1/32"), device: Device(index: 3)),
            ])
        let table300 = try replaying(Captured.inetRoutes).routes(family: .inet, table: 300)
        #expect(table300.map(\.destination) == [.p("10.0.97.32/32")])
        let local = all.filter { $0.table == Route.localTable }
        #expect(local.map(\.type) == [.local, .local, .local, .broadcast])
        #expect(local.map(\.origin) == [.kernel, .kernel, .kernel, .kernel])
        #expect(local.first?.scope == .host)
    }

    @Test("rule dump: priorities, selectors, fwmark/mask, tables incl. 300, the three default rules")
    func rules() throws {
        let rules = try replaying(Captured.inetRules).rules(family: .inet)
        #expect(
            rules.map(\.description) == [
                "from all lookup local prio 0", "from all to 10.0.97.30/32 lookup main prio 512",
                "from all fwmark 0x80/0x80 lookup main prio 1024", "from 10.0.97.30/32 lookup 2 prio 1536",
                "from 10.0.97.31/32 lookup 300 prio 1537", "from all lookup main prio 32766",
                "from all lookup default prio 32767",
            ])
        #expect(rules[3] == Rule(priority: 1536, from: .p("10.0.97.30/32"), table: 2))
        #expect(rules[2] == Rule(priority: 1024, fwmark: 0x80, fwmask: 0x80, table: Route.mainTable))
        #expect(rules[4].table == 300)
        #expect(rules.allSatisfy { $0.action == .lookup && !$0.invert && $0.family == .inet })
    }

    @Test("neighbour dump: the permanent entry with its link-layer address")
    func neighbours() throws {
        let neighbours = try replaying(Captured.inetNeighbours).neighbours(family: .inet)
        #expect(
            neighbours == [
                Neighbour(.a("169.254.1.1"), linkAddress: MACAddress("02:00:00:00:00:01"), device: Device(index: 3))
            ])
        #expect(neighbours.first?.state == .permanent)
    }

    @Test("kernel errors as captured: EEXIST, and ENETUNREACH with the extended acknowledgement")
    func capturedErrors() throws {
        let route = Route(.p("169.254.1.1/32"), device: Device(index: 3, name: "eth0"))
        let exists = #expect(throws: NetlinkError.self) { try replaying(Captured.addExistingRoute).addRoute(route) }
        #expect(exists?.description == "add route 169.254.1.1/32 dev eth0: File exists (EEXIST)")
        #expect(exists?.isExists == true)
        let unreachable = Route(.p("10.9.9.9/32"), gateway: .a("10.200.0.1"), device: Device(index: 3, name: "eth0"))
        let refused = #expect(throws: NetlinkError.self) {
            try replaying(Captured.addRouteViaUnreachableGateway).addRoute(unreachable)
        }
        #expect(
            refused?.description
                == "add route 10.9.9.9/32 via 10.200.0.1 dev eth0: Network is unreachable (ENETUNREACH): Nexthop has invalid gateway"
        )
        #expect(refused?.errno == 101)
        #expect(refused?.detail == "Nexthop has invalid gateway")
    }
}
