import Netlink
import Testing

/// Each operation's request, byte for byte. The expected bytes are written field by field from
/// the kernel's structures (`struct nlmsghdr`, `ifinfomsg`, `ifaddrmsg`, `rtmsg`,
/// `fib_rule_hdr`, `ndmsg`, `struct rtattr` with 4-byte alignment), host order little-endian.
/// They are also what iproute2 6.1 sends for the command in each comment (read with `strace -e
/// sendmsg -xx`), except the sequence number, which `ip` takes from the clock and RouteNetlink
/// starts at 1.
///
/// Flags: 0x0005 `NLM_F_REQUEST|NLM_F_ACK`; 0x0605 plus `NLM_F_EXCL|NLM_F_CREATE`; 0x0505 plus
/// `NLM_F_REPLACE|NLM_F_CREATE`; 0x0301 `NLM_F_REQUEST|NLM_F_DUMP`.
@Suite("rtnetlink requests, byte for byte")
struct RequestBytesTests {
    static let eth0 = Device(index: 3, name: "eth0")
    static let eni = Device(index: 5, name: "eni1a2b3c4d5e6")

    func expectBytes(
        _ actual: [UInt8], _ expected: String, sourceLocation: SourceLocation = #_sourceLocation
    ) {
        let wanted = hex(expected)
        #expect(
            actual == wanted, "sent:\n\(dumpHex(actual))\nexpected:\n\(dumpHex(wanted))", sourceLocation: sourceLocation)
    }

    // MARK: links

    @Test("ip link set eth0 up / down: RTM_NEWLINK with IFF_UP in the change mask")
    func linkUpDown() throws {
        expectBytes(
            try sentOne { try $0.setLink(Self.eth0, up: true) },
            """
            20000000 1000 0500 01000000 00000000   # nlmsghdr: 32 bytes, RTM_NEWLINK, REQUEST|ACK, seq 1, pid 0
            00 00 0000 03000000                    # ifinfomsg: AF_UNSPEC, pad, type 0, index 3
            01000000 01000000                      #   flags IFF_UP, change IFF_UP
            """)
        expectBytes(
            try sentOne { try $0.setLink(Self.eth0, up: false) },
            """
            20000000 1000 0500 01000000 00000000
            00 00 0000 03000000 00000000 01000000  # flags 0, change IFF_UP
            """)
    }

    @Test("ip link set eth0 mtu 9001: IFLA_MTU")
    func linkMTU() throws {
        expectBytes(
            try sentOne { try $0.setLink(Self.eth0, mtu: 9001) },
            """
            28000000 1000 0500 01000000 00000000   # 40 bytes, RTM_NEWLINK
            00 00 0000 03000000 00000000 00000000  # ifinfomsg, index 3, no flag change
            0800 0400 29230000                     # IFLA_MTU 9001
            """)
    }

    @Test(
        "ip link add eth0 address … mtu 9001 type veth peer name eni… mtu 9001: nested LINKINFO, peer's ifinfomsg"
    )
    func veth() throws {
        expectBytes(
            try sentOne {
                try $0.createVeth(
                    "eth0", address: MACAddress("02:00:0a:00:61:1e"), peer: "eni1a2b3c4d5e6", mtu: 9001)
            },
            """
            80000000 1000 0506 01000000 00000000   # 128 bytes, RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE
            00 00 0000 00000000 00000000 00000000  # ifinfomsg: all zero (the kernel picks the index)
            0a00 0100 02000a00611e 0000            # IFLA_ADDRESS, 6 bytes + 2 padding
            0800 0400 29230000                     # IFLA_MTU 9001
            0900 0300 6574683000 000000            # IFLA_IFNAME "eth0\\0" + padding
            4000 1200                              # IFLA_LINKINFO, 64 bytes
              0800 0100 76657468                   #   IFLA_INFO_KIND "veth" (no NUL, as ip sends it)
              3400 0200                            #   IFLA_INFO_DATA, 52 bytes
                3000 0100                          #     VETH_INFO_PEER, 48 bytes
                  00 00 0000 00000000 00000000 00000000  # the peer's ifinfomsg
                  0800 0400 29230000               #       IFLA_MTU 9001
                  1300 0300 656e693161326233633464356536 00 00  # IFLA_IFNAME "eni1a2b3c4d5e6\\0" + 1 padding
            """)
    }

    @Test("… peer name nb3 address … mtu 9001 netns NS: IFLA_NET_NS_FD carries the namespace's descriptor")
    func vethIntoNamespace() throws {
        let namespace = try NetworkNamespace(path: "/proc/self/ns/net")
        expectBytes(
            try sentOne {
                try $0.createVeth(
                    "nb2", peer: "nb3", peerAddress: MACAddress("02:00:00:00:00:04"), peerNamespace: namespace, mtu: 9001)
            },
            """
            78000000 1000 0506 01000000 00000000   # 120 bytes
            00 00 0000 00000000 00000000 00000000
            0800 0400 29230000                     # IFLA_MTU
            0800 0300 6e623200                     # IFLA_IFNAME "nb2\\0"
            4800 1200                              # IFLA_LINKINFO, 72 bytes
              0800 0100 76657468                   #   "veth"
              3c00 0200                            #   IFLA_INFO_DATA, 60 bytes
                3800 0100                          #     VETH_INFO_PEER, 56 bytes
                  00 00 0000 00000000 00000000 00000000
                  0a00 0100 020000000004 0000      #       IFLA_ADDRESS
                  0800 0400 29230000               #       IFLA_MTU
                  0800 1c00 \(le32(UInt32(namespace.descriptor)))  # IFLA_NET_NS_FD
                  0800 0300 6e623300               #       IFLA_IFNAME "nb3\\0"
            """)
    }

    @Test("ip link set eni… netns NS; ip link del eth0")
    func moveAndDelete() throws {
        let namespace = try NetworkNamespace(path: "/proc/self/ns/net")
        expectBytes(
            try sentOne { try $0.moveLink(Self.eni, to: namespace) },
            """
            28000000 1000 0500 01000000 00000000
            00 00 0000 05000000 00000000 00000000  # index 5
            0800 1c00 \(le32(UInt32(namespace.descriptor)))  # IFLA_NET_NS_FD
            """)
        expectBytes(
            try sentOne { try $0.deleteLink(Self.eth0) },
            """
            20000000 1100 0500 01000000 00000000   # RTM_DELLINK (17)
            00 00 0000 03000000 00000000 00000000
            """)
    }

    @Test("dump links and get one by name: IFLA_EXT_MASK skips the IPv6 statistics")
    func linkQueries() throws {
        let socket = RecordingNetlinkSocket { [RecordingNetlinkSocket.done(for: $0)] }
        let netlink = RouteNetlink(socket: socket)
        _ = try netlink.links()
        socket.respond { [RecordingNetlinkSocket.ack(for: $0, errno: 19)] }  // ENODEV: no such link
        #expect(try netlink.link(named: "eth0") == nil)
        let sent = socket.sent
        try #require(sent.count == 2)
        expectBytes(
            sent[0],
            """
            28000000 1200 0103 01000000 00000000   # 40 bytes, RTM_GETLINK (18), REQUEST|DUMP
            00 00 0000 00000000 00000000 00000000
            0800 1d00 08000000                     # IFLA_EXT_MASK RTEXT_FILTER_SKIP_STATS
            """)
        expectBytes(
            sent[1],
            """
            34000000 1200 0500 02000000 00000000   # 52 bytes, RTM_GETLINK, REQUEST|ACK, seq 2
            00 00 0000 00000000 00000000 00000000
            0800 1d00 08000000                     # IFLA_EXT_MASK
            0900 0300 6574683000 000000            # IFLA_IFNAME "eth0\\0"
            """)
    }

    // MARK: addresses

    @Test("ip addr add 10.0.97.30/32 dev eth0: IFA_LOCAL and IFA_ADDRESS")
    func addressV4() throws {
        expectBytes(
            try sentOne { try $0.addAddress(.p("10.0.97.30/32"), to: Self.eth0) },
            """
            28000000 1400 0506 01000000 00000000   # 40 bytes, RTM_NEWADDR (20), create exclusive
            02 20 00 00 03000000                   # ifaddrmsg: AF_INET, /32, flags 0, scope universe, index 3
            0800 0200 0a00611e                     # IFA_LOCAL 10.0.97.30
            0800 0100 0a00611e                     # IFA_ADDRESS 10.0.97.30
            """)
        expectBytes(
            try sentOne { try $0.deleteAddress(.p("10.0.97.30/32"), from: Self.eth0) },
            """
            28000000 1500 0500 01000000 00000000   # RTM_DELADDR (21)
            02 20 00 00 03000000
            0800 0200 0a00611e
            0800 0100 0a00611e
            """)
    }

    @Test("ip addr add fd00::1e/128 dev eth0 nodad: IFA_F_NODAD in the header's flags")
    func addressV6() throws {
        expectBytes(
            try sentOne { try $0.addAddress(.p("fd00::1e/128"), to: Self.eth0, noDAD: true) },
            """
            40000000 1400 0506 01000000 00000000   # 64 bytes
            0a 80 02 00 03000000                   # AF_INET6, /128, IFA_F_NODAD, universe, index 3
            1400 0200 fd00000000000000000000000000001e   # IFA_LOCAL
            1400 0100 fd00000000000000000000000000001e   # IFA_ADDRESS
            """)
    }

    @Test("address dumps: ifaddrmsg with the family or AF_UNSPEC")
    func addressDump() throws {
        let socket = RecordingNetlinkSocket { [RecordingNetlinkSocket.done(for: $0)] }
        let netlink = RouteNetlink(socket: socket)
        _ = try netlink.addresses()
        _ = try netlink.addresses(family: .inet6)
        expectBytes(socket.sent[0], "18000000 1600 0103 01000000 00000000  00 00 00 00 00000000")
        expectBytes(socket.sent[1], "18000000 1600 0103 02000000 00000000  0a 00 00 00 00000000")
    }

    // MARK: routes

    @Test("ip route add 10.0.97.30/32 dev eni… table 2: scope link by default, RTPROT_BOOT")
    func routeInTable2() throws {
        expectBytes(
            try sentOne { try $0.addRoute(Route(.p("10.0.97.30/32"), device: Self.eni, table: 2)) },
            """
            2c000000 1800 0506 01000000 00000000   # 44 bytes, RTM_NEWROUTE (24), create exclusive
            02 20 00 00                            # rtmsg: AF_INET, dst_len 32, src_len 0, tos 0
            02 03 fd 01 00000000                   #   table 2, RTPROT_BOOT, RT_SCOPE_LINK, RTN_UNICAST, flags 0
            0800 0100 0a00611e                     # RTA_DST 10.0.97.30
            0800 0400 05000000                     # RTA_OIF 5
            """)
    }

    @Test("ip route add 10.0.97.31/32 dev eni… table 300: a table over 255 travels in RTA_TABLE")
    func routeInTable300() throws {
        expectBytes(
            try sentOne { try $0.addRoute(Route(.p("10.0.97.31/32"), device: Self.eni, table: 300)) },
            """
            34000000 1800 0506 01000000 00000000   # 52 bytes
            02 20 00 00 00 03 fd 01 00000000       # rtm_table RT_TABLE_UNSPEC
            0800 0100 0a00611f                     # RTA_DST 10.0.97.31
            0800 0f00 2c010000                     # RTA_TABLE 300
            0800 0400 05000000                     # RTA_OIF
            """)
    }

    @Test("ip route replace 10.0.97.32/32 dev eni… scope link: NLM_F_REPLACE|NLM_F_CREATE, table main")
    func routeReplace() throws {
        expectBytes(
            try sentOne { try $0.replaceRoute(Route(.p("10.0.97.32/32"), device: Self.eni, scope: .link)) },
            """
            2c000000 1800 0505 01000000 00000000
            02 20 00 00 fe 03 fd 01 00000000       # table 254 (main)
            0800 0100 0a006120
            0800 0400 05000000
            """)
    }

    @Test("ip route add default via 169.254.1.1 dev eth0: no RTA_DST, scope universe")
    func defaultRoute() throws {
        expectBytes(
            try sentOne {
                try $0.addRoute(Route(.any(.inet), gateway: .a("169.254.1.1"), device: Self.eth0))
            },
            """
            2c000000 1800 0506 01000000 00000000
            02 00 00 00 fe 03 00 01 00000000       # dst_len 0, main, boot, RT_SCOPE_UNIVERSE, unicast
            0800 0500 a9fe0101                     # RTA_GATEWAY 169.254.1.1
            0800 0400 03000000                     # RTA_OIF 3
            """)
    }

    @Test("ip -6 route add fd00::1e/128 metric 1024 dev eth0; ip route add 10.0.0.0/16 via 10.0.96.1 src 10.0.97.30")
    func routeV6Metric() throws {
        expectBytes(
            try sentOne { try $0.addRoute(Route(.p("fd00::1e/128"), device: Self.eth0, metric: 1024)) },
            """
            40000000 1800 0506 01000000 00000000   # 64 bytes
            0a 80 00 00 fe 03 00 01 00000000       # AF_INET6, /128, RT_SCOPE_UNIVERSE (IPv6 routes have no scope)
            1400 0100 fd00000000000000000000000000001e   # RTA_DST
            0800 0600 00040000                     # RTA_PRIORITY 1024
            0800 0400 03000000                     # RTA_OIF
            """)
        expectBytes(
            try sentOne {
                try $0.addRoute(
                    Route(.p("10.0.0.0/16"), gateway: .a("10.0.96.1"), preferredSource: .a("10.0.97.30")))
            },
            """
            34000000 1800 0506 01000000 00000000   # 52 bytes
            02 10 00 00 fe 03 00 01 00000000       # /16 via a gateway: scope universe
            0800 0100 0a000000                     # RTA_DST 10.0.0.0
            0800 0500 0a006001                     # RTA_GATEWAY
            0800 0700 0a00611e                     # RTA_PREFSRC
            """)
    }

    @Test("ip route del 10.0.97.30/32 dev eni… table 2: scope RT_SCOPE_NOWHERE, protocol and type wildcards")
    func routeDelete() throws {
        expectBytes(
            try sentOne { try $0.deleteRoute(Route(.p("10.0.97.30/32"), device: Self.eni, table: 2)) },
            """
            2c000000 1900 0500 01000000 00000000   # RTM_DELROUTE (25), REQUEST|ACK
            02 20 00 00 02 00 ff 00 00000000       # table 2, RTPROT_UNSPEC, RT_SCOPE_NOWHERE, RTN_UNSPEC
            0800 0100 0a00611e
            0800 0400 05000000
            """)
    }

    @Test("route dump: rtmsg with the family only")
    func routeDump() throws {
        let socket = RecordingNetlinkSocket { [RecordingNetlinkSocket.done(for: $0)] }
        _ = try RouteNetlink(socket: socket).routes(family: .inet, table: 2)
        expectBytes(socket.sent[0], "1c000000 1a00 0103 01000000 00000000  02 00 00 00 00 00 00 00 00000000")
    }

    // MARK: rules

    @Test("ip rule add from 10.0.97.30/32 lookup 2 prio 1536")
    func ruleFrom() throws {
        expectBytes(
            try sentOne { try $0.addRule(Rule(priority: 1536, from: .p("10.0.97.30/32"), table: 2)) },
            """
            2c000000 2000 0506 01000000 00000000   # 44 bytes, RTM_NEWRULE (32), create exclusive
            02 00 20 00                            # fib_rule_hdr: AF_INET, dst_len 0, src_len 32, tos 0
            02 00 00 01 00000000                   #   table 2, res1, res2, FR_ACT_TO_TBL, flags 0
            0800 0200 0a00611e                     # FRA_SRC 10.0.97.30
            0800 0600 00060000                     # FRA_PRIORITY 1536
            """)
    }

    @Test("ip rule add to 10.0.97.30/32 lookup main prio 512")
    func ruleTo() throws {
        expectBytes(
            try sentOne { try $0.addRule(Rule(priority: 512, to: .p("10.0.97.30/32"), table: Route.mainTable)) },
            """
            2c000000 2000 0506 01000000 00000000
            02 20 00 00 fe 00 00 01 00000000       # dst_len 32, table main
            0800 0100 0a00611e                     # FRA_DST
            0800 0600 00020000                     # FRA_PRIORITY 512
            """)
    }

    @Test("ip rule add fwmark 0x80/0x80 lookup main prio 1024")
    func ruleFwmark() throws {
        expectBytes(
            try sentOne {
                try $0.addRule(Rule(priority: 1024, fwmark: 0x80, fwmask: 0x80, table: Route.mainTable))
            },
            """
            34000000 2000 0506 01000000 00000000   # 52 bytes
            02 00 00 00 fe 00 00 01 00000000       # IPv4 without prefixes
            0800 0a00 80000000                     # FRA_FWMARK 0x80
            0800 1000 80000000                     # FRA_FWMASK 0x80
            0800 0600 00040000                     # FRA_PRIORITY 1024
            """)
    }

    @Test("ip rule add from 10.0.97.31 lookup 300 prio 1537: FRA_TABLE for a table over 255")
    func ruleTable300() throws {
        expectBytes(
            try sentOne { try $0.addRule(Rule(priority: 1537, from: .p("10.0.97.31"), table: 300)) },
            """
            34000000 2000 0506 01000000 00000000
            02 00 20 00 00 00 00 01 00000000       # table RT_TABLE_UNSPEC in the header
            0800 0200 0a00611f                     # FRA_SRC
            0800 0f00 2c010000                     # FRA_TABLE 300
            0800 0600 01060000                     # FRA_PRIORITY 1537
            """)
    }

    @Test("ip rule del from 10.0.97.30/32 lookup 2 prio 1536: action FR_ACT_UNSPEC; rule dump")
    func ruleDeleteAndDump() throws {
        expectBytes(
            try sentOne { try $0.deleteRule(Rule(priority: 1536, from: .p("10.0.97.30/32"), table: 2)) },
            """
            2c000000 2100 0500 01000000 00000000   # RTM_DELRULE (33), REQUEST|ACK
            02 00 20 00 02 00 00 00 00000000       # action 0: any
            0800 0200 0a00611e
            0800 0600 00060000
            """)
        let socket = RecordingNetlinkSocket { [RecordingNetlinkSocket.done(for: $0)] }
        _ = try RouteNetlink(socket: socket).rules(family: .inet6)
        expectBytes(socket.sent[0], "1c000000 2200 0103 01000000 00000000  0a 00 00 00 00 00 00 00 00000000")
    }

    // MARK: neighbours

    @Test("ip neigh add|replace 169.254.1.1 lladdr … dev eth0 nud permanent; ip neigh del")
    func neighbour() throws {
        let entry = Neighbour(.a("169.254.1.1"), linkAddress: MACAddress("02:00:00:00:00:02"), device: Self.eth0)
        expectBytes(
            try sentOne { try $0.addNeighbour(entry) },
            """
            30000000 1c00 0506 01000000 00000000   # 48 bytes, RTM_NEWNEIGH (28), create exclusive
            02 00 0000 03000000                    # ndmsg: AF_INET, pads, index 3
            8000 00 00                             #   NUD_PERMANENT, flags 0, type 0
            0800 0100 a9fe0101                     # NDA_DST 169.254.1.1
            0a00 0200 020000000002 0000            # NDA_LLADDR + padding
            """)
        expectBytes(
            try sentOne { try $0.addNeighbour(entry, replace: true) },
            """
            30000000 1c00 0505 01000000 00000000   # REPLACE|CREATE
            02 00 0000 03000000 8000 00 00
            0800 0100 a9fe0101
            0a00 0200 020000000002 0000
            """)
        expectBytes(
            try sentOne { try $0.deleteNeighbour(.a("169.254.1.1"), device: Self.eth0) },
            """
            24000000 1d00 0500 01000000 00000000   # 36 bytes, RTM_DELNEIGH (29)
            02 00 0000 03000000 8000 00 00
            0800 0100 a9fe0101
            """)
    }

    @Test("each request takes the next sequence number")
    func sequenceNumbers() throws {
        let sent = try sentBytes { netlink in
            try netlink.setLink(Self.eth0, up: true)
            try netlink.setLink(Self.eth0, mtu: 1500)
            try netlink.deleteLink(Self.eth0)
        }
        #expect(sent.map { Array($0[8..<12]) } == [[1, 0, 0, 0], [2, 0, 0, 0], [3, 0, 0, 0]])
    }
}
