public import Foundation
import SigV4

/// Further instances besides the configured one, for many agents against one testbed (the
/// fleet test): each its own instance id, private IP, DNS name, MAC, ENI and instance-role
/// credentials, derived from the configured instance (same type, region, AZ, subnet, user
/// data). Agent N reaches its own IMDS under a path prefix on the one IMDS port,
/// `AWS_EC2_METADATA_SERVICE_ENDPOINT=http://127.0.0.1:PORT/i-0f1ee70000000000N`; EC2's
/// DescribeInstances answers for each; the API server maps each one's role credentials to
/// `system:node:<its DNS name>`.
///
/// JSON (the configuration file's `fleet`): `{"count": 500}`.
public struct FleetConfiguration: Codable, Sendable, Equatable {
    /// How many instances besides the configured one (0: none).
    public var count: Int

    public init(count: Int = 0) {
        self.count = count
    }

    public static let maximum = 10_000

    enum CodingKeys: String, CodingKey, CaseIterable { case count }

    public init(from decoder: any Decoder) throws {
        try rejectUnknownKeys(decoder, CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        count = try c.decodeIfPresent(Int.self, forKey: .count) ?? 0
    }

    func validationErrors() -> [String] {
        (0...Self.maximum).contains(count) ? [] : ["fleet.count: \(count) is not between 0 and \(Self.maximum)"]
    }
}

/// One instance of the fleet, as tests and the control API see it.
public struct FleetInstance: Codable, Sendable, Equatable {
    /// 1-based.
    public var index: Int
    public var instanceId: String
    public var privateIp: String
    public var privateDnsName: String
    public var mac: String
    public var networkInterfaceId: String
    /// The path prefix of its IMDS: `/<instance id>`.
    public var imdsPathPrefix: String
    /// Its role credentials' access key id (not a secret: what the request log names), to tell
    /// its AWS calls apart.
    public var accessKeyId: String
}

/// The fleet's instances with what the testbed needs to answer for them.
struct Fleet: Sendable {
    struct Member: Sendable {
        var info: FleetInstance
        var model: InstanceModel
        var role: RoleCredentials
    }

    var members: [Member] = []
    var byInstanceID: [String: Int] = [:]
    var byAccessKey: [String: Int] = [:]

    init() {}

    /// Members 1…count derived from the configured instance: instance id `i-0f1ee7` + 11 hex
    /// digits of N, private IP 172.17.0.0/16 from .10 on, DNS names like the configured ones with
    /// that address, MAC `0e:f1:…`, ENI `eni-0f1ee7…`, random role credentials.
    init(
        _ configuration: FleetConfiguration, aemm: AEMMConfig, role: TestbedConfiguration.Role, privateDnsName: String,
        now: Date
    ) {
        for index in stride(from: 1, through: configuration.count, by: 1) {
            let address = index + 9
            let ip = "172.17.\(address >> 8).\(address & 255)"
            let label = "ip-" + ip.replacingOccurrences(of: ".", with: "-")
            let instanceID = String(format: "i-0f1ee7%011x", index)
            let mac = String(
                format: "0e:f1:%02x:%02x:%02x:%02x", (index >> 24) & 255, (index >> 16) & 255, (index >> 8) & 255,
                index & 255)
            let eni = String(format: "eni-0f1ee7%011x", index)
            func relabel(_ name: String) -> String {
                guard let dot = name.firstIndex(of: ".") else { return label }
                return label + name[dot...]
            }
            let baseHostname =
                aemm.metadata?.values?["local-hostname"]?.text
                ?? AEMMDefaults.metadataValues["local-hostname"]?.text ?? "ip-172-16-34-43.ec2.internal"
            var copy = aemm
            var metadata = copy.metadata ?? AEMMConfig.Section()
            var values = metadata.values ?? [:]
            for (key, value) in [
                ("instance-id", instanceID), ("local-ipv4", ip), ("mac", mac), ("mac-mac", mac),
                ("mac-local-ipv4s", ip), ("mac-network-interface-id", eni),
                ("hostname", relabel(baseHostname)), ("local-hostname", relabel(baseHostname)),
                ("mac-local-hostname", relabel(baseHostname)),
            ] {
                values[key] = .string(value)
            }
            metadata.values = values
            // Paths the configuration names with its MAC follow the member's.
            let baseMAC = aemm.metadata?.values?["mac"]?.text ?? AEMMDefaults.mac
            metadata.paths = metadata.paths?.mapValues { $0.replacingOccurrences(of: baseMAC, with: mac) }
            copy.metadata = metadata
            var dynamic = copy.dynamic ?? AEMMConfig.Section()
            var dynamicValues = dynamic.values ?? [:]
            let overlay = JSONValue.object([("instanceId", .string(instanceID)), ("privateIp", .string(ip))])
            dynamicValues["instance-identity-document"] =
                dynamicValues["instance-identity-document"].map { $0.merging(overlay) } ?? overlay
            dynamic.values = dynamicValues
            copy.dynamic = dynamic
            // Each instance has credentials of its own for the one role, as EC2 hands them out.
            var memberRole = role
            memberRole.accessKeyId = nil
            memberRole.secretAccessKey = nil
            memberRole.sessionToken = nil
            let credentials = Testbed.makeRoleCredentials(memberRole, now: now)
            let dnsName = relabel(privateDnsName)
            let model = InstanceModel(
                aemm: copy, role: role, credentials: credentials, privateDNSName: dnsName, extraInterfaces: [])
            let info = FleetInstance(
                index: index, instanceId: instanceID, privateIp: ip, privateDnsName: dnsName, mac: mac,
                networkInterfaceId: eni, imdsPathPrefix: "/" + instanceID,
                accessKeyId: credentials.credentials.accessKeyID)
            byInstanceID[instanceID] = members.count
            byAccessKey[credentials.credentials.accessKeyID] = members.count
            members.append(Member(info: info, model: model, role: credentials))
        }
    }

    func member(instanceID: String) -> Member? {
        byInstanceID[instanceID].map { members[$0] }
    }

    func member(accessKeyID: String) -> Member? {
        byAccessKey[accessKeyID].map { members[$0] }
    }

    /// The member whose IMDS prefix starts `path`, and the path after it (`/latest/…`).
    func member(imdsPath path: String) -> (Member, String)? {
        guard !members.isEmpty, path.hasPrefix("/i-") else { return nil }
        let rest = path.dropFirst()
        let id = rest.prefix { $0 != "/" }
        guard let member = member(instanceID: String(id)) else { return nil }
        let remainder = rest.dropFirst(id.count)
        return (member, remainder.isEmpty ? "/" : String(remainder))
    }
}
