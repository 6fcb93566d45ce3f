import FoundationEssentials

/// What `DescribeInstances` says about one instance.
public struct EC2Instance: Sendable, Equatable, Codable {
    public var instanceId: String
    public var privateDnsName: String
    public var privateIpAddress: String?
    public var instanceType: String?
    public var availabilityZone: String?
    public var state: String?
    /// The attached ENIs, in the order EC2 lists them.
    public var networkInterfaces: [NetworkInterface]

    /// An ENI as `DescribeInstances` lists it under the instance.
    public struct NetworkInterface: Sendable, Equatable, Codable {
        public var id: String
        public var macAddress: String
        public var attachmentId: String
        public var deviceIndex: Int
        public var networkCardIndex: Int
        /// The attachment's status (`attaching`, `attached`, `detaching`).
        public var status: String
    }

    enum CodingKeys: String, CodingKey {
        case instanceId, privateDnsName, privateIpAddress, instanceType, availabilityZone, state, networkInterfaces
    }

    init(
        instanceId: String, privateDnsName: String, privateIpAddress: String?, instanceType: String?,
        availabilityZone: String?, state: String?, networkInterfaces: [NetworkInterface]
    ) {
        self.instanceId = instanceId
        self.privateDnsName = privateDnsName
        self.privateIpAddress = privateIpAddress
        self.instanceType = instanceType
        self.availabilityZone = availabilityZone
        self.state = state
        self.networkInterfaces = networkInterfaces
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        instanceId = try c.decode(String.self, forKey: .instanceId)
        privateDnsName = try c.decode(String.self, forKey: .privateDnsName)
        privateIpAddress = try c.decodeIfPresent(String.self, forKey: .privateIpAddress)
        instanceType = try c.decodeIfPresent(String.self, forKey: .instanceType)
        availabilityZone = try c.decodeIfPresent(String.self, forKey: .availabilityZone)
        state = try c.decodeIfPresent(String.self, forKey: .state)
        // Written before the field existed: no ENIs known.
        networkInterfaces = try c.decodeIfPresent([NetworkInterface].self, forKey: .networkInterfaces) ?? []
    }
}

/// Network limits of an instance type from `DescribeInstanceTypes`.
public struct InstanceTypeInfo: Sendable, Equatable, Codable {
    public var instanceType: String
    /// Maximum ENIs on the default network card.
    public var maxENIs: Int
    public var ipv4AddressesPerInterface: Int
    public var ipv6AddressesPerInterface: Int?
}

extension AWSClient {
    static let ec2Version = "2016-11-15"

    func ec2Call(_ action: String, _ parameters: [(String, String)]) -> Call {
        Call(
            service: .ec2, name: action, action: "ec2:\(action)", method: "POST", path: "/",
            body: Self.formBody([("Action", action), ("Version", Self.ec2Version)] + parameters),
            contentType: "application/x-www-form-urlencoded; charset=utf-8", errorProtocol: .query)
    }

    func parseXML(_ response: HTTPResponse, operation: String) throws -> XMLElement {
        do {
            return try XMLReader.parse(response.body)
        } catch {
            let endpoint = endpointText(.ec2)
            throw malformed(operation, endpoint: endpoint, "the response is not XML (\(error))")
        }
    }

    /// `ec2:DescribeInstances` for one instance id, with its attached ENIs (a free device index is
    /// chosen from these: IMDS may lag behind an attach).
    public func describeInstance(id: String) async throws -> EC2Instance {
        let operation = "EC2 DescribeInstances"
        let root = try parseXML(try await perform(ec2Call("DescribeInstances", [("InstanceId.1", id)])), operation: operation)
        let instances = root.items("reservationSet").flatMap { $0.items("instancesSet") }
        guard let item = instances.first(where: { $0.string("instanceId") == id }) else {
            let endpoint = endpointText(.ec2)
            throw AWSError(
                .service, operation: operation, endpoint: endpoint, message: "the response lists no instance \(id)",
                code: "InvalidInstanceID.NotFound", hint: "check the region (\(region)): the instance must be in it")
        }
        return EC2Instance(
            instanceId: id, privateDnsName: item.string("privateDnsName") ?? "",
            privateIpAddress: item.string("privateIpAddress"), instanceType: item.string("instanceType"),
            availabilityZone: item.path("placement", "availabilityZone")?.text,
            state: item.path("instanceState", "name")?.text,
            networkInterfaces: item.items("networkInterfaceSet").compactMap { eni in
                guard let id = eni.string("networkInterfaceId"), let attachment = eni.child("attachment") else { return nil }
                return EC2Instance.NetworkInterface(
                    id: id, macAddress: eni.string("macAddress") ?? "", attachmentId: attachment.string("attachmentId") ?? "",
                    deviceIndex: attachment.string("deviceIndex").flatMap(Int.init) ?? 0,
                    networkCardIndex: attachment.string("networkCardIndex").flatMap(Int.init) ?? 0,
                    status: attachment.string("status") ?? "")
            })
    }

    /// `ec2:DescribeInstanceTypes` for one type: ENIs on the default network card, IPs per ENI.
    public func describeInstanceType(_ type: String) async throws -> InstanceTypeInfo {
        let operation = "EC2 DescribeInstanceTypes"
        let endpoint = endpointText(.ec2)
        let root = try parseXML(
            try await perform(ec2Call("DescribeInstanceTypes", [("InstanceType.1", type)])), operation: operation)
        guard let item = root.items("instanceTypeSet").first(where: { $0.string("instanceType") == type }),
            let network = item.child("networkInfo")
        else {
            throw AWSError(
                .service, operation: operation, endpoint: endpoint, message: "no instance type \(type) in the response",
                code: "InvalidInstanceType")
        }
        guard let ipv4 = network.string("ipv4AddressesPerInterface").flatMap(Int.init) else {
            throw malformed(operation, endpoint: endpoint, "\(type) has no ipv4AddressesPerInterface")
        }
        let defaultCard = network.string("defaultNetworkCardIndex").flatMap(Int.init) ?? 0
        let cards = network.items("networkCards")
        var maxENIs: Int?
        if cards.isEmpty {
            maxENIs = network.string("maximumNetworkInterfaces").flatMap(Int.init)
        } else {
            maxENIs = cards.first { $0.string("networkCardIndex").flatMap(Int.init) == defaultCard }?
                .string("maximumNetworkInterfaces").flatMap(Int.init)
        }
        guard let maxENIs else {
            throw malformed(
                operation, endpoint: endpoint,
                "no maximum number of network interfaces on network card \(defaultCard) for \(type)")
        }
        guard maxENIs > 0 else {
            throw malformed(
                operation, endpoint: endpoint,
                "non-positive maximum number of network interfaces on network card \(defaultCard) for \(type): \(maxENIs)")
        }
        return InstanceTypeInfo(
            instanceType: type, maxENIs: maxENIs, ipv4AddressesPerInterface: ipv4,
            ipv6AddressesPerInterface: network.string("ipv6AddressesPerInterface").flatMap(Int.init))
    }
}
