import AWS
import Foundation
import Support
import TestSupport
import Testing

/// The ENI calls moto (`moto_server` 5.x) supports, through the same client code as against the
/// testbed. moto's known deviations are asserted as such: AssignPrivateIpAddresses answers every
/// address of the ENI, DeleteOnTermination is not kept; prefixes, limits and capacity errors are
/// the testbed's to prove.
@Suite(
    "AWS client ENI calls against moto",
    .enabled(if: MotoServer.isAvailable, "moto_server is not installed (pip install 'moto[server]')"))
struct MotoENITests {
    @Test("create, attach, modify, describe, assign, unassign, tag, detach, delete and the leak query work against moto")
    func callFlow() async throws {
        let moto = try await MotoServer.start()
        let launched = try await moto.boto3(
            """
            ec2 = boto3.client('ec2', **kw)
            i = ec2.run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1, InstanceType='m5.large')['Instances'][0]
            print(i['InstanceId'], i['SubnetId'], i['VpcId'], i['NetworkInterfaces'][0]['NetworkInterfaceId'])
            """
        ).split(separator: " ").map(String.init)
        try #require(launched.count == 4)
        let (instance, subnet, vpc, primary) = (launched[0], launched[1], launched[2], launched[3])
        let client = MotoTests.client(moto)
        defer { Task { await (client.transport as? ProxyingTransport)?.shutdown() } }

        let subnets = try await client.describeSubnets(ids: [subnet])
        #expect(subnets.map(\.id) == [subnet])
        #expect(subnets.first?.vpcId == vpc)
        let free = try #require(subnets.first?.availableIpAddressCount)
        #expect(free > 0)

        let tags = ["node.k8s.amazonaws.com/instance_id": instance, "node.k8s.amazonaws.com/createdAt": "2026-12-01T10:00:00Z"]
        let eni = try await client.createNetworkInterface(
            subnet: subnet, groups: [], description: "nodeboot-\(instance)", addresses: .secondaryIPv4(count: 2),
            tags: tags, clientToken: "nb-moto-1")
        #expect(eni.status == "available")
        #expect(eni.subnetId == subnet)
        #expect(eni.description == "nodeboot-\(instance)")
        #expect(eni.tags == tags)
        #expect(eni.privateIPs.count == 3)
        #expect(eni.primaryIPv4 != nil)
        #expect(eni.macAddress.split(separator: ":").count == 6)
        #expect(try await client.describeSubnets(ids: [subnet]).first?.availableIpAddressCount == free - 3)

        let attachment = try await client.attachNetworkInterface(eni: eni.id, instance: instance, deviceIndex: 1)
        #expect(attachment.hasPrefix("eni-attach-"))
        // moto accepts this and ignores it (DeleteOnTermination stays false there).
        try await client.setDeleteOnTermination(eni: eni.id, attachment: attachment)
        let attached = try #require(try await client.describeNetworkInterfaces(ids: [eni.id]).first)
        #expect(attached.status == "in-use")
        #expect(attached.attachment?.id == attachment)
        #expect(attached.attachment?.deviceIndex == 1)
        #expect(attached.attachment?.instanceId == instance)
        let described = try await client.describeInstance(id: instance)
        #expect(described.networkInterfaces.map(\.id).sorted() == [primary, eni.id].sorted())
        #expect(described.networkInterfaces.first { $0.id == eni.id }?.deviceIndex == 1)

        // moto answers every address of the ENI, real EC2 only the new ones: callers take the difference.
        let known = Set(attached.privateIPs.map(\.address))
        let answered = try await client.assignPrivateIPs(eni: eni.id, count: 2)
        let added = Set(answered).subtracting(known)
        #expect(added.count == 2)
        #expect(Set(answered).isSuperset(of: known))
        try await client.unassignPrivateIPs(eni: eni.id, addresses: Array(added))
        #expect(Set(try await client.describeNetworkInterfaces(ids: [eni.id]).first?.privateIPs.map(\.address) ?? []) == known)

        try await client.createTags(resources: [eni.id], tags: ["cluster.k8s.amazonaws.com/name": "my-cluster"])
        let tagged = try await client.describeNetworkInterfaces(filters: [
            "tag:cluster.k8s.amazonaws.com/name": ["my-cluster"], "attachment.instance-id": [instance],
        ])
        #expect(tagged.map(\.id) == [eni.id])

        try await client.detachNetworkInterface(attachment: attachment)
        #expect(try await client.describeNetworkInterfaces(ids: [eni.id]).first?.status == "available")

        // The leak sweeper's query finds the detached, tagged ENI.
        let leaked = try await client.describeNetworkInterfaces(filters: [
            "tag-key": ["node.k8s.amazonaws.com/instance_id"], "status": ["available"], "vpc-id": [vpc],
        ])
        #expect(leaked.map(\.id) == [eni.id])

        #expect(try await client.deleteNetworkInterface(eni.id))
        #expect(try await client.deleteNetworkInterface(eni.id) == false)
        await #expect {
            _ = try await client.describeNetworkInterfaces(ids: [eni.id])
        } throws: { error in
            (error as? AWSError)?.code == EC2ErrorCode.networkInterfaceNotFound
        }
    }
}
