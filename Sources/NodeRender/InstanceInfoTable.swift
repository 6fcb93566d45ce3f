import Support
import WireJSON

/// Network limits of an instance type, as nodeadm's `instance-info.jsonl` records them.
public struct InstanceNetworkLimits: Sendable, Equatable {
    public var instanceType: String
    /// ENIs on the default network card.
    public var defaultMaxENIs: Int
    public var ipv4AddressesPerInterface: Int

    public init(instanceType: String, defaultMaxENIs: Int, ipv4AddressesPerInterface: Int) {
        self.instanceType = instanceType
        self.defaultMaxENIs = defaultMaxENIs
        self.ipv4AddressesPerInterface = ipv4AddressesPerInterface
    }

    /// A line of the table: the three members (others, as nodeadm's Go struct ignores them, skipped).
    init(json: JSONObject) throws(JSONShapeError) {
        instanceType = try json.string("instanceType")
        defaultMaxENIs = try json.int("defaultMaxENIs")
        ipv4AddressesPerInterface = try json.int("ipv4AddressesPerInterface")
    }

    /// `ENIs × (IPs − 1) + 2`.
    public var standardMaxPods: Int {
        KubeReserved.standardMaxPods(maxENIs: defaultMaxENIs, ipv4PerENI: ipv4AddressesPerInterface)
    }
}

/// The instance-type table nodeadm embeds (1,384 types), looked up as nodeadm does: line by line,
/// leading whitespace tolerated, corrupt lines skipped, the first exact match wins.
public struct InstanceInfoTable: Sendable {
    let jsonl: String

    /// The embedded copy of nodeadm's table.
    public static let embedded = InstanceInfoTable(jsonl: embeddedJSONL)

    public init(jsonl: String) { self.jsonl = jsonl }

    public func limits(for instanceType: String) -> InstanceNetworkLimits? {
        // Only the lines that hold the quoted type are decoded; they are found in the UTF-8 bytes
        // (String.split and contains over the 110 KB table cost ~3 ms of a 19 ms init, issue 11).
        let needle = Array("\"\(instanceType)\"".utf8)
        let table = Array(jsonl.utf8)
        var from = 0
        while let hit = table.firstIndex(of: needle, from: from) {
            let start = table[..<hit].lastIndex(of: UInt8(ascii: "\n")).map { $0 + 1 } ?? 0
            let end = table[hit...].firstIndex(of: UInt8(ascii: "\n")) ?? table.count
            // A line that is not valid JSON is skipped, as nodeadm skips it (with a warning there).
            if let entry = try? InstanceNetworkLimits(json: JSONObject(parsing: table[start..<end])),
                entry.instanceType == instanceType
            {
                return entry
            }
            from = end
        }
        return nil
    }

    /// Every parseable entry, for checks of the whole table.
    public var entries: [InstanceNetworkLimits] {
        jsonl.split(separator: "\n").compactMap { line in
            // Corrupt lines are not entries.
            try? InstanceNetworkLimits(json: JSONObject(parsing: line.utf8))
        }
    }
}
