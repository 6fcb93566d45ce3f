import AWS
import Foundation
import Support
import TestSupport
import Testbed
import Testing

/// The ENI calls of `AWSClient` (EC2+ENI.swift) against the testbed's EC2: parameters as EC2
/// names them, the parsed answers, and EC2's error codes kept for the caller.
@Suite("AWS client ENI calls against the testbed")
struct ENIClientTests {
    static let instance = "i-1234567890abcdef0"
    static let primaryENI = "eni-0f95d3625f5c521cc"
    static let subnet = "subnet-0ac62554"

    /// nodeadm's E2E instance as an m5.large (3 ENIs × 10 IPv4, Nitro), with network settings.
    static func m5Large(network: String = "{}") throws -> TestbedConfiguration {
        try JSONDecoder().decode(
            TestbedConfiguration.self,
            from: Data(
                """
                {"instance": {"metadata": {"values": {"instance-id": "\(instance)", "instance-type": "m5.large",
                  "local-ipv4": "172.16.34.43", "mac": "0e:49:61:0f:c3:11"}},
                  "dynamic": {"values": {"instance-identity-document": {"region": "us-west-2",
                    "availabilityZone": "us-west-2f", "instanceId": "\(instance)", "instanceType": "m5.large"}}}},
                 "network": \(network)}
                """.utf8))
    }

    /// A client signing with the instance role, against a started testbed.
    static func withClient(
        _ configuration: TestbedConfiguration, environment: [String: String] = [:],
        _ body: (Testbed, AWSClient) async throws -> Void
    ) async throws {
        try await TestbedFlowTests.withSession(configuration, environment: environment) { testbed, session in
            try await body(testbed, try await session.client(region: "us-west-2"))
        }
    }

    /// The code of the `AWSError` a call throws, or a failed expectation.
    static func awsError(_ call: () async throws -> Void) async -> AWSError? {
        do {
            try await call()
            Issue.record("the call succeeded")
            return nil
        } catch let error as AWSError {
            return error
        } catch {
            Issue.record("not an AWSError: \(error)")
            return nil
        }
    }

    @Test("create, attach, DeleteOnTermination, describe, assign, unassign, IPv6 prefix, tag, detach, delete")
    func lifecycle() async throws {
        try await Self.withClient(try Self.m5Large()) { testbed, client in
            let subnets = try await client.describeSubnets(ids: [Self.subnet])
            #expect(
                subnets == [
                    EC2Subnet(
                        id: Self.subnet, vpcId: "vpc-d295a6a7", availabilityZone: "us-west-2f", cidrBlock: "192.0.2.0/24",
                        ipv6CidrBlocks: ["2001:db8::/32"], availableIpAddressCount: 251)
                ])

            let tags = [
                "node.k8s.amazonaws.com/instance_id": Self.instance, "node.k8s.amazonaws.com/createdAt": "2026-12-01T10:00:00Z",
            ]
            let eni = try await client.createNetworkInterface(
                subnet: Self.subnet, groups: ["sg-0b07f8f6cb485d4df"], description: "nodeboot-\(Self.instance)",
                addresses: .secondaryIPv4(count: 2), tags: tags, clientToken: "nb-lifecycle-1")
            #expect(eni.status == "available")
            #expect(eni.subnetId == Self.subnet && eni.vpcId == "vpc-d295a6a7")
            #expect(eni.availabilityZone == "us-west-2f")
            #expect(eni.description == "nodeboot-\(Self.instance)")
            #expect(eni.securityGroupIds == ["sg-0b07f8f6cb485d4df"])
            #expect(eni.tags == tags)
            #expect(eni.primaryIPv4 == "192.0.2.4")
            #expect(eni.secondaryIPv4s == ["192.0.2.5", "192.0.2.6"])
            #expect(eni.attachment == nil)
            #expect(eni.macAddress.split(separator: ":").count == 6)
            #expect(eni.interfaceType == "interface")
            // The same ClientToken: the same ENI, nothing new in the subnet.
            let again = try await client.createNetworkInterface(
                subnet: Self.subnet, groups: ["sg-0b07f8f6cb485d4df"], description: "nodeboot-\(Self.instance)",
                addresses: .secondaryIPv4(count: 2), tags: tags, clientToken: "nb-lifecycle-1")
            #expect(again.id == eni.id)
            #expect(try await client.describeSubnets(ids: [Self.subnet]).first?.availableIpAddressCount == 248)

            let attachment = try await client.attachNetworkInterface(eni: eni.id, instance: Self.instance, deviceIndex: 1)
            #expect(attachment.hasPrefix("eni-attach-"))
            try await client.setDeleteOnTermination(eni: eni.id, attachment: attachment)
            let attached = try #require(try await client.describeNetworkInterfaces(ids: [eni.id]).first)
            #expect(attached.status == "in-use")
            #expect(
                attached.attachment
                    == .init(
                        id: attachment, instanceId: Self.instance, deviceIndex: 1, networkCardIndex: 0, status: "attached",
                        deleteOnTermination: true))
            let instance = try await client.describeInstance(id: Self.instance)
            #expect(instance.networkInterfaces.map(\.id) == [Self.primaryENI, eni.id])
            #expect(instance.networkInterfaces.map(\.deviceIndex) == [0, 1])
            #expect(instance.networkInterfaces.last?.attachmentId == attachment)
            #expect(instance.networkInterfaces.last?.macAddress == eni.macAddress)
            #expect(instance.networkInterfaces.last?.status == "attached")

            let added = try await client.assignPrivateIPs(eni: eni.id, count: 3)
            #expect(added == ["192.0.2.7", "192.0.2.8", "192.0.2.9"])
            try await client.unassignPrivateIPs(eni: eni.id, addresses: ["192.0.2.5", "192.0.2.7"])
            let afterUnassign = try #require(try await client.describeNetworkInterfaces(ids: [eni.id]).first)
            #expect(afterUnassign.secondaryIPv4s == ["192.0.2.6", "192.0.2.8", "192.0.2.9"])
            let prefixes = try await client.assignIPv4Prefixes(eni: eni.id, count: 1)
            #expect(prefixes == ["192.0.2.16/28"])
            #expect(try await client.describeNetworkInterfaces(ids: [eni.id]).first?.ipv4Prefixes == ["192.0.2.16/28"])
            try await client.unassignIPv4Prefixes(eni: eni.id, prefixes: prefixes)
            #expect(try await client.describeNetworkInterfaces(ids: [eni.id]).first?.ipv4Prefixes == [])
            let ipv6 = try await client.assignIPv6Prefix(eni: eni.id)
            #expect(ipv6 == ["2001:db8:0:0:1::/80"])
            #expect(try await client.describeNetworkInterfaces(ids: [eni.id]).first?.ipv6Prefixes == ipv6)

            try await client.createTags(resources: [eni.id], tags: ["cluster.k8s.amazonaws.com/name": "my-cluster"])
            let found = try await client.describeNetworkInterfaces(filters: [
                "tag:cluster.k8s.amazonaws.com/name": ["my-cluster"], "status": ["in-use"],
                "attachment.instance-id": [Self.instance],
            ])
            #expect(found.map(\.id) == [eni.id])

            try await client.detachNetworkInterface(attachment: attachment)
            #expect(try await client.describeNetworkInterfaces(ids: [eni.id]).first?.status == "available")
            #expect(try await client.deleteNetworkInterface(eni.id))
            // Already gone counts as deleted.
            #expect(try await client.deleteNetworkInterface(eni.id) == false)
            #expect(try await client.describeSubnets(ids: [Self.subnet]).first?.availableIpAddressCount == 251)

            let withPrefixes = try await client.createNetworkInterface(
                subnet: Self.subnet, groups: [], description: "p", addresses: .ipv4Prefixes(count: 2))
            #expect(withPrefixes.ipv4Prefixes.count == 2 && withPrefixes.privateIPs.count == 1)
            let withIPv6 = try await client.createNetworkInterface(
                subnet: Self.subnet, groups: [], description: "6", addresses: .ipv6Prefixes(count: 1))
            // The deleted ENI's /80 went back to the subnet.
            #expect(withIPv6.ipv6Prefixes == ["2001:db8:0:0:1::/80"])

            // The wire: the EC2 API reference's parameter names, one request per call.
            let actions = await testbed.requests().filter { $0.endpoint == "ec2" }.compactMap(\.action)
            #expect(
                Set(actions) == [
                    "DescribeSubnets", "CreateNetworkInterface", "AttachNetworkInterface", "ModifyNetworkInterfaceAttribute",
                    "DescribeNetworkInterfaces", "DescribeInstances", "AssignPrivateIpAddresses",
                    "UnassignPrivateIpAddresses", "AssignIpv6Addresses", "CreateTags", "DetachNetworkInterface",
                    "DeleteNetworkInterface",
                ])
        }
    }

    @Test("EC2's error codes reach the caller in AWSError.code, the capacity ones with a hint")
    func errorCodes() async throws {
        let small = #"{"subnets": [{"id": "subnet-0ac62554", "cidr": "192.0.2.0/28"}], "detachLagMs": 2000}"#
        try await Self.withClient(try Self.m5Large(network: small)) { testbed, client in
            // A /28: 11 usable addresses, and no aligned /28 free of reserved addresses.
            let full = await Self.awsError {
                _ = try await client.createNetworkInterface(
                    subnet: Self.subnet, groups: [], description: "", addresses: .secondaryIPv4(count: 11))
            }
            #expect(full?.code == EC2ErrorCode.insufficientFreeAddresses)
            #expect(full?.kind == .service && full?.status == 400)
            #expect(full?.hint?.contains("free") == true)
            #expect(full?.description.contains("EC2 CreateNetworkInterface") == true)
            let noBlock = await Self.awsError {
                _ = try await client.createNetworkInterface(
                    subnet: Self.subnet, groups: [], description: "", addresses: .ipv4Prefixes(count: 1))
            }
            #expect(noBlock?.code == EC2ErrorCode.insufficientCidrBlocks)
            #expect(noBlock?.hint?.contains("CIDR reservation") == true)

            let overLimit = await Self.awsError { _ = try await client.assignPrivateIPs(eni: Self.primaryENI, count: 10) }
            #expect(overLimit?.code == EC2ErrorCode.privateIpAddressLimitExceeded)
            #expect(overLimit?.hint != nil)

            var enis: [String] = []
            for _ in 0..<3 {
                enis.append(try await client.createNetworkInterface(subnet: Self.subnet, groups: [], description: "").id)
            }
            let first = try await client.attachNetworkInterface(eni: enis[0], instance: Self.instance, deviceIndex: 1)
            let taken = await Self.awsError {
                _ = try await client.attachNetworkInterface(eni: enis[1], instance: Self.instance, deviceIndex: 1)
            }
            #expect(taken?.code == EC2ErrorCode.invalidParameterValue)
            _ = try await client.attachNetworkInterface(eni: enis[1], instance: Self.instance, deviceIndex: 2)
            let limit = await Self.awsError {
                _ = try await client.attachNetworkInterface(eni: enis[2], instance: Self.instance, deviceIndex: 3)
            }
            #expect(limit?.code == EC2ErrorCode.attachmentLimitExceeded)
            #expect(limit?.hint?.contains("MAX_ENI") == true)

            let inUse = await Self.awsError { try await client.deleteNetworkInterface(enis[0]) }
            #expect(inUse?.code == EC2ErrorCode.invalidParameterValue)
            #expect(inUse?.isNetworkInterfaceInUse == true)
            #expect(taken?.isNetworkInterfaceInUse == false)
            try await client.detachNetworkInterface(attachment: first)
            let detaching = await Self.awsError { try await client.detachNetworkInterface(attachment: first) }
            #expect(detaching?.code == EC2ErrorCode.incorrectState)
            let notFound = await Self.awsError { _ = try await client.describeNetworkInterfaces(ids: ["eni-00000000000000000"]) }
            #expect(notFound?.code == EC2ErrorCode.networkInterfaceNotFound)
            let noAttachment = await Self.awsError {
                try await client.setDeleteOnTermination(eni: enis[2], attachment: "eni-attach-00000000000000000")
            }
            #expect(noAttachment?.code == EC2ErrorCode.attachmentNotFound)
            let noSubnet = await Self.awsError { _ = try await client.describeSubnets(ids: ["subnet-00000000"]) }
            #expect(noSubnet?.code == EC2ErrorCode.subnetNotFound)
            let mismatch = await Self.awsError {
                _ = try await client.createNetworkInterface(subnet: Self.subnet, groups: [], description: "a", clientToken: "t")
                _ = try await client.createNetworkInterface(subnet: Self.subnet, groups: [], description: "b", clientToken: "t")
            }
            #expect(mismatch?.code == EC2ErrorCode.idempotentParameterMismatch)

            await testbed.setFaults([.status(.ec2, 403, action: "AssignPrivateIpAddresses")])
            let denied = await Self.awsError { _ = try await client.assignPrivateIPs(eni: Self.primaryENI, count: 1) }
            #expect(denied?.code == EC2ErrorCode.unauthorizedOperation)
            #expect(denied?.hint?.contains("'ec2:AssignPrivateIpAddresses'") == true)
        }
    }

    @Test("throttled ENI calls are retried by the one retry policy")
    func throttled() async throws {
        var configuration = try Self.m5Large()
        configuration.faults = [.throttle(.ec2, action: "AssignPrivateIpAddresses", count: 2)]
        try await Self.withClient(configuration) { testbed, client in
            let added = try await client.assignPrivateIPs(eni: Self.primaryENI, count: 1)
            #expect(added == ["192.0.2.4"])
            let calls = await testbed.requests().filter { $0.action == "AssignPrivateIpAddresses" }
            #expect(calls.map(\.fault) == ["throttle", "throttle", nil])
        }
    }

    @Test("describeNetworkInterfaces pages with MaxResults and NextToken until the last page")
    func paging() async throws {
        let network = #"{"subnets": [{"id": "subnet-0ac62554", "cidr": "10.1.0.0/22"}]}"#
        try await Self.withClient(try Self.m5Large(network: network)) { testbed, client in
            for n in 0..<260 {
                _ = try await testbed.createDetachedNetworkInterface(
                    DetachedNetworkInterface(
                        description: "nodeboot-leak-\(n)", tags: ["node.k8s.amazonaws.com/instance_id": "i-0dead"]))
            }
            let leaked = try await client.describeNetworkInterfaces(filters: [
                "tag-key": ["node.k8s.amazonaws.com/instance_id"], "status": ["available"], "vpc-id": ["vpc-d295a6a7"],
            ])
            #expect(leaked.count == 260)
            #expect(Set(leaked.map(\.id)).count == 260)
            #expect(leaked.allSatisfy { $0.description.hasPrefix("nodeboot-leak-") })
            let pages = await testbed.requests().filter { $0.action == "DescribeNetworkInterfaces" }
            #expect(pages.count == 2)
            // By id there is no MaxResults (EC2 refuses the two together), so no paging.
            let some = try await client.describeNetworkInterfaces(ids: Array(leaked.prefix(3).map(\.id)))
            #expect(some.count == 3)
        }
    }
}
