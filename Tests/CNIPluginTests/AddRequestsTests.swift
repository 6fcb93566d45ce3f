import CNIPlugin
import IPAMProtocol
import Netlink
import TestSupport
import Testing
import WireJSON

/// ADD against the byte-exact netlink fake (no root): the kernel plays two links that appear once
/// the veth is created. What the plugin sends is checked request by request: links are looked up
/// by name, nothing is ever dumped (vpc-cni.md §16), and the order is the wiring of docs/cni.md §3.
@Suite("nodeboot-cni ADD, request by request")
struct AddRequestsTests {
    static let hostMAC: [UInt8] = [0x0e, 0xd5, 0x5f, 0xd2, 0xc6, 0x5d]
    static let podMAC: [UInt8] = [0x0e, 0xab, 0x0d, 0x96, 0x65, 0x7f]

    /// A little-endian u16/u32 read.
    static func u16(_ bytes: [UInt8], _ at: Int) -> Int { Int(bytes[at]) | Int(bytes[at + 1]) << 8 }
    static func u32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(0) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) }
    }

    /// `IFLA_IFNAME` of an `RTM_GETLINK` request (after the 16-byte header and `struct ifinfomsg`).
    static func requestedName(_ request: [UInt8]) -> String? {
        var offset = 32
        while offset + 4 <= request.count {
            let length = u16(request, offset)
            guard length >= 4 else { return nil }
            if u16(request, offset + 2) == 3 {
                return String(decoding: request[(offset + 4)..<(offset + length)].prefix { $0 != 0 }, as: UTF8.self)
            }
            offset += (length + 3) & ~3
        }
        return nil
    }

    static func attribute(_ type: UInt16, _ data: [UInt8]) -> [UInt8] {
        let length = 4 + data.count
        let padding = [UInt8](repeating: 0, count: (4 - length % 4) % 4)
        return [UInt8(length & 0xFF), UInt8(length >> 8), UInt8(type & 0xFF), UInt8(type >> 8)] + data + padding
    }

    static func le32(_ value: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }

    /// `RTM_NEWLINK` describing a veth end (down, MTU 9001, its peer's index).
    static func link(_ request: [UInt8], index: UInt32, name: String, mac: [UInt8], peer: UInt32) -> [UInt8] {
        let header: [UInt8] = [0, 0, 1, 0] + le32(index) + le32(0x1002) + le32(0)
        let attributes =
            attribute(3, Array(name.utf8) + [0]) + attribute(1, mac) + attribute(4, le32(9001)) + attribute(5, le32(peer))
        return RecordingNetlinkSocket.datagram(
            type: 16, flags: 0, sequence: u32(request, 8), payload: header + attributes)
    }

    /// A side of the kernel: `name` exists (as index `index`, peer `peer`) once `created` says so.
    static func responder(
        name: String, index: UInt32, mac: [UInt8], peer: UInt32, created: Locked<Bool>, createsOnNewLink: Bool
    ) -> RecordingNetlinkSocket.Responder {
        { request in
            let type = u16(request, 4)
            let flags = u16(request, 6)
            if type == 16 && flags & 0x400 != 0 && createsOnNewLink { created.update { $0 = true } }
            if type == 18 {
                guard requestedName(request) == name, created.current else {
                    return [RecordingNetlinkSocket.ack(for: request, errno: 19)]  // ENODEV
                }
                return [link(request, index: index, name: name, mac: mac, peer: peer), RecordingNetlinkSocket.ack(for: request)]
            }
            return [RecordingNetlinkSocket.ack(for: request)]
        }
    }

    @Test("ADD on a secondary ENI: two link gets, the veth, then the pod's and the host's wiring; no dump")
    func requests() throws {
        let hostVeth = hostVethName(namespace: "default", name: "nginx")
        let created = Locked(false)
        let kernel = RecordingKernel()
        kernel.host.respond(
            with: Self.responder(
                name: hostVeth, index: 7, mac: Self.hostMAC, peer: 3, created: created, createsOnNewLink: true))
        kernel.pod.respond(
            with: Self.responder(name: "eth0", index: 3, mac: Self.podMAC, peer: 7, created: created, createsOnNewLink: false))
        let fake = FakeIPAMD { _ in .added(ProtocolTests.assignment) }
        let plugin = Plugin(environment: ProtocolTests.environment, ipam: { _, _ in fake }, kernel: kernel)
        let outcome = plugin.run(stdin: Array(ProtocolTests.config.utf8))
        #expect(outcome.status == 0, "\(outcome.stdout)")
        #expect(
            outcome.stdout
                == #"{"cniVersion":"1.0.0","interfaces":[{"name":"enic440f455693","mac":"0e:d5:5f:d2:c6:5d"},{"name":"eth0","mac":"0e:ab:0d:96:65:7f","sandbox":"/var/run/netns/cni-1234"}],"ips":[{"interface":1,"address":"10.0.97.30/32","gateway":"169.254.1.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}],"dns":{}}"#
                + "\n")

        func kinds(_ sent: [[UInt8]]) -> [String] {
            let names = [16: "newlink", 18: "getlink", 20: "newaddr", 24: "newroute", 28: "newneigh", 32: "newrule"]
            return sent.map { "\(names[Self.u16($0, 4)] ?? "?") 0x\(String(Self.u16($0, 6), radix: 16))" }
        }
        // 0x5 request|ack; 0x605 create|exclusive (add); 0x505 create|replace (replace).
        #expect(
            kinds(kernel.host.sent) == [
                "getlink 0x5", "newlink 0x605", "getlink 0x5", "newlink 0x5", "newroute 0x505", "newrule 0x605",
                "newrule 0x605",
            ])
        #expect(
            kinds(kernel.pod.sent) == [
                "getlink 0x5", "getlink 0x5", "newaddr 0x605", "newlink 0x5", "newroute 0x505", "newroute 0x505",
                "newneigh 0x505",
            ])
        // The pod's gateway entry names the host veth's MAC; the from-rule names table 2.
        let neighbour = try #require(kernel.pod.sent.last)
        #expect(neighbour.indices.contains { neighbour[$0...].starts(with: Self.hostMAC) })
        let fromRule = try #require(kernel.host.sent.last)
        #expect(fromRule[16 + 4] == 2, "fib_rule_hdr table")
        // The veth's pod end is created in the pod's namespace (IFLA_NET_NS_FD, 28, inside the peer).
        let veth = kernel.host.sent[1]
        #expect(veth.indices.contains { veth[$0...].starts(with: [8, 0, 28, 0]) })
    }
}
