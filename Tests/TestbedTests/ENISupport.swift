import AWS
import Foundation
import Testbed
import Testing

/// An EC2 Query call's answer: status, the parsed XML, and the error code when it failed.
struct EC2Answer {
    var status: Int
    var root: XMLElement
    var text: String
    var code: String? { root.path("Errors", "Error")?.string("Code") }
    var message: String? { root.path("Errors", "Error")?.string("Message") }
}

enum EC2 {
    /// A signed EC2 call (form POST, `Version=2016-11-15`) with the role's credentials.
    static func call(_ testbed: Testbed, _ action: String, _ parameters: [(String, String)] = []) async throws
        -> EC2Answer
    {
        let result = try await HTTP.query(
            testbed, service: "ec2", [("Action", action), ("Version", "2016-11-15")] + parameters)
        return EC2Answer(status: result.status, root: try XMLReader.parse(Array(result.body)), text: result.text)
    }

    /// A call that must succeed.
    static func ok(_ testbed: Testbed, _ action: String, _ parameters: [(String, String)] = []) async throws
        -> XMLElement
    {
        let answer = try await call(testbed, action, parameters)
        guard answer.status == 200 else {
            throw TestFailure("\(action) answered \(answer.status): \(answer.text)")
        }
        return answer.root
    }

    /// CreateNetworkInterface in `subnet`; returns the ENI's id.
    static func create(
        _ testbed: Testbed, subnet: String = "subnet-0ac62554", _ extra: [(String, String)] = []
    ) async throws -> String {
        let root = try await ok(testbed, "CreateNetworkInterface", [("SubnetId", subnet)] + extra)
        guard let id = root.path("networkInterface", "networkInterfaceId")?.text else {
            throw TestFailure("CreateNetworkInterface: no id in the answer")
        }
        return id
    }

    static func attach(_ testbed: Testbed, _ eni: String, device: Int) async throws -> EC2Answer {
        try await call(
            testbed, "AttachNetworkInterface",
            [("NetworkInterfaceId", eni), ("InstanceId", "i-1234567890abcdef0"), ("DeviceIndex", String(device))])
    }

    static func describe(_ testbed: Testbed, _ eni: String) async throws -> XMLElement {
        let root = try await ok(testbed, "DescribeNetworkInterfaces", [("NetworkInterfaceId.1", eni)])
        guard let item = root.items("networkInterfaceSet").first else { throw TestFailure("\(eni) not described") }
        return item
    }

    static func available(_ testbed: Testbed, subnet: String = "subnet-0ac62554") async throws -> Int? {
        let root = try await ok(testbed, "DescribeSubnets", [("SubnetId.1", subnet)])
        return root.items("subnetSet").first?.string("availableIpAddressCount").flatMap(Int.init)
    }
}

/// A configuration from JSON text (the same decoding as a configuration file).
func configuration(_ json: String) throws -> TestbedConfiguration {
    try JSONDecoder().decode(TestbedConfiguration.self, from: Data(json.utf8))
}

/// nodeadm's E2E instance as another type, optionally with network settings.
func instanceOfType(_ type: String, network: String = "{}") throws -> TestbedConfiguration {
    try configuration(
        """
        {"instance": {"metadata": {"values": {"instance-id": "i-1234567890abcdef0", "instance-type": "\(type)",
          "local-ipv4": "172.16.34.43", "mac": "0e:49:61:0f:c3:11"}},
          "dynamic": {"values": {"instance-identity-document": {"region": "us-west-2", "availabilityZone": "us-west-2f",
            "instanceId": "i-1234567890abcdef0", "instanceType": "\(type)"}}}},
         "network": \(network)}
        """)
}
