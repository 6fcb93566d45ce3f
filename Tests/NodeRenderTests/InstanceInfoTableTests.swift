import Foundation
import TestSupport
import Testing

@testable import NodeRender

@Suite("embedded instance-type table")
struct InstanceInfoTableTests {
    @Test("the embedded copy is byte-identical to nodeadm's instance-info.jsonl")
    func embeddedMatchesConformance() throws {
        let url = Paths.conformance.appendingPathComponent("nodeadm/_infra/instance-info.jsonl")
        let file = try String(contentsOf: url, encoding: .utf8)
        #expect(InstanceInfoTable.embeddedJSONL + "\n" == file, "run scripts/embed-instance-info.py")
    }

    @Test("every line loads with positive limits and standard max pods above 1 (TestInstanceInfoLoadable)")
    func loadable() {
        let entries = InstanceInfoTable.embedded.entries
        #expect(entries.count == 1384)
        #expect(entries.allSatisfy { !$0.instanceType.isEmpty && $0.defaultMaxENIs > 0 && $0.ipv4AddressesPerInterface > 0 })
        #expect(entries.allSatisfy { $0.standardMaxPods > 1 })
    }

    @Test(
        "nodeadm's samples of standard max pods",
        arguments: [
            ("t3.nano", 4), ("t3.medium", 17), ("m5.large", 29), ("m4.xlarge", 58), ("m5.xlarge", 58), ("m5.8xlarge", 234),
            ("trn1.32xlarge", 247), ("p5.48xlarge", 100), ("c6in.32xlarge", 394), ("c5.18xlarge", 737),
        ])
    func samples(type: String, maxPods: Int) {
        #expect(InstanceInfoTable.embedded.limits(for: type)?.standardMaxPods == maxPods)
    }

    @Test("lookup as nodeadm: leading whitespace tolerated, corrupt lines skipped, corrupt match treated as absent")
    func lookupRules() {
        let table = InstanceInfoTable(
            jsonl: """
                {"instanceType":"corrupt-before.large","defaultMaxENIs":
                  {"instanceType":"fake-type0.xlarge","defaultMaxENIs":3,"ipv4AddressesPerInterface":6}
                {"instanceType":fake-type1.xlarge","defaultMaxENIs":4,"ipv4AddressesPerInterface":15}
                {"instanceType":"fake-type2.xlarge","defaultMaxENIs":4,"ipv4AddressesPerInterface":15}
                """)
        #expect(table.limits(for: "fake-type0.xlarge")?.standardMaxPods == 17)
        #expect(table.limits(for: "fake-type1.xlarge") == nil)
        #expect(table.limits(for: "fake-type2.xlarge")?.defaultMaxENIs == 4)
        #expect(table.limits(for: "fake-type2") == nil)
        #expect(InstanceInfoTable(jsonl: "").limits(for: "m4.xlarge") == nil)
    }
}
