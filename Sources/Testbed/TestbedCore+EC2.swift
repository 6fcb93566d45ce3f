import Foundation
import Synchronization

/// EC2's Query API (`Version=2016-11-15`): DescribeInstances (its ENIs from the network model)
/// and DescribeInstanceTypes, with response and error XML in the shapes botocore parses. The ENI
/// actions are in `TestbedCore+ENI.swift`.
extension TestbedCore {
    static let ec2Namespace = "http://ec2.amazonaws.com/doc/2016-11-15/"

    static let ec2Errors = ServiceErrors(
        contentType: "text/xml;charset=UTF-8",
        throttle: { ec2Error(503, "RequestLimitExceeded", "Request limit exceeded.") },
        error: { status, code in
            switch status {
            case 503: ec2Error(status, code ?? "Unavailable", "The server is overloaded and can't handle the request.")
            case 500...: ec2Error(status, code ?? "InternalError", "An internal error has occurred.")
            case 401: ec2Error(status, code ?? "AuthFailure", "AWS was not able to validate the provided access credentials")
            case 403: ec2Error(status, code ?? "UnauthorizedOperation", "You are not authorized to perform this operation.")
            default: ec2Error(status, code ?? "InvalidParameterValue", "The request was rejected by the testbed.")
            }
        }
    )

    /// EC2's answer to DescribeInstances naming instances it does not have (`unknown`: not empty).
    static func instancesNotFound(_ unknown: [String]) -> HTTPResponse {
        let message =
            unknown.count == 1
            ? "The instance ID '\(unknown[0])' does not exist"
            : "The instance IDs '\(unknown.joined(separator: ", "))' do not exist"
        return ec2Error(400, "InvalidInstanceID.NotFound", message)
    }

    static func ec2Error(_ status: Int, _ code: String, _ message: String) -> HTTPResponse {
        let body =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>"
            + XML.element("Code", code) + XML.element("Message", message)
            + "</Error></Errors>" + XML.element("RequestID", RequestID.make()) + "</Response>\n"
        return HTTPResponse(status: status, contentType: "text/xml;charset=UTF-8", text: body)
    }

    static func ec2Response(_ operation: String, _ inner: String) -> HTTPResponse {
        let body =
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<\(operation)Response xmlns=\"\(ec2Namespace)\">\n"
            + "    " + XML.element("requestId", RequestID.make()) + "\n" + inner + "</\(operation)Response>\n"
        return HTTPResponse(status: 200, contentType: "text/xml;charset=UTF-8", text: body)
    }

    func ec2(_ call: AWSCall) async -> HTTPResponse {
        switch call.action {
        case "DescribeInstances": return describeInstances(call)
        case "DescribeInstanceTypes": return describeInstanceTypes(call)
        case let action? where TestbedCore.eniActions.contains(action): return await eniAction(action, call)
        case let action?:
            return TestbedCore.ec2Error(400, "InvalidAction", "The action \(action) is not valid for this web service.")
        case nil:
            return TestbedCore.ec2Error(400, "MissingAction", "The request must contain the parameter Action")
        }
    }

    func describeInstances(_ call: AWSCall) -> HTTPResponse {
        let ids = call.list("InstanceId")
        let malformed = ids.filter { id in
            !id.hasPrefix("i-") || id.count < 10 || !id.dropFirst(2).allSatisfy(\.isHexDigit)
        }
        if let bad = malformed.first {
            return TestbedCore.ec2Error(400, "InvalidInstanceID.Malformed", "Invalid id: \"\(bad)\"")
        }
        if !ids.contains(instance.instanceID), let fleetAnswer = describeFleetInstances(ids) { return fleetAnswer }
        let unknown = ids.filter { $0 != instance.instanceID }
        if !unknown.isEmpty { return TestbedCore.instancesNotFound(unknown) }
        let interfaces = state.withLock { state in
            state.network.settle(Date())
            return state.network.attached.map { TestbedCore.eniXML($0, in: state.network, forInstance: true) }.joined()
        }
        let i = instance
        let item = TestbedCore.instanceItemXML(i, interfaces: interfaces)
        let inner =
            "    <reservationSet>\n        <item>" + XML.element("reservationId", i.reservationID)
            + XML.element("ownerId", i.accountID) + "<groupSet/>" + "<instancesSet>" + item + "</instancesSet>"
            + "</item>\n    </reservationSet>\n"
        return TestbedCore.ec2Response("DescribeInstances", inner)
    }

    /// One `instancesSet` item: the instance and its ENIs (`interfaces`, items already written).
    static func instanceItemXML(_ i: InstanceModel, interfaces: String) -> String {
        let groups = zip(i.interfaces[0].securityGroupIDs, i.interfaces[0].securityGroupNames).map {
            "<item>" + XML.element("groupId", $0) + XML.element("groupName", $1) + "</item>"
        }.joined()
        let primary = i.interfaces[0]
        return "<item>" + XML.element("instanceId", i.instanceID) + XML.element("imageId", i.imageID)
            + "<instanceState><code>16</code><name>running</name></instanceState>"
            + XML.element("privateDnsName", i.privateDNSName) + "<dnsName/>" + "<reason/>"
            + XML.element("amiLaunchIndex", "0") + "<productCodes/>" + XML.element("instanceType", i.instanceType)
            + XML.element("launchTime", i.launchTime)
            + "<placement>" + XML.element("availabilityZone", i.availabilityZone) + "<groupName/>"
            + XML.element("tenancy", "default") + "</placement>"
            + "<monitoring><state>disabled</state></monitoring>" + XML.element("subnetId", primary.subnetID)
            + XML.element("vpcId", primary.vpcID) + XML.element("privateIpAddress", i.privateIP)
            + XML.element("sourceDestCheck", "true") + "<groupSet>" + groups + "</groupSet>"
            + XML.element("architecture", i.architecture) + XML.element("rootDeviceType", "ebs")
            + XML.element("rootDeviceName", "/dev/xvda") + "<blockDeviceMapping/>"
            + XML.element("virtualizationType", "hvm") + "<tagSet/>" + XML.element("hypervisor", "xen")
            + "<networkInterfaceSet>" + interfaces + "</networkInterfaceSet>" + XML.element("ebsOptimized", "false")
            + "<enaSupport>true</enaSupport>"
            + "<metadataOptions><state>applied</state><httpTokens>required</httpTokens>"
            + "<httpPutResponseHopLimit>2</httpPutResponseHopLimit><httpEndpoint>enabled</httpEndpoint>"
            + "</metadataOptions>"
            + "<privateDnsNameOptions><hostnameType>ip-name</hostnameType></privateDnsNameOptions>"
            + "</item>"
    }

    func describeInstanceTypes(_ call: AWSCall) -> HTTPResponse {
        let requested = call.list("InstanceType")
        let unknown = requested.filter { instanceTypes[$0] == nil }
        if !unknown.isEmpty {
            return TestbedCore.ec2Error(
                400, "InvalidInstanceType",
                "The following supplied instance types do not exist: [\(unknown.joined(separator: ", "))]")
        }
        let names = requested.isEmpty ? instanceTypes.keys.sorted() : requested
        var items = ""
        for name in names {
            guard let row = instanceTypes[name] else { continue }
            let cards =
                row.networkCards ?? [.init(networkCardIndex: 0, maximumNetworkInterfaces: row.maximumNetworkInterfaces)]
            let total = cards.reduce(0) { $0 + $1.maximumNetworkInterfaces }
            let cardItems = cards.map {
                "<item>" + XML.element("networkCardIndex", String($0.networkCardIndex))
                    + XML.element("networkPerformance", "Up to 10 Gigabit")
                    + XML.element("maximumNetworkInterfaces", String($0.maximumNetworkInterfaces)) + "</item>"
            }.joined()
            let ipv6 = row.ipv6AddressesPerInterface ?? row.ipv4AddressesPerInterface
            items +=
                "        <item>" + XML.element("instanceType", row.instanceType)
                + XML.element("currentGeneration", "true") + XML.element("freeTierEligible", "false")
                + "<supportedUsageClasses><item>on-demand</item><item>spot</item></supportedUsageClasses>"
                + "<supportedRootDeviceTypes><item>ebs</item></supportedRootDeviceTypes>"
                + "<supportedVirtualizationTypes><item>hvm</item></supportedVirtualizationTypes>"
                + XML.element("bareMetal", "false") + XML.element("hypervisor", row.hypervisor ?? "nitro")
                + "<processorInfo><supportedArchitectures><item>" + XML.escape(row.architecture ?? "x86_64")
                + "</item></supportedArchitectures></processorInfo>"
                + "<vCpuInfo>" + XML.element("defaultVCpus", String(row.vcpus ?? 2)) + "</vCpuInfo>"
                + "<memoryInfo>" + XML.element("sizeInMiB", String(row.memoryMiB ?? 4096)) + "</memoryInfo>"
                + XML.element("instanceStorageSupported", "false")
                + "<networkInfo>" + XML.element("networkPerformance", "Up to 10 Gigabit")
                + XML.element("maximumNetworkInterfaces", String(total))
                + XML.element("maximumNetworkCards", String(cards.count))
                + XML.element("defaultNetworkCardIndex", String(row.defaultNetworkCardIndex ?? 0))
                + "<networkCards>" + cardItems + "</networkCards>"
                + XML.element("ipv4AddressesPerInterface", String(row.ipv4AddressesPerInterface))
                + XML.element("ipv6AddressesPerInterface", String(ipv6))
                + XML.element("ipv6Supported", ipv6 > 0 ? "true" : "false") + XML.element("enaSupport", "required")
                + XML.element("efaSupported", "false") + XML.element("encryptionInTransitSupported", "false")
                + "</networkInfo>" + "</item>\n"
        }
        return TestbedCore.ec2Response(
            "DescribeInstanceTypes", "    <instanceTypeSet>\n" + items + "    </instanceTypeSet>\n")
    }
}
