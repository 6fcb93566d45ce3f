import Foundation
import SigV4

/// An instance described in amazon-ec2-metadata-mock's config format: `imdsv2`, and for each of
/// `metadata`, `dynamic` and `userdata`, `paths` (aemm key → URL path) and `values` (aemm key →
/// value). Other aemm sections (`spot`, `events`, `server`, …) are accepted and ignored.
public struct AEMMConfig: Codable, Sendable {
    var imdsv2: Bool?
    var metadata: Section?
    var dynamic: Section?
    var userdata: Section?

    struct Section: Codable, Sendable {
        var paths: [String: String]?
        var values: [String: JSONValue]?
    }

    /// nodeadm's E2E instance.
    static func bundled() throws -> AEMMConfig {
        try decode(Data(BundledInstance.json.utf8), source: "the bundled aemm-default-config.json")
    }

    static func load(from path: String, field: String) throws -> AEMMConfig {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw TestbedError(
                .configuration, "\(field): the instance file \(path) cannot be read: \(error.localizedDescription)")
        }
        return try decode(data, source: "\(field): instance file \(path)")
    }

    static func decode(_ data: Data, source: String) throws -> AEMMConfig {
        do {
            return try JSONDecoder().decode(AEMMConfig.self, from: data)
        } catch let error as DecodingError {
            throw TestbedError(.configuration, "\(source): \(describe(error))", hint: "use aemm's config format")
        }
    }
}

/// The simulated instance: every IMDS document by path, and the facts EC2 reports about it.
struct InstanceModel: Sendable {
    struct Interface: Sendable {
        var mac: String
        var deviceNumber: Int
        var networkCard: Int
        var interfaceID: String
        var localIPv4s: [String]
        var ipv6s: [String]
        var subnetID: String
        var subnetIPv4CIDR: String
        var vpcID: String
        var vpcIPv4CIDRs: [String]
        var subnetIPv6CIDRs: [String] = []
        var vpcIPv6CIDRs: [String] = []
        var securityGroupIDs: [String]
        var securityGroupNames: [String]
        var ownerID: String
        var privateDNSName: String
    }

    var imdsv2: Bool
    /// IMDS documents by path (no trailing slash).
    var documents: [String: String]
    var instanceID: String
    var instanceType: String
    var imageID: String
    var region: String
    var availabilityZone: String
    var accountID: String
    var architecture: String
    var privateIP: String
    var privateDNSName: String
    var launchTime: String
    var reservationID: String
    var interfaces: [Interface]

    // swift-format-ignore
    init(
        aemm: AEMMConfig, role: TestbedConfiguration.Role, credentials: RoleCredentials,
        privateDNSName: String, extraInterfaces: [TestbedConfiguration.NetworkInterface]
    ) {
        var values = AEMMDefaults.metadataValues
        for (key, value) in aemm.metadata?.values ?? [:] { values[key] = value }
        let mac = values["mac"]?.text ?? AEMMDefaults.mac
        var paths = AEMMDefaults.metadataPaths
        if mac != AEMMDefaults.mac {
            // aemm writes its default paths with its default MAC; follow the configured one.
            for (key, path) in paths { paths[key] = path.replacingOccurrences(of: AEMMDefaults.mac, with: mac) }
            if aemm.metadata?.values?["mac-mac"] == nil { values["mac-mac"] = .string(mac) }
        }
        for (key, path) in aemm.metadata?.paths ?? [:] { paths[key] = path }

        var identity = AEMMDefaults.identityDocument
        if let overlay = aemm.dynamic?.values?["instance-identity-document"] {
            identity = identity.merging(overlay)
        }
        let accountID = identity["accountId"]?.text ?? "0123456789"

        // The role: its name, its credentials and the instance profile.
        paths["iam-security-credentials"] = "/latest/meta-data/iam/security-credentials/" + role.name
        values["iam-security-credentials-role"] = .string(role.name)
        values["iam-security-credentials"] = credentials.imdsDocument
        values["iam-info"] = .object([
            ("Code", .string("Success")),
            ("LastUpdated", .string(ISO8601.format(credentials.lastUpdated))),
            ("InstanceProfileArn", .string("arn:aws:iam::\(accountID):instance-profile/\(role.name)")),
            ("InstanceProfileId", .string(AEMMDefaults.instanceProfileID)),
        ])

        var documents: [String: String] = [:]
        for (key, path) in paths {
            guard let value = values[key] else { continue }
            let text: String
            switch value {
            case .object, .array: text = value.pretty()
            case .null: continue
            default: text = value.text ?? ""
            }
            documents[InstanceModel.normalize(path)] = text
        }
        let identityPath = aemm.dynamic?.paths?["instance-identity-document"] ?? AEMMDefaults.identityDocumentPath
        documents[InstanceModel.normalize(identityPath)] = identity.pretty()
        let userDataPath = aemm.userdata?.paths?["userdata"] ?? AEMMDefaults.userDataPath
        let userData = aemm.userdata?.values?["userdata"]?.text ?? AEMMDefaults.userData
        if !userData.isEmpty {
            documents[InstanceModel.normalize(userDataPath)] = userData
        }

        func v(_ key: String) -> String { values[key]?.text ?? "" }
        func lines(_ key: String) -> [String] {
            v(key).split(whereSeparator: { $0 == "\n" || $0 == " " }).map(String.init)
        }
        let primary = Interface(
            mac: mac, deviceNumber: Int(v("mac-device-number")) ?? 0,
            networkCard: Int(v("mac-network-interface-card-index")) ?? 0,
            interfaceID: v("mac-network-interface-id"), localIPv4s: lines("mac-local-ipv4s"),
            ipv6s: lines("mac-ipv6-associations"), subnetID: v("mac-subnet-id"),
            subnetIPv4CIDR: v("mac-subnet-ipv4-cidr-block"), vpcID: v("mac-vpc-id"),
            vpcIPv4CIDRs: lines("mac-vpc-ipv4-cidr-blocks"), subnetIPv6CIDRs: lines("mac-subnet-ipv6-cidr-blocks"),
            vpcIPv6CIDRs: lines("mac-vpc-ipv6-cidr-blocks"), securityGroupIDs: lines("mac-security-group-ids"),
            securityGroupNames: lines("mac-security-groups"), ownerID: v("mac-owner-id"),
            privateDNSName: privateDNSName)
        var interfaces = [primary]
        for (index, eni) in extraInterfaces.enumerated() {
            let interface = Interface(
                mac: eni.mac, deviceNumber: eni.deviceNumber, networkCard: eni.networkCard,
                interfaceID: eni.interfaceId ?? String(format: "eni-%017x", 0xe0 + index),
                localIPv4s: eni.localIpv4s, ipv6s: eni.ipv6s, subnetID: eni.subnetId ?? primary.subnetID,
                subnetIPv4CIDR: eni.subnetIpv4CidrBlock ?? primary.subnetIPv4CIDR, vpcID: eni.vpcId ?? primary.vpcID,
                vpcIPv4CIDRs: eni.vpcIpv4CidrBlocks ?? primary.vpcIPv4CIDRs, vpcIPv6CIDRs: primary.vpcIPv6CIDRs,
                securityGroupIDs: primary.securityGroupIDs, securityGroupNames: primary.securityGroupNames,
                ownerID: primary.ownerID,
                privateDNSName: eni.localIpv4s.first.map { "ip-" + $0.replacingOccurrences(of: ".", with: "-") + ".ec2.internal" } ?? "")
            interfaces.append(interface)
            let base = "/latest/meta-data/network/interfaces/macs/\(eni.mac)/"
            documents[base + "device-number"] = String(interface.deviceNumber)
            documents[base + "network-card"] = String(interface.networkCard)
            documents[base + "interface-id"] = interface.interfaceID
            documents[base + "mac"] = interface.mac
            documents[base + "subnet-id"] = interface.subnetID
            documents[base + "subnet-ipv4-cidr-block"] = interface.subnetIPv4CIDR
            documents[base + "vpc-id"] = interface.vpcID
            documents[base + "vpc-ipv4-cidr-blocks"] = interface.vpcIPv4CIDRs.joined(separator: "\n")
            documents[base + "security-group-ids"] = interface.securityGroupIDs.joined(separator: "\n")
            documents[base + "owner-id"] = interface.ownerID
            if !interface.localIPv4s.isEmpty {
                documents[base + "local-ipv4s"] = interface.localIPv4s.joined(separator: "\n")
                documents[base + "local-hostname"] = interface.privateDNSName
            }
            if !interface.ipv6s.isEmpty { documents[base + "ipv6s"] = interface.ipv6s.joined(separator: "\n") }
        }

        self.imdsv2 = aemm.imdsv2 ?? true
        self.documents = documents
        self.instanceID = v("instance-id")
        self.instanceType = v("instance-type")
        self.imageID = identity["imageId"]?.text ?? v("ami-id")
        self.region = identity["region"]?.text ?? v("placement-region")
        self.availabilityZone = identity["availabilityZone"]?.text ?? v("placement-availability-zone")
        self.accountID = accountID
        self.architecture = identity["architecture"]?.text ?? "x86_64"
        self.privateIP = v("local-ipv4")
        self.privateDNSName = privateDNSName
        self.launchTime = identity["pendingTime"]?.text ?? "2019-10-31T07:02:24Z"
        self.reservationID = v("reservation-id")
        self.interfaces = interfaces
    }

    static func normalize(_ path: String) -> String {
        var p = path
        while p.count > 1 && p.hasSuffix("/") { p.removeLast() }
        return p.isEmpty ? "/" : p
    }

    /// The document at a path, or the listing of a directory (children one per line,
    /// subdirectories with a trailing `/`), or nil.
    func lookup(_ rawPath: String) -> String? {
        InstanceModel.lookup(rawPath, in: documents)
    }

    /// ``lookup(_:)`` in a given set of documents.
    static func lookup(_ rawPath: String, in documents: [String: String]) -> String? {
        let path = InstanceModel.normalize(rawPath)
        if let document = documents[path] { return document }
        let prefix = path == "/" ? "/" : path + "/"
        var children: Set<String> = []
        for key in documents.keys where key.hasPrefix(prefix) {
            let rest = key.dropFirst(prefix.count)
            if let slash = rest.firstIndex(of: "/") {
                children.insert(String(rest[..<slash]) + "/")
            } else {
                children.insert(String(rest))
            }
        }
        guard !children.isEmpty else { return nil }
        // A name that is both a document and a directory is listed as the directory.
        let names = children.filter { !$0.hasSuffix("/") && children.contains($0 + "/") ? false : true }
        return names.sorted().joined(separator: "\n")
    }
}

/// The instance role's credentials as IMDS serves them.
struct RoleCredentials: Sendable {
    var credentials: SigV4Credentials
    var lastUpdated: Date
    var expiration: Date

    var imdsDocument: JSONValue {
        .object([
            ("Code", .string("Success")),
            ("LastUpdated", .string(ISO8601.format(lastUpdated))),
            ("Type", .string("AWS-HMAC")),
            ("AccessKeyId", .string(credentials.accessKeyID)),
            ("SecretAccessKey", .string(credentials.secretAccessKey)),
            ("Token", .string(credentials.sessionToken ?? "")),
            ("Expiration", .string(ISO8601.format(expiration))),
        ])
    }
}
