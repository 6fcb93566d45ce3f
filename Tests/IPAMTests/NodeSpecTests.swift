import Foundation
import IPAM
import Testing

@Suite("ipamd.json (NodeSpec): what init tells the daemon")
struct NodeSpecTests {
    static let good =
        #"{"schema":"nodeboot.ipamd/v1","cluster":"my-cluster","ipFamily":"ipv4","maxPods":29,"instanceType":"m5.large","limits":{"maxENIs":3,"ipv4PerENI":10,"source":"table"},"vethPrefix":"eni"}"#
        + "\n"

    static func parse(_ text: String) throws(NodeSpec.Refused) -> NodeSpec {
        try NodeSpec.parse(Array(text.utf8), path: "/etc/nodeboot/ipamd.json")
    }

    /// `good` with `member` replaced (or removed with nil).
    static func with(_ member: String, _ value: String?) -> String {
        var object = try! JSONSerialization.jsonObject(with: Data(good.utf8)) as! [String: Any]
        let parts = member.split(separator: ".").map(String.init)
        let parsed = value.map { try! JSONSerialization.jsonObject(with: Data($0.utf8), options: .fragmentsAllowed) }
        if parts.count == 2 {
            var inner = object[parts[0]] as! [String: Any]
            inner[parts[1]] = parsed
            object[parts[0]] = inner
        } else {
            object[parts[0]] = parsed
        }
        return String(decoding: try! JSONSerialization.data(withJSONObject: object), as: UTF8.self)
    }

    @Test("the documented example reads to its values")
    func example() throws {
        let spec = try Self.parse(Self.good)
        #expect(
            spec
                == NodeSpec(
                    cluster: "my-cluster", ipFamily: .ipv4, maxPods: 29, instanceType: "m5.large",
                    limits: NodeSpec.Limits(maxENIs: 3, ipv4PerENI: 10, source: "table"), vethPrefix: "eni"))
        #expect(NodeSpec.path == "/etc/nodeboot/ipamd.json")
    }

    @Test("limits may be absent (init did not learn them), cluster null; unknown members are ignored")
    func optional() throws {
        let spec = try Self.parse(Self.with("limits", nil))
        #expect(spec.limits == nil)
        #expect(try Self.parse(Self.with("cluster", "null")).cluster == nil)
        #expect(try Self.parse(Self.with("cluster", "\"\"")).cluster == nil)
        #expect(try Self.parse(Self.with("later", "{\"x\":1}")).maxPods == 29)
        #expect(try Self.parse(Self.with("ipFamily", "\"ipv6\"")).ipFamily == .ipv6)
    }

    @Test(
        "refusals name the file, the field and the fix",
        arguments: [
            (
                "schema", "\"nodeboot.ipamd/v2\"",
                "field 'schema' is 'nodeboot.ipamd/v2'; this nodeboot reads only nodeboot.ipamd/v1"
            ),
            ("schema", nil, "field 'schema' is missing"),
            ("maxPods", "0", "field 'maxPods' is 0, not a whole number of 1 or more"),
            ("maxPods", "\"29\"", "field 'maxPods' is \"29\", not a whole number of 1 or more"),
            ("maxPods", nil, "field 'maxPods' is missing"),
            ("ipFamily", "\"dual\"", "field 'ipFamily' is 'dual', not ipv4 or ipv6"),
            ("instanceType", nil, "field 'instanceType' is missing"),
            ("limits.maxENIs", nil, "field 'limits.maxENIs' is missing"),
            ("limits.ipv4PerENI", "-1", "field 'limits.ipv4PerENI' is -1, not a whole number of 1 or more"),
            ("vethPrefix", "\"vethx\"", "field 'vethPrefix' is 'vethx', not 1 to 4 lowercase letters or digits"),
        ] as [(String, String?, String)])
    func refused(_ member: String, _ value: String?, _ message: String) {
        let error = #expect(throws: NodeSpec.Refused.self) { try Self.parse(Self.with(member, value)) }
        #expect(
            error?.description.hasPrefix("/etc/nodeboot/ipamd.json: " + message + "; ") == true, "\(String(describing: error))")
        #expect(error?.field == member)
        #expect(error?.description.contains("nodeboot init") == true)
    }

    @Test("a file that is not a JSON object is refused as a whole")
    func notJSON() {
        for text in ["{\"schema\":", "[1]", ""] {
            let error = #expect(throws: NodeSpec.Refused.self) { try Self.parse(text) }
            #expect(error?.field == nil)
            #expect(error?.description.hasPrefix("/etc/nodeboot/ipamd.json: is not") == true)
        }
    }

    @Test("load: nil when the file is absent, the spec when present, a refusal naming the file's path")
    func load() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("nodespec-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/ipamd.json"
        #expect(try NodeSpec.load(path) == nil)
        try Data(Self.good.utf8).write(to: URL(fileURLWithPath: path))
        #expect(try NodeSpec.load(path)?.maxPods == 29)
        try Data(Self.with("maxPods", "0").utf8).write(to: URL(fileURLWithPath: path))
        let error = #expect(throws: NodeSpec.Refused.self) { try NodeSpec.load(path) }
        #expect(error?.description.hasPrefix("\(path): field 'maxPods' is 0") == true)
    }
}
