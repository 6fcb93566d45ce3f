import FoundationEssentials

/// What `DescribeInstances` says about one instance.
public struct EC2Instance: Sendable, Equatable, Codable {
    public var instanceId: String
    public var privateDnsName: String
    public var privateIpAddress: String?
    public var instanceType: String?
    public var availabilityZone: String?
    public var state: String?
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

    /// `ec2:DescribeInstances` for one instance id.
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
            state: item.path("instanceState", "name")?.text)
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
