import Glibc
import Netlink
import Testing

/// How refusals, silence and garbage from the kernel reach the caller: always a `NetlinkError`
/// that names the operation and its object.
@Suite("rtnetlink errors")
struct ErrorTests {
    static let eni = Device(index: 5, name: "eni1a2b")
    static let route = Route(.p("10.0.97.30/32"), device: eni)

    /// A RouteNetlink whose kernel refuses every request with `errno`.
    func refusing(_ errno: Int32, message: String? = nil) -> RouteNetlink {
        RouteNetlink(
            socket: RecordingNetlinkSocket { [RecordingNetlinkSocket.ack(for: $0, errno: errno, message: message)] })
    }

    @Test(
        "NLMSG_ERROR's errno: the C library's text and the symbolic name, after the operation and object",
        arguments: [
            (EEXIST, "File exists (EEXIST)"), (ENOENT, "No such file or directory (ENOENT)"),
            (ESRCH, "No such process (ESRCH)"), (ENODEV, "No such device (ENODEV)"),
            (EPERM, "Operation not permitted (EPERM)"), (EINVAL, "Invalid argument (EINVAL)"),
            (ENETUNREACH, "Network is unreachable (ENETUNREACH)"),
            (EADDRNOTAVAIL, "Cannot assign requested address (EADDRNOTAVAIL)"),
            (EOPNOTSUPP, "Operation not supported (EOPNOTSUPP)"), (EBUSY, "Device or resource busy (EBUSY)"),
            (ENOBUFS, "No buffer space available (ENOBUFS)"), (200, "Unknown error 200 (errno 200)"),
        ])
    func errnoText(errno: Int32, text: String) {
        let error = #expect(throws: NetlinkError.self) { try refusing(errno).addRoute(Self.route) }
        #expect(error?.description == "add route 10.0.97.30/32 dev eni1a2b: " + text)
        #expect(error?.code == .kernel)
        #expect(error?.errno == errno)
        #expect(error?.isExists == (errno == EEXIST))
        #expect(error?.isNotFound == [ENOENT, ESRCH, ENODEV, EADDRNOTAVAIL].contains(errno))
    }

    @Test("each operation names its object as the ip command would")
    func operationNames() throws {
        let eth0 = Device(index: 3, name: "eth0")
        let namespace = try NetworkNamespace(path: "/proc/self/ns/net")
        let netlink = refusing(EPERM)
        let cases: [(String, () throws -> Void)] = [
            ("set link eth0 up", { try netlink.setLink(eth0, up: true) }),
            ("set link eth0 mtu 9001", { try netlink.setLink(eth0, mtu: 9001) }),
            (
                "add veth eth0 peer eni1a2b netns /proc/self/ns/net",
                { try netlink.createVeth("eth0", peer: "eni1a2b", peerNamespace: namespace) }
            ),
            ("move link eth0 to netns /proc/self/ns/net", { try netlink.moveLink(eth0, to: namespace) }),
            ("delete link if7", { try netlink.deleteLink(Device(index: 7)) }),
            ("get link eth0", { _ = try netlink.link(named: "eth0") }),
            ("dump links", { _ = try netlink.links() }),
            ("add address 10.0.97.30/32 dev eth0", { try netlink.addAddress(.p("10.0.97.30/32"), to: eth0) }),
            ("delete address fd00::1e/128 dev eth0", { try netlink.deleteAddress(.p("fd00::1e"), from: eth0) }),
            ("dump inet6 addresses", { _ = try netlink.addresses(family: .inet6) }),
            (
                "replace route default via 10.0.96.1 dev eth0 table 2 metric 10",
                { try netlink.replaceRoute(Route(.any(.inet), gateway: .a("10.0.96.1"), device: eth0, table: 2, metric: 10)) }
            ),
            ("delete route 10.0.97.30/32 dev eni1a2b", { try netlink.deleteRoute(Self.route) }),
            ("dump inet routes table main", { _ = try netlink.routes(family: .inet, table: Route.mainTable) }),
            (
                "add rule from 10.0.97.30/32 lookup 2 prio 1536",
                { try netlink.addRule(Rule(priority: 1536, from: .p("10.0.97.30/32"), table: 2)) }
            ),
            (
                "delete rule not from all to 10.0.0.0/16 fwmark 0x80/0x80 lookup main prio 1024",
                {
                    try netlink.deleteRule(
                        Rule(
                            priority: 1024, to: .p("10.0.0.0/16"), fwmark: 0x80, fwmask: 0x80, table: 254, invert: true))
                }
            ),
            ("dump inet rules", { _ = try netlink.rules(family: .inet) }),
            (
                "add neighbour 169.254.1.1 lladdr 02:00:00:00:00:01 dev eth0 nud permanent",
                {
                    try netlink.addNeighbour(
                        Neighbour(.a("169.254.1.1"), linkAddress: MACAddress("02:00:00:00:00:01"), device: eth0))
                }
            ),
            ("delete neighbour 169.254.1.1 dev eth0", { try netlink.deleteNeighbour(.a("169.254.1.1"), device: eth0) }),
            ("dump inet neighbours", { _ = try netlink.neighbours(family: .inet) }),
        ]
        for (operation, call) in cases {
            let error = #expect(throws: NetlinkError.self, "\(operation)") { try call() }
            #expect(error?.description == operation + ": Operation not permitted (EPERM)")
        }
    }

    @Test("the kernel's extended acknowledgement text follows the errno, capped or not")
    func extendedAck() throws {
        let capped = #expect(throws: NetlinkError.self) {
            try refusing(EINVAL, message: "Invalid prefix for given prefix length").addRoute(
                Route(.p("10.0.97.30/24"), device: Self.eni))
        }
        #expect(
            capped?.description
                == "add route 10.0.97.30/24 dev eni1a2b: Invalid argument (EINVAL): Invalid prefix for given prefix length")
        // Without NETLINK_CAP_ACK the whole request comes back before the attributes.
        let uncapped = RouteNetlink(
            socket: RecordingNetlinkSocket { request in
                var payload = withUnsafeBytes(of: -EINVAL) { Array($0) } + request
                payload += [0x0c, 0x00, 0x01, 0x00] + Array("too big".utf8) + [0]
                return [
                    RecordingNetlinkSocket.datagram(
                        type: 2, flags: 0x200, sequence: UInt32(request[8]), payload: payload)
                ]
            })
        let error = #expect(throws: NetlinkError.self) { try uncapped.setLink(Self.eni, mtu: 70000) }
        #expect(error?.detail == "too big")
    }

    @Test("no answer within the socket's timeout: a timeout naming the operation")
    func silence() {
        let netlink = RouteNetlink(socket: RecordingNetlinkSocket { _ in [] })
        let error = #expect(throws: NetlinkError.self) {
            try netlink.addRule(Rule(priority: 1536, from: .p("10.0.97.30/32"), table: 2))
        }
        #expect(error?.code == .timeout)
        #expect(error?.description == "add rule from 10.0.97.30/32 lookup 2 prio 1536: no answer from the kernel in time")
    }

    @Test("a socket call that fails: its errno, with the call named last")
    func socketFailure() {
        struct BrokenSocket: NetlinkSocket {
            func send(_ datagram: [UInt8]) throws(NetlinkError) { throw NetlinkError(.socket, "send", errno: EBADF) }
            func receive() throws(NetlinkError) -> [UInt8] { [] }
        }
        let error = #expect(throws: NetlinkError.self) {
            try RouteNetlink(socket: BrokenSocket()).setLink(Self.eni, up: true)
        }
        #expect(error?.description == "set link eni1a2b up: Bad file descriptor (EBADF): send")
    }

    @Test("an answer to an earlier request (another sequence number) is skipped")
    func staleAnswer() throws {
        let socket = RecordingNetlinkSocket { request in
            var stale = RecordingNetlinkSocket.ack(for: request, errno: EEXIST)
            stale[8] &-= 1  // the previous sequence number
            return [stale, RecordingNetlinkSocket.ack(for: request)]
        }
        try RouteNetlink(socket: socket).addRoute(Self.route)
        #expect(socket.sent.count == 1)
    }

    @Test("a message whose length runs past its datagram: malformed, not a crash")
    func malformed() {
        let netlink = RouteNetlink(
            socket: RecordingNetlinkSocket { request in
                var ack = RecordingNetlinkSocket.ack(for: request)
                ack[0] = 200  // nlmsg_len 200 in a 36-byte datagram
                return [ack]
            })
        let error = #expect(throws: NetlinkError.self) { try netlink.addRoute(Self.route) }
        #expect(
            error?.description
                == "add route 10.0.97.30/32 dev eni1a2b: malformed reply: a message length runs past its datagram")
        let short = RouteNetlink(
            socket: RecordingNetlinkSocket { request in
                [RecordingNetlinkSocket.datagram(type: 2, flags: 0, sequence: UInt32(request[8]), payload: [0, 0])]
            })
        #expect(throws: NetlinkError.self) { try short.addRoute(Self.route) }
    }

    @Test("a dump the kernel marks interrupted is read again, up to 3 times")
    func interruptedDump() throws {
        // NLMSG_DONE with NLM_F_MULTI | NLM_F_DUMP_INTR.
        @Sendable func done(_ request: [UInt8], interrupted: Bool) -> [UInt8] {
            RecordingNetlinkSocket.datagram(
                type: 3, flags: interrupted ? 0x12 : 0x02, sequence: UInt32(request[8]), payload: [0, 0, 0, 0])
        }
        let once = RecordingNetlinkSocket { request in [done(request, interrupted: request[8] == 1)] }
        #expect(try RouteNetlink(socket: once).rules(family: .inet).isEmpty)
        #expect(once.sent.count == 2)

        let always = RecordingNetlinkSocket { [done($0, interrupted: true)] }
        let error = #expect(throws: NetlinkError.self) { try RouteNetlink(socket: always).rules(family: .inet) }
        #expect(error?.code == .interrupted)
        #expect(
            error?.description
                == "dump inet rules: dump interrupted: the kernel's table changed during each of 3 dumps (NLM_F_DUMP_INTR)")
        #expect(always.sent.count == 3)
    }

    @Test("a dump that fails part way reports its errno in NLMSG_DONE")
    func failedDump() {
        let netlink = RouteNetlink(
            socket: RecordingNetlinkSocket { request in
                [
                    RecordingNetlinkSocket.datagram(
                        type: 3, flags: 2, sequence: UInt32(request[8]),
                        payload: withUnsafeBytes(of: -ENOBUFS) { Array($0) })
                ]
            })
        let error = #expect(throws: NetlinkError.self) { try netlink.links() }
        #expect(error?.description == "dump links: No buffer space available (ENOBUFS)")
    }

    @Test("interface names the kernel would refuse are refused before anything is sent")
    func names() {
        let socket = RecordingNetlinkSocket()
        let netlink = RouteNetlink(socket: socket)
        let long = #expect(throws: NetlinkError.self) { try netlink.createVeth("eth0", peer: "eni0123456789abcd") }
        #expect(
            long?.description
                == "add veth eth0 peer eni0123456789abcd: invalid argument: interface name 'eni0123456789abcd' is not 1 to 15 bytes long"
        )
        #expect(long?.code == .invalidArgument)
        #expect(throws: NetlinkError.self) { try netlink.link(named: "") }
        #expect(throws: NetlinkError.self) { try netlink.link(named: "a/b") }
        #expect(throws: NetlinkError.self) { try netlink.link(named: "a b") }
        #expect(throws: NetlinkError.self) { try netlink.link(named: "..") }
        #expect(throws: NetlinkError.self) { try NetworkNamespace(named: "../etc") }
        #expect(socket.sent.isEmpty)
    }

    @Test("a namespace that does not exist: open netns names the path")
    func missingNamespace() {
        let error = #expect(throws: NetlinkError.self) { try NetworkNamespace(named: "nbtest-does-not-exist") }
        #expect(
            error?.description == "open netns /var/run/netns/nbtest-does-not-exist: No such file or directory (ENOENT)")
    }
}
