import Netlink
import Testing

/// The address values the operations take and print: strict parsing, `ip`'s text.
@Suite("addresses, prefixes and MACs as text")
struct AddressTextTests {
    @Test(
        "IPv4 and IPv6 text round trips to ip's spelling",
        arguments: [
            ("10.0.97.30", "10.0.97.30"), ("0.0.0.0", "0.0.0.0"), ("255.255.255.255", "255.255.255.255"),
            ("fd00::1e", "fd00::1e"), ("::", "::"), ("::1", "::1"), ("fe80::aff:fe00:611e", "fe80::aff:fe00:611e"),
            ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"), ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
            ("1:0:0:2:0:0:0:3", "1:0:0:2::3"), ("1:2:3:4:5:6:7::", "1:2:3:4:5:6:7:0"), ("1:0:3:4:5:6:7:8", "1:0:3:4:5:6:7:8"),
            ("FD00::ABCD", "fd00::abcd"), ("::ffff:10.0.0.1", "::ffff:10.0.0.1"), ("::ffff:a00:1", "::ffff:10.0.0.1"),
            ("::1.2.3.4", "::1.2.3.4"),
            ("1::", "1::"), ("1:0:0:1:0:0:1:1", "1::1:0:0:1:1"),
        ])
    func roundTrip(text: String, printed: String) throws {
        let address = try #require(IPAddress(text))
        #expect(address.description == printed)
        #expect(IPAddress(printed) == address)
    }

    @Test(
        "text that is not an address is refused",
        arguments: [
            "", "1.2.3", "1.2.3.4.5", "256.0.0.1", "010.0.0.1", "+1.2.3.4", "1.2.3.-4", "10.0.0.1 ", "1::2::3", ":::",
            "1:2:3:4:5:6:7:8:9", "12345::", "g::1", "1:2:3:4:5:6:7", ":1::", "1::+2", "fe80::1%eth0", "::1.2.3",
        ])
    func refused(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test("IPv4 values and bytes: 0x0A00611E is 10.0.97.30")
    func values() throws {
        let address = IPAddress(v4: 0x0A00_611E)
        #expect(address.description == "10.0.97.30")
        #expect(address.bytes == [10, 0, 97, 30])
        #expect(address.v4Value == 0x0A00_611E)
        #expect(IPAddress(bytes: [0xfd] + [UInt8](repeating: 0, count: 14) + [0x1e])?.description == "fd00::1e")
        #expect(IPAddress(bytes: [1, 2, 3]) == nil)
        #expect(try #require(IPAddress("fd00::1")).v4Value == nil)
    }

    @Test("prefixes: host bits kept, network cleared, /32 or /128 for a bare address, lengths checked")
    func prefixes() throws {
        let prefix = try #require(IPPrefix("10.0.97.30/20"))
        #expect(prefix.description == "10.0.97.30/20")
        #expect(prefix.network.description == "10.0.96.0")
        #expect(IPPrefix("10.0.97.30")?.description == "10.0.97.30/32")
        #expect(IPPrefix("fd00::1e")?.description == "fd00::1e/128")
        #expect(IPPrefix("fd00::1:2:3/80")?.network.description == "fd00::")
        #expect(IPPrefix("10.0.0.0/0")?.network.description == "0.0.0.0")
        #expect(IPPrefix.any(.inet6).description == "::/0")
        for bad in ["10.0.0.0/33", "fd00::/129", "10.0.0.0/", "10.0.0.0/+1", "10.0.0.0/1/2", "/8", "10.0.0.0/08a"] {
            #expect(IPPrefix(bad) == nil, "\(bad)")
        }
    }

    @Test("addresses inside a prefix: membership, the address at an offset (with carries), the offset of an address")
    func offsets() throws {
        let pd = try #require(IPPrefix("10.0.0.240/28"))
        #expect(pd.address(at: 0)?.description == "10.0.0.240" && pd.address(at: 15)?.description == "10.0.0.255")
        #expect(pd.address(at: 16) == nil)
        let last = try #require(IPAddress("10.0.0.255"))
        let outside = try #require(IPAddress("10.0.1.0"))
        #expect(pd.contains(last) && !pd.contains(outside))
        #expect(try #require(IPPrefix("10.0.0.0/16")).address(at: 256 + 255)?.description == "10.0.1.255")
        let v6 = try #require(IPPrefix("2001:db8:0:0:1::/80"))
        #expect(v6.address(at: 1)?.description == "2001:db8::1:0:0:1")
        #expect(v6.address(at: 0x1_0000_ffff)?.description == "2001:db8::1:1:0:ffff")
        #expect(v6.address(at: 1 << 48) == nil)
        #expect(v6.offset(of: try #require(IPAddress("2001:db8::1:1:0:ffff"))) == 0x1_0000_ffff)
        #expect(v6.offset(of: try #require(IPAddress("2001:db8::2:0:0:1"))) == nil)
        #expect(!v6.contains(try #require(IPAddress("10.0.0.1"))))
        #expect(try #require(IPPrefix("::/0")).address(at: .max)?.description == "::ffff:ffff:ffff:ffff")
    }

    @Test("MAC addresses: six two-digit parts, printed lowercase")
    func macs() throws {
        #expect(MACAddress("02:00:0A:00:61:1E")?.description == "02:00:0a:00:61:1e")
        #expect(MACAddress("02:00:0a:00:61:1e")?.bytes == [2, 0, 10, 0, 0x61, 0x1e])
        for bad in [
            "02:00:0a:00:61", "2:0:0:0:0:0", "02:00:0a:00:61:1e:00", "02-00-0a-00-61-1e", "+2:00:0a:00:61:1e",
            "0g:00:00:00:00:00",
        ] {
            #expect(MACAddress(bad) == nil, "\(bad)")
        }
        #expect(MACAddress(bytes: [1, 2, 3]) == nil)
    }
}
