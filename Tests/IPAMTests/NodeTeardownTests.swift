import IPAM
import Netlink
import Testing

/// `NodeTeardown`'s markers (docs/compat.md, the reset section): which links and rules are
/// ipamd's and its plugin's. The kernel side runs in BootstrapTests' ResetKernelNetworkTests.
@Suite("nodeboot reset: ipamd's markers")
struct NodeTeardownTests {
    @Test("a pod's host veth is the prefix and 11 lowercase hex digits, as hostVethName makes it")
    func podVeths() {
        #expect(NodeTeardown.isPodVeth("enic440f455693", prefix: "eni"))
        #expect(NodeTeardown.isPodVeth("podc440f455693", prefix: "pod"))
        for name in ["enioperator", "eni", "enic440f45569", "enic440f4556930", "eniC440F455693", "eth0", "podc440f455693"] {
            #expect(!NodeTeardown.isPodVeth(name, prefix: "eni"), "\(name)")
        }
    }

    @Test("ipamd's and the plugin's rules by priority and shape; the operator's and the kernel's are not")
    func rules() {
        let host = IPPrefix("10.0.1.30/32")!
        let ipamd = [
            Rule(priority: 512, to: host, table: Route.mainTable),
            Rule(priority: 512, to: IPPrefix("2600:1f14::5/128")!, table: Route.mainTable),
            Rule(priority: 1536, from: host, table: 2),
            Rule(priority: 1024, fwmark: 0x80, fwmask: 0x80, table: Route.mainTable),
            Rule(priority: 32765, from: IPPrefix("10.0.1.20/32")!, table: 3),
        ]
        for rule in ipamd { #expect(NodeTeardown.isIPAMDRule(rule), "\(rule)") }
        let others = [
            Rule(priority: 512, to: IPPrefix("10.0.1.0/24")!, table: Route.mainTable),  // not a host
            Rule(priority: 512, to: host, table: 100),
            Rule(priority: 1536, from: host, table: Route.mainTable),
            Rule(priority: 1536, from: host, table: 300),
            Rule(priority: 1024, fwmark: 0x40, fwmask: 0x40, table: Route.mainTable),
            Rule(priority: 1024, fwmark: 0x80, fwmask: 0x80, table: 100),
            Rule(priority: 32765, from: IPPrefix("192.0.2.9/32")!, table: 300),
            Rule(priority: 32765, from: IPPrefix("10.0.1.0/24")!, table: 2),
            Rule(priority: 32765, from: host, table: 2, invert: true),
            Rule(priority: 1000, from: host, table: 2),
            Rule(priority: 32766, table: Route.mainTable),
            Rule(priority: 0, table: Route.localTable),
        ]
        for rule in others { #expect(!NodeTeardown.isIPAMDRule(rule), "\(rule)") }
    }
}
