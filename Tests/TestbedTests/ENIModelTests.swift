import AWS
import Foundation
import Synchronization
import TestSupport
import Testbed
import Testing

/// EC2's ENI API as the testbed plays it: subnets of finite size, the instance type's limits,
/// idempotency, detach and delete states, IMDS after a lag, the attach hooks, the control API.
@Suite("EC2 ENI API and network model")
struct ENIModelTests {
    static let primarySubnet = "subnet-0ac62554"

    @Test("DescribeSubnets: the primary ENI's subnet from IMDS, 5 addresses reserved; a configured subnet wins")
    func subnets() async throws {
        try await withTestbed { testbed throws in
            let root = try await EC2.ok(testbed, "DescribeSubnets")
            let subnet = try #require(root.items("subnetSet").first)
            #expect(subnet.string("subnetId") == Self.primarySubnet)
            #expect(subnet.string("cidrBlock") == "192.0.2.0/24")
            #expect(subnet.string("vpcId") == "vpc-d295a6a7")
            #expect(subnet.string("availabilityZone") == "us-west-2f")
            // 256 − 5 reserved; the primary's 172.16.34.43 lies outside the block and takes nothing.
            #expect(subnet.string("availableIpAddressCount") == "251")
            #expect(subnet.path("ipv6CidrBlockAssociationSet", "item", "ipv6CidrBlock")?.text == "2001:db8::/32")
            let unknown = try await EC2.call(testbed, "DescribeSubnets", [("SubnetId.1", "subnet-00000000")])
            #expect(unknown.status == 400)
            #expect(unknown.code == "InvalidSubnetID.NotFound")
        }
        let small = try configuration(#"{"network": {"subnets": [{"id": "subnet-0ac62554", "cidr": "192.0.2.0/27"}]}}"#)
        try await withTestbed(small) { testbed throws in
            #expect(try await EC2.available(testbed) == 27)
        }
    }

    @Test("CreateNetworkInterface: lowest free addresses, tags at creation, available, in the subnet's count")
    func create() async throws {
        try await withTestbed { testbed throws in
            let root = try await EC2.ok(
                testbed, "CreateNetworkInterface",
                [
                    ("SubnetId", Self.primarySubnet), ("Description", "nodeboot-i-1234567890abcdef0"),
                    ("SecurityGroupId.1", "sg-0b07f8f6cb485d4df"), ("SecondaryPrivateIpAddressCount", "2"),
                    ("TagSpecification.1.ResourceType", "network-interface"),
                    ("TagSpecification.1.Tag.1.Key", "node.k8s.amazonaws.com/instance_id"),
                    ("TagSpecification.1.Tag.1.Value", "i-1234567890abcdef0"),
                ])
            let eni = try #require(root.child("networkInterface"))
            #expect(eni.string("status") == "available")
            #expect(eni.string("description") == "nodeboot-i-1234567890abcdef0")
            #expect(eni.string("privateIpAddress") == "192.0.2.4")
            let addresses = eni.items("privateIpAddressesSet").map { ($0.string("privateIpAddress"), $0.string("primary")) }
            #expect(addresses.map(\.0) == ["192.0.2.4", "192.0.2.5", "192.0.2.6"])
            #expect(addresses.map(\.1) == ["true", "false", "false"])
            #expect(eni.items("tagSet").map { $0.string("key") } == ["node.k8s.amazonaws.com/instance_id"])
            #expect(eni.items("groupSet").map { $0.string("groupName") } == ["ura-launch-wizard-harry-1"])
            #expect(eni.string("macAddress")?.hasPrefix("02:") == true)
            #expect(eni.child("attachment") == nil)
            #expect(try await EC2.available(testbed) == 248)

            let other = try await EC2.call(testbed, "CreateNetworkInterface", [("SubnetId", "subnet-00000000")])
            #expect(other.code == "InvalidSubnetID.NotFound")
            let missing = try await EC2.call(testbed, "CreateNetworkInterface")
            #expect(missing.code == "MissingParameter")
            let both = try await EC2.call(
                testbed, "CreateNetworkInterface",
                [("SubnetId", Self.primarySubnet), ("SecondaryPrivateIpAddressCount", "1"), ("Ipv4PrefixCount", "1")])
            #expect(both.code == "InvalidParameterCombination")
        }
    }

    @Test("a /27 subnet runs out: InsufficientFreeAddressesInSubnet, and a delete gives the addresses back")
    func exhaustion() async throws {
        let small = try configuration(#"{"network": {"subnets": [{"id": "subnet-0ac62554", "cidr": "192.0.2.0/27"}]}}"#)
        try await withTestbed(small) { testbed throws in
            let big = try await EC2.create(testbed, [("SecondaryPrivateIpAddressCount", "20")])
            #expect(try await EC2.available(testbed) == 6)
            let tooMany = try await EC2.call(
                testbed, "CreateNetworkInterface",
                [("SubnetId", Self.primarySubnet), ("SecondaryPrivateIpAddressCount", "6")])
            #expect(tooMany.status == 400)
            #expect(tooMany.code == "InsufficientFreeAddressesInSubnet")
            // Nothing was taken by the refused call.
            #expect(try await EC2.available(testbed) == 6)
            let last = try await EC2.create(testbed, [("SecondaryPrivateIpAddressCount", "5")])
            let lastItem = try await EC2.describe(testbed, last)
            // .30 is the last usable address of 192.0.2.0/27 (.31 is the broadcast address).
            #expect(lastItem.items("privateIpAddressesSet").last?.string("privateIpAddress") == "192.0.2.30")
            #expect(try await EC2.available(testbed) == 0)
            let assign = try await EC2.call(
                testbed, "AssignPrivateIpAddresses", [("NetworkInterfaceId", big), ("SecondaryPrivateIpAddressCount", "1")])
            #expect(assign.code == "InsufficientFreeAddressesInSubnet")
            _ = try await EC2.ok(testbed, "DeleteNetworkInterface", [("NetworkInterfaceId", big)])
            #expect(try await EC2.available(testbed) == 21)
            // The lowest free address is handed out first again.
            let again = try await EC2.create(testbed)
            #expect(try await EC2.describe(testbed, again).string("privateIpAddress") == "192.0.2.4")
        }
    }

    @Test("a /28 prefix needs 16 aligned free addresses: fragmentation gives InsufficientCidrBlocks while addresses remain")
    func fragmentation() async throws {
        let config = try configuration(
            #"{"network": {"subnets": [{"id": "subnet-0f0000000000000aa", "cidr": "10.0.0.0/26"}]}}"#)
        try await withTestbed(config) { testbed throws in
            let subnet = "subnet-0f0000000000000aa"
            #expect(try await EC2.available(testbed, subnet: subnet) == 59)
            // 10.0.0.4 … 10.0.0.16: the block at .16 is broken; .0 holds the reserved addresses, .48 the broadcast one.
            _ = try await EC2.create(testbed, subnet: subnet, [("SecondaryPrivateIpAddressCount", "12")])
            let withPrefix = try await EC2.create(testbed, subnet: subnet, [("Ipv4PrefixCount", "1")])
            let item = try await EC2.describe(testbed, withPrefix)
            #expect(item.items("ipv4PrefixSet").map { $0.string("ipv4Prefix") } == ["10.0.0.32/28"])
            // Its primary address came first, from the lowest free: 10.0.0.17.
            #expect(item.string("privateIpAddress") == "10.0.0.17")
            let free = try #require(try await EC2.available(testbed, subnet: subnet))
            #expect(free == 59 - 13 - 1 - 16)
            #expect(free >= 16)
            let refused = try await EC2.call(
                testbed, "CreateNetworkInterface", [("SubnetId", subnet), ("Ipv4PrefixCount", "1")])
            #expect(refused.code == "InsufficientCidrBlocks")
            let assign = try await EC2.call(
                testbed, "AssignPrivateIpAddresses", [("NetworkInterfaceId", withPrefix), ("Ipv4PrefixCount", "1")])
            #expect(assign.code == "InsufficientCidrBlocks")
            // Single addresses are still there.
            _ = try await EC2.ok(
                testbed, "AssignPrivateIpAddresses",
                [("NetworkInterfaceId", withPrefix), ("SecondaryPrivateIpAddressCount", "3")])
            // Unassigning the prefix frees its block for the next one.
            _ = try await EC2.ok(
                testbed, "UnassignPrivateIpAddresses", [("NetworkInterfaceId", withPrefix), ("Ipv4Prefix.1", "10.0.0.32/28")])
            let reassigned = try await EC2.ok(
                testbed, "AssignPrivateIpAddresses", [("NetworkInterfaceId", withPrefix), ("Ipv4PrefixCount", "1")])
            #expect(reassigned.items("assignedIpv4PrefixSet").map { $0.string("ipv4Prefix") } == ["10.0.0.32/28"])
        }
    }

    @Test("AssignPrivateIpAddresses answers only the new addresses; addresses and prefixes share the per-ENI limit")
    func perENILimit() async throws {
        let config = try instanceOfType("m5.large")
        try await withTestbed(config) { testbed throws in
            let primary = "eni-0f95d3625f5c521cc"
            let nine = try await EC2.ok(
                testbed, "AssignPrivateIpAddresses", [("NetworkInterfaceId", primary), ("SecondaryPrivateIpAddressCount", "9")])
            let assigned = nine.items("assignedPrivateIpAddressesSet").compactMap { $0.string("privateIpAddress") }
            #expect(assigned == (4...12).map { "192.0.2.\($0)" })
            let over = try await EC2.call(
                testbed, "AssignPrivateIpAddresses", [("NetworkInterfaceId", primary), ("SecondaryPrivateIpAddressCount", "1")])
            #expect(over.status == 400)
            #expect(over.code == "PrivateIpAddressLimitExceeded")
            _ = try await EC2.ok(
                testbed, "UnassignPrivateIpAddresses",
                [("NetworkInterfaceId", primary), ("PrivateIpAddress.1", "192.0.2.11"), ("PrivateIpAddress.2", "192.0.2.12")])
            let prefix = try await EC2.ok(
                testbed, "AssignPrivateIpAddresses", [("NetworkInterfaceId", primary), ("Ipv4PrefixCount", "1")])
            #expect(prefix.items("assignedIpv4PrefixSet").map { $0.string("ipv4Prefix") } == ["192.0.2.16/28"])
            #expect(prefix.child("assignedPrivateIpAddressesSet") == nil)
            // 1 primary + 7 secondaries + 1 prefix = 9 of 10 slots.
            let twoPrefixes = try await EC2.call(
                testbed, "AssignPrivateIpAddresses", [("NetworkInterfaceId", primary), ("Ipv4PrefixCount", "2")])
            #expect(twoPrefixes.code == "PrivateIpAddressLimitExceeded")
            let notThere = try await EC2.call(
                testbed, "UnassignPrivateIpAddresses", [("NetworkInterfaceId", primary), ("PrivateIpAddress.1", "192.0.2.200")])
            #expect(notThere.code == "InvalidParameterValue")
            #expect(notThere.message?.contains("not assigned") == true)
            let primaryAddress = try await EC2.call(
                testbed, "UnassignPrivateIpAddresses", [("NetworkInterfaceId", primary), ("PrivateIpAddress.1", "172.16.34.43")])
            #expect(primaryAddress.code == "InvalidParameterValue")
        }
        // m4.xlarge (the default instance) is a Xen type: no prefix delegation.
        try await withTestbed { testbed throws in
            let xen = try await EC2.call(
                testbed, "AssignPrivateIpAddresses", [("NetworkInterfaceId", "eni-0f95d3625f5c521cc"), ("Ipv4PrefixCount", "1")])
            #expect(xen.code == "InvalidParameterValue")
            #expect(xen.message?.contains("Nitro") == true)
        }
    }

    @Test("AttachNetworkInterface: a taken device index, the type's ENI limit, an attached ENI; DescribeInstances lists them")
    func attach() async throws {
        let config = try instanceOfType("m5.large")
        try await withTestbed(config) { testbed throws in
            let a = try await EC2.create(testbed)
            let b = try await EC2.create(testbed)
            let c = try await EC2.create(testbed)
            let first = try await EC2.attach(testbed, a, device: 1)
            #expect(first.status == 200)
            #expect(first.root.string("attachmentId")?.hasPrefix("eni-attach-") == true)
            #expect(first.root.string("networkCardIndex") == "0")
            let taken = try await EC2.attach(testbed, b, device: 1)
            #expect(taken.code == "InvalidParameterValue")
            #expect(taken.message == "Instance 'i-1234567890abcdef0' already has an interface attached at device index '1'.")
            let again = try await EC2.attach(testbed, a, device: 2)
            #expect(again.code == "InvalidNetworkInterface.InUse")
            #expect(try await EC2.attach(testbed, b, device: 2).status == 200)
            let limit = try await EC2.attach(testbed, c, device: 3)
            #expect(limit.code == "AttachmentLimitExceeded")
            #expect(limit.message?.contains("m5.large") == true)
            let card = try await EC2.call(
                testbed, "AttachNetworkInterface",
                [
                    ("NetworkInterfaceId", c), ("InstanceId", "i-1234567890abcdef0"), ("DeviceIndex", "1"),
                    ("NetworkCardIndex", "1"),
                ])
            #expect(card.code == "InvalidParameterValue")
            let otherInstance = try await EC2.call(
                testbed, "AttachNetworkInterface",
                [("NetworkInterfaceId", c), ("InstanceId", "i-0000000000000000f"), ("DeviceIndex", "1")])
            #expect(otherInstance.code == "InvalidInstanceID.NotFound")

            let instances = try await EC2.ok(testbed, "DescribeInstances", [("InstanceId.1", "i-1234567890abcdef0")])
            let enis = try #require(instances.path("reservationSet", "item", "instancesSet", "item")).items("networkInterfaceSet")
            #expect(enis.map { $0.string("networkInterfaceId") } == ["eni-0f95d3625f5c521cc", a, b])
            #expect(enis.map { $0.path("attachment", "deviceIndex")?.text } == ["0", "1", "2"])
            let described = try await EC2.describe(testbed, a)
            #expect(described.string("status") == "in-use")
            #expect(described.path("attachment", "instanceId")?.text == "i-1234567890abcdef0")
            #expect(described.path("attachment", "deleteOnTermination")?.text == "false")
            let attachment = try #require(described.path("attachment", "attachmentId")?.text)
            _ = try await EC2.ok(
                testbed, "ModifyNetworkInterfaceAttribute",
                [
                    ("NetworkInterfaceId", a), ("Attachment.AttachmentId", attachment),
                    ("Attachment.DeleteOnTermination", "true"),
                ])
            #expect(try await EC2.describe(testbed, a).path("attachment", "deleteOnTermination")?.text == "true")
            let wrong = try await EC2.call(
                testbed, "ModifyNetworkInterfaceAttribute",
                [
                    ("NetworkInterfaceId", b), ("Attachment.AttachmentId", attachment),
                    ("Attachment.DeleteOnTermination", "true"),
                ])
            #expect(wrong.code == "InvalidAttachmentID.NotFound")
        }
    }

    @Test("detach: detaching for the lag, delete refused while in use, IncorrectState twice, NotFound once deleted")
    func detachAndDelete() async throws {
        let config = try instanceOfType("m5.large", network: #"{"detachLagMs": 400}"#)
        try await withTestbed(config) { testbed throws in
            let eni = try await EC2.create(testbed)
            let attachment = try #require(try await EC2.attach(testbed, eni, device: 1).root.string("attachmentId"))
            let inUse = try await EC2.call(testbed, "DeleteNetworkInterface", [("NetworkInterfaceId", eni)])
            #expect(inUse.status == 400)
            #expect(inUse.code == "InvalidParameterValue")
            #expect(inUse.message == "Network interface '\(eni)' is currently in use.")
            _ = try await EC2.ok(testbed, "DetachNetworkInterface", [("AttachmentId", attachment)])
            let detaching = try await EC2.describe(testbed, eni)
            #expect(detaching.string("status") == "detaching")
            #expect(detaching.path("attachment", "status")?.text == "detaching")
            #expect(
                try await EC2.call(testbed, "DeleteNetworkInterface", [("NetworkInterfaceId", eni)]).code
                    == "InvalidParameterValue")
            let twice = try await EC2.call(testbed, "DetachNetworkInterface", [("AttachmentId", attachment)])
            #expect(twice.code == "IncorrectState")
            let reattach = try await EC2.attach(testbed, eni, device: 2)
            #expect(reattach.code == "IncorrectState")
            try await Task.sleep(for: .milliseconds(500))
            let available = try await EC2.describe(testbed, eni)
            #expect(available.string("status") == "available")
            #expect(available.child("attachment") == nil)
            let gone = try await EC2.call(testbed, "DetachNetworkInterface", [("AttachmentId", attachment)])
            #expect(gone.code == "InvalidAttachmentID.NotFound")
            _ = try await EC2.ok(testbed, "DeleteNetworkInterface", [("NetworkInterfaceId", eni)])
            let again = try await EC2.call(testbed, "DeleteNetworkInterface", [("NetworkInterfaceId", eni)])
            #expect(again.code == "InvalidNetworkInterfaceID.NotFound")
            #expect(again.message == "The networkInterface ID '\(eni)' does not exist")
            let primary = try await EC2.call(
                testbed, "DetachNetworkInterface", [("AttachmentId", "eni-attach-0f95d3625f5c521cc")])
            #expect(primary.code == "OperationNotPermitted")
        }
    }

    @Test("a repeated ClientToken answers the ENI it created; other parameters are IdempotentParameterMismatch")
    func clientToken() async throws {
        try await withTestbed { testbed throws in
            let parameters = [("SecondaryPrivateIpAddressCount", "2"), ("ClientToken", "nb-8d3c1a")]
            let first = try await EC2.create(testbed, parameters)
            let second = try await EC2.create(testbed, parameters)
            #expect(first == second)
            #expect(await testbed.networkInterfaces().count == 2)
            #expect(try await EC2.available(testbed) == 248)
            let root = try await EC2.ok(
                testbed, "CreateNetworkInterface", [("SubnetId", Self.primarySubnet)] + parameters)
            #expect(root.string("clientToken") == "nb-8d3c1a")
            let mismatch = try await EC2.call(
                testbed, "CreateNetworkInterface",
                [("SubnetId", Self.primarySubnet), ("SecondaryPrivateIpAddressCount", "3"), ("ClientToken", "nb-8d3c1a")])
            #expect(mismatch.code == "IdempotentParameterMismatch")
        }
    }

    @Test("IMDS shows an attach, an address change and a detach after the lag; the primary's documents stay as they were")
    func imdsLag() async throws {
        let config = try instanceOfType("m5.large", network: #"{"imdsLagMs": 1500}"#)
        try await withTestbed(config) { testbed throws in
            let token = try await HTTP.validToken(testbed)
            let macs = "/latest/meta-data/network/interfaces/macs/"
            let primaryBase = macs + "0e:49:61:0f:c3:11/"
            func get(_ path: String) async throws -> HTTPResult { try await HTTP.imds(testbed, path, token: token) }
            let names = try await get(primaryBase).text.split(separator: "\n").map(String.init)
            var before: [String: String] = [:]
            for name in names { before[name] = try await get(primaryBase + name).text }
            #expect(before["local-ipv4s"] == "172.16.34.43")
            #expect(before["device-number"] == "0")

            let eni = try await EC2.create(testbed, [("SecondaryPrivateIpAddressCount", "2")])
            let mac = try #require(try await EC2.describe(testbed, eni).string("macAddress"))
            let attachment = try #require(try await EC2.attach(testbed, eni, device: 1).root.string("attachmentId"))
            #expect(try await get(macs).text == "0e:49:61:0f:c3:11/")
            try await Task.sleep(for: .milliseconds(1800))
            #expect(try await get(macs).text.contains(mac + "/"))
            #expect(try await get(macs + mac + "/device-number").text == "1")
            #expect(try await get(macs + mac + "/interface-id").text == eni)
            #expect(try await get(macs + mac + "/local-ipv4s").text == "192.0.2.4\n192.0.2.5\n192.0.2.6")
            #expect(try await get(macs + mac + "/subnet-ipv4-cidr-block").text == "192.0.2.0/24")
            #expect(try await get(macs + mac + "/ipv4-prefix").status == 404)
            var after: [String: String] = [:]
            for name in names { after[name] = try await get(primaryBase + name).text }
            #expect(after == before)

            // Addresses added to the primary show after the lag too.
            _ = try await EC2.ok(
                testbed, "AssignPrivateIpAddresses",
                [("NetworkInterfaceId", "eni-0f95d3625f5c521cc"), ("SecondaryPrivateIpAddressCount", "1")])
            #expect(try await get(primaryBase + "local-ipv4s").text == "172.16.34.43")
            try await Task.sleep(for: .milliseconds(1800))
            #expect(try await get(primaryBase + "local-ipv4s").text == "172.16.34.43\n192.0.2.7")

            // With the lag set to 0 over the control API, a detach shows at once.
            let lag = try await HTTP.send(
                testbed.awsEndpoint + "/_testbed/ec2/lag", method: "PUT", body: Data(#"{"imdsLagMs": 0}"#.utf8))
            #expect(lag.status == 200)
            _ = try await EC2.ok(testbed, "DetachNetworkInterface", [("AttachmentId", attachment)])
            #expect(try await get(macs).text == "0e:49:61:0f:c3:11/")
            #expect(try await get(macs + mac + "/device-number").status == 404)
        }
    }

    @Test("the attach and detach hooks see the ENI's MAC and device before EC2 answers")
    func hooks() async throws {
        let config = try instanceOfType("m5.large")
        try await withTestbed(config) { testbed throws in
            let events = Locked<[ENIEvent]>([])
            await testbed.setNetworkHooks(
                onAttach: { event in
                    try? await Task.sleep(for: .milliseconds(200))  // a slow hypervisor; a cancelled sleep only shortens it
                    events.update { $0.append(event) }
                },
                onDetach: { event in events.update { $0.append(event) } })
            let eni = try await EC2.create(testbed)
            let mac = try #require(try await EC2.describe(testbed, eni).string("macAddress"))
            let attachment = try #require(try await EC2.attach(testbed, eni, device: 2).root.string("attachmentId"))
            let attached = try #require(events.current.first)
            #expect(attached.kind == .attach)
            #expect(attached.networkInterfaceId == eni)
            #expect(attached.macAddress == mac)
            #expect(attached.deviceIndex == 2)
            #expect(attached.networkCardIndex == 0)
            #expect(attached.attachmentId == attachment)
            #expect(attached.primaryIPv4 == "192.0.2.4")
            #expect(attached.subnetCidr == "192.0.2.0/24")
            _ = try await EC2.ok(testbed, "DetachNetworkInterface", [("AttachmentId", attachment)])
            #expect(events.current.map(\.kind) == [.attach, .detach])
            #expect(events.current.last?.macAddress == mac)
            // A failed attach runs no hook.
            _ = try await EC2.attach(testbed, "eni-00000000000000000", device: 3)
            #expect(events.current.count == 2)
        }
    }

    @Test("fault rules apply to the ENI actions as to the others")
    func faults() async throws {
        try await withTestbed { testbed throws in
            await testbed.setFaults([
                .throttle(.ec2, action: "CreateNetworkInterface", count: 1), .status(.ec2, 500, action: "DescribeSubnets"),
            ])
            let throttled = try await EC2.call(testbed, "CreateNetworkInterface", [("SubnetId", Self.primarySubnet)])
            #expect(throttled.status == 503)
            #expect(throttled.code == "RequestLimitExceeded")
            #expect(await testbed.networkInterfaces().count == 1)
            _ = try await EC2.create(testbed)
            let failed = try await EC2.call(testbed, "DescribeSubnets")
            #expect(failed.status == 500)
            #expect(failed.code == "InternalError")
            let records = await testbed.requests().filter { $0.action == "CreateNetworkInterface" }
            #expect(records.map(\.fault) == ["throttle", nil])
        }
    }

    @Test("DescribeNetworkInterfaces: filters with wildcards, pages of MaxResults, MaxResults with ids refused")
    func describeFilters() async throws {
        try await withTestbed { testbed throws in
            var created: [String] = []
            for n in 0..<7 {
                created.append(
                    try await EC2.create(
                        testbed,
                        [
                            ("Description", n < 4 ? "nodeboot-i-1234567890abcdef0" : "aws-K8S-i-1234567890abcdef0"),
                            ("TagSpecification.1.ResourceType", "network-interface"),
                            ("TagSpecification.1.Tag.1.Key", "cluster.k8s.amazonaws.com/name"),
                            ("TagSpecification.1.Tag.1.Value", n % 2 == 0 ? "my-cluster" : "other"),
                        ]))
            }
            func ids(_ parameters: [(String, String)]) async throws -> [String] {
                try await EC2.ok(testbed, "DescribeNetworkInterfaces", parameters).items("networkInterfaceSet")
                    .compactMap { $0.string("networkInterfaceId") }
            }
            #expect(try await ids([]).count == 8)
            let tagged = try await ids([
                ("Filter.1.Name", "tag:cluster.k8s.amazonaws.com/name"), ("Filter.1.Value.1", "my-cluster"),
                ("Filter.2.Name", "status"), ("Filter.2.Value.1", "available"),
            ])
            #expect(Set(tagged) == Set([created[0], created[2], created[4], created[6]]))
            let ours = try await ids([("Filter.1.Name", "description"), ("Filter.1.Value.1", "nodeboot-*")])
            #expect(Set(ours) == Set(created.prefix(4)))
            let either = try await ids([
                ("Filter.1.Name", "tag-key"), ("Filter.1.Value.1", "cluster.k8s.amazonaws.com/name"),
                ("Filter.2.Name", "vpc-id"), ("Filter.2.Value.1", "vpc-d295a6a7"),
                ("Filter.3.Name", "attachment.instance-id"), ("Filter.3.Value.1", "i-1234567890abcdef0"),
            ])
            #expect(either.isEmpty)
            let attachedHere = try await ids([
                ("Filter.1.Name", "attachment.instance-id"), ("Filter.1.Value.1", "i-1234567890abcdef0"),
            ])
            #expect(attachedHere == ["eni-0f95d3625f5c521cc"])

            let page1 = try await EC2.ok(testbed, "DescribeNetworkInterfaces", [("MaxResults", "5")])
            let token = try #require(page1.string("nextToken"))
            let page2 = try await EC2.ok(
                testbed, "DescribeNetworkInterfaces", [("MaxResults", "5"), ("NextToken", token)])
            #expect(page1.items("networkInterfaceSet").count == 5)
            #expect(page2.items("networkInterfaceSet").count == 3)
            #expect(page2.string("nextToken") == nil)
            let all = (page1.items("networkInterfaceSet") + page2.items("networkInterfaceSet"))
                .compactMap { $0.string("networkInterfaceId") }
            #expect(Set(all).count == 8)

            let combined = try await EC2.call(
                testbed, "DescribeNetworkInterfaces", [("MaxResults", "5"), ("NetworkInterfaceId.1", created[0])])
            #expect(combined.code == "InvalidParameterCombination")
            let unknownFilter = try await EC2.call(
                testbed, "DescribeNetworkInterfaces", [("Filter.1.Name", "colour"), ("Filter.1.Value.1", "blue")])
            #expect(unknownFilter.code == "InvalidParameterValue")
            let unknownID = try await EC2.call(
                testbed, "DescribeNetworkInterfaces", [("NetworkInterfaceId.1", "eni-00000000000000000")])
            #expect(unknownID.code == "InvalidNetworkInterfaceID.NotFound")
        }
    }

    @Test("AssignIpv6Addresses with Ipv6PrefixCount gives /80 prefixes of the subnet's IPv6 block, shown in IMDS")
    func ipv6Prefix() async throws {
        let config = try instanceOfType("m5.large")
        try await withTestbed(config) { testbed throws in
            let primary = "eni-0f95d3625f5c521cc"
            let first = try await EC2.ok(
                testbed, "AssignIpv6Addresses", [("NetworkInterfaceId", primary), ("Ipv6PrefixCount", "1")])
            #expect(first.items("assignedIpv6PrefixSet").map(\.text) == ["2001:db8:0:0:1::/80"])
            let second = try await EC2.ok(
                testbed, "AssignIpv6Addresses", [("NetworkInterfaceId", primary), ("Ipv6PrefixCount", "1")])
            #expect(second.items("assignedIpv6PrefixSet").map(\.text) == ["2001:db8:0:0:2::/80"])
            let item = try await EC2.describe(testbed, primary)
            #expect(
                item.items("ipv6PrefixSet").map { $0.string("ipv6Prefix") } == ["2001:db8:0:0:1::/80", "2001:db8:0:0:2::/80"])
            #expect(item.items("ipv6AddressesSet").map { $0.string("ipv6Address") } == ["2001:db8:8:4::2"])
            let token = try await HTTP.validToken(testbed)
            let prefix = try await HTTP.imds(
                testbed, "/latest/meta-data/network/interfaces/macs/0e:49:61:0f:c3:11/ipv6-prefix", token: token)
            #expect(prefix.text == "2001:db8:0:0:1::/80\n2001:db8:0:0:2::/80")
            let missing = try await EC2.call(testbed, "AssignIpv6Addresses", [("NetworkInterfaceId", primary)])
            #expect(missing.code == "MissingParameter")
        }
        let noIPv6 = try configuration(
            #"{"network": {"subnets": [{"id": "subnet-0ac62554", "cidr": "192.0.2.0/24"}]}}"#)
        try await withTestbed(noIPv6) { testbed throws in
            let refused = try await EC2.call(
                testbed, "AssignIpv6Addresses", [("NetworkInterfaceId", "eni-0f95d3625f5c521cc"), ("Ipv6AddressCount", "1")])
            #expect(refused.code == "InvalidParameterValue")
        }
    }

    @Test("CreateTags tags ENIs and subnets; an unknown ENI is InvalidNetworkInterfaceID.NotFound")
    func tags() async throws {
        try await withTestbed { testbed throws in
            let eni = try await EC2.create(testbed)
            _ = try await EC2.ok(
                testbed, "CreateTags",
                [
                    ("ResourceId.1", eni), ("ResourceId.2", Self.primarySubnet),
                    ("Tag.1.Key", "node.k8s.amazonaws.com/createdAt"), ("Tag.1.Value", "2026-01-01T00:00:00Z"),
                ])
            let item = try await EC2.describe(testbed, eni)
            #expect(item.items("tagSet").map { $0.string("value") } == ["2026-01-01T00:00:00Z"])
            let subnet = try await EC2.ok(testbed, "DescribeSubnets", [("SubnetId.1", Self.primarySubnet)])
            #expect(subnet.items("subnetSet").first?.items("tagSet").count == 1)
            let unknown = try await EC2.call(
                testbed, "CreateTags", [("ResourceId.1", "eni-00000000000000000"), ("Tag.1.Key", "k"), ("Tag.1.Value", "v")])
            #expect(unknown.code == "InvalidNetworkInterfaceID.NotFound")
        }
    }

    @Test("control API: the model as JSON, a leaked ENI of a given age, the lags; bad bodies are 400")
    func controlAPI() async throws {
        try await withTestbed { testbed throws in
            let body =
                #"{"description": "nodeboot-i-0aaaaaaaaaaaaaaaa", "tags": {"node.k8s.amazonaws.com/instance_id": "i-0aaaaaaaaaaaaaaaa"}, "ageSeconds": 600}"#
            let created = try await HTTP.send(
                testbed.awsEndpoint + "/_testbed/ec2/network-interfaces", method: "POST", body: Data(body.utf8))
            #expect(created.status == 200, "\(created.text)")
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let eni = try decoder.decode(TestbedNetworkInterface.self, from: created.body)
            #expect(eni.status == "available")
            #expect(eni.description == "nodeboot-i-0aaaaaaaaaaaaaaaa")
            #expect(abs(eni.createdAt.timeIntervalSinceNow + 600) < 5)
            let createdAtTag = try #require(eni.tags[DetachedNetworkInterface.createdAtTag])
            #expect(abs((ISO8601DateFormatter().date(from: createdAtTag)?.timeIntervalSinceNow ?? 0) + 600) < 5)

            // EC2 sees it as the leak sweeper asks.
            let leaked = try await EC2.ok(
                testbed, "DescribeNetworkInterfaces",
                [
                    ("Filter.1.Name", "tag-key"), ("Filter.1.Value.1", "node.k8s.amazonaws.com/instance_id"),
                    ("Filter.2.Name", "status"), ("Filter.2.Value.1", "available"),
                ])
            #expect(
                leaked.items("networkInterfaceSet").compactMap { $0.string("networkInterfaceId") } == [eni.networkInterfaceId])

            let untagged = try await testbed.createDetachedNetworkInterface(
                DetachedNetworkInterface(description: "nodeboot-x", tagCreatedAt: false))
            #expect(untagged.tags.isEmpty)

            let list = try await HTTP.send(testbed.awsEndpoint + "/_testbed/ec2/network-interfaces")
            let enis = try decoder.decode([TestbedNetworkInterface].self, from: list.body)
            #expect(enis.count == 3)
            #expect(enis.first { $0.networkInterfaceId == "eni-0f95d3625f5c521cc" }?.attachment?.deviceIndex == 0)

            let lag = try await HTTP.send(
                testbed.awsEndpoint + "/_testbed/ec2/lag", method: "PUT", body: Data(#"{"imdsLagMs": 250}"#.utf8))
            #expect(lag.text == #"{"detachLagMs":0,"imdsLagMs":250}"# + "\n")
            let model = try await HTTP.send(testbed.awsEndpoint + "/_testbed/ec2/network")
            let state = try decoder.decode(TestbedNetworkState.self, from: model.body)
            #expect(state.imdsLagMs == 250)
            #expect(state.instance.instanceType == "m4.xlarge")
            #expect(state.instance.maximumNetworkInterfaces == ["0": 4])
            #expect(state.instance.ipv4AddressesPerInterface == 15)
            #expect(state.subnets.map(\.availableIpAddressCount) == [249])
            #expect(state.vpc.cidrBlocks == ["192.0.2.0/24"])

            let bad = try await HTTP.send(
                testbed.awsEndpoint + "/_testbed/ec2/network-interfaces", method: "POST", body: Data(#"{"colour": 1}"#.utf8))
            #expect(bad.status == 400)
            #expect(bad.text.contains("colour"))
            let badLag = try await HTTP.send(
                testbed.awsEndpoint + "/_testbed/ec2/lag", method: "PUT", body: Data(#"{"imdsLagMs": -1}"#.utf8))
            #expect(badLag.status == 400)
            let noSubnet = try await HTTP.send(
                testbed.awsEndpoint + "/_testbed/ec2/network-interfaces", method: "POST",
                body: Data(#"{"subnetId": "subnet-00000000"}"#.utf8))
            #expect(noSubnet.status == 400)
            #expect(noSubnet.text.contains("InvalidSubnetID.NotFound"))
        }
    }

    @Test(
        "a bad network section is an error naming the field",
        arguments: [
            (#"{"network": {"subnets": [{"id": "subnet-1", "cidr": "10.0.0.0/33"}]}}"#, "network.subnets[0].cidr"),
            (#"{"network": {"subnets": [{"id": "subnet-1", "cidr": "10.0.0.1/24"}]}}"#, "network.subnets[0].cidr"),
            (#"{"network": {"subnets": [{"id": "subnet-1", "cidr": "10.0.0.0/29"}]}}"#, "network.subnets[0].cidr"),
            (#"{"network": {"subnets": [{"id": "sn-1", "cidr": "10.0.0.0/24"}]}}"#, "network.subnets[0].id"),
            (
                #"{"network": {"subnets": [{"id": "subnet-1", "cidr": "10.0.0.0/24", "ipv6Cidr": "2001:db8::/96"}]}}"#,
                "network.subnets[0].ipv6Cidr"
            ),
            (#"{"network": {"vpc": {"cidrs": ["10.0.0.0/8x"]}}}"#, "network.vpc.cidrs[0]"),
            (#"{"network": {"imdsLagMs": -5}}"#, "network.imdsLagMs"),
            (#"{"network": {"lag": 5}}"#, "lag"),
        ])
    func badNetwork(text: String, field: String) throws {
        var problems: [String]
        do {
            problems = try configuration(text).validationErrors()
        } catch let error as DecodingError {
            problems = ["\(error)"]
        }
        #expect(problems.contains { $0.contains(field) }, "\(problems)")
    }
}
