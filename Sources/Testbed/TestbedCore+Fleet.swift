import Foundation
import SigV4

/// The fleet's instances (``Fleet``): their IMDS under `/<instance id>/…`, DescribeInstances,
/// their role credentials on the AWS endpoint and the API server, `GET /_testbed/fleet`.
extension TestbedCore {
    /// A fleet member's IMDS request: the path after its prefix answered from its documents
    /// (tokens are shared by the one IMDS; faults match the path after the prefix), recorded with
    /// the whole path.
    func handleFleetIMDS(_ request: HTTPRequest, member: Fleet.Member, path: String) async -> HTTPReply {
        var inner = request
        inner.path = path
        let action = path == TestbedCore.tokenPath ? "GetToken" : nil
        let fault = takeFault(.imds, path: path, action: nil)
        return await recorded(endpoint: "imds", request: request, action: action, fault: fault) {
            await apply(fault, errors: TestbedCore.imdsErrors) {
                imdsResponse(inner, now: Date(), documents: member.model.documents)
            }
        }
    }

    /// The credentials of a fleet member's role keys, for signature checks.
    func fleetCredentials(_ accessKeyID: String) -> SigV4Credentials? {
        fleet.member(accessKeyID: accessKeyID)?.role.credentials
    }

    /// A fleet member's role keys after their signature checked out: expired credentials fail
    /// as STS says; otherwise the node user of its DNS name (nil: not a fleet key).
    func fleetKubeUser(_ accessKeyID: String, now: Date) -> Result<KubeUser, KubeTokenVerifier.Failure>? {
        guard let member = fleet.member(accessKeyID: accessKeyID) else { return nil }
        if now >= member.role.expiration {
            return .failure(KubeTokenVerifier.Failure("STS: ExpiredToken: the instance role's credentials have expired"))
        }
        guard configuration.kubeAPI.defaultMappings else {
            return .failure(
                KubeTokenVerifier.Failure(
                    "access key \(accessKeyID) is valid but not mapped to a user (kubeAPI.users; defaultMappings is false)"))
        }
        return .success(
            KubeUser(
                username: "system:node:\(member.info.privateDnsName)", groups: ["system:bootstrappers", "system:nodes"],
                accessKeyID: accessKeyID))
    }

    /// DescribeInstances naming only fleet instances: their items; nil when it names none.
    func describeFleetInstances(_ ids: [String]) -> HTTPResponse? {
        let members = ids.compactMap { fleet.member(instanceID: $0) }
        guard !members.isEmpty else { return nil }
        let unknown = ids.filter { fleet.member(instanceID: $0) == nil }
        if !unknown.isEmpty { return TestbedCore.instancesNotFound(unknown) }
        let items = members.map { member in
            TestbedCore.instanceItemXML(member.model, interfaces: fleetInterfaceXML(member))
        }.joined()
        let i = members[0].model
        let inner =
            "    <reservationSet>\n        <item>" + XML.element("reservationId", i.reservationID)
            + XML.element("ownerId", i.accountID) + "<groupSet/>" + "<instancesSet>" + items + "</instancesSet>"
            + "</item>\n    </reservationSet>\n"
        return TestbedCore.ec2Response("DescribeInstances", inner)
    }

    /// A fleet instance's primary ENI, attached at device index 0.
    func fleetInterfaceXML(_ member: Fleet.Member) -> String {
        let primary = member.model.interfaces[0]
        let groups = zip(primary.securityGroupIDs, primary.securityGroupNames).map {
            "<item>" + XML.element("groupId", $0) + XML.element("groupName", $1) + "</item>"
        }.joined()
        let attachment = "eni-attach-" + primary.interfaceID.dropFirst("eni-".count)
        return "<item>" + XML.element("networkInterfaceId", primary.interfaceID)
            + XML.element("subnetId", primary.subnetID) + XML.element("vpcId", primary.vpcID)
            + "<description/>" + XML.element("ownerId", primary.ownerID)
            + XML.element("status", "in-use") + XML.element("macAddress", primary.mac)
            + XML.element("privateIpAddress", member.info.privateIp)
            + XML.element("privateDnsName", member.info.privateDnsName) + XML.element("sourceDestCheck", "true")
            + "<groupSet>" + groups + "</groupSet>"
            + "<attachment>" + XML.element("attachmentId", attachment) + XML.element("deviceIndex", "0")
            + XML.element("status", "attached") + XML.element("attachTime", member.model.launchTime)
            + XML.element("deleteOnTermination", "true") + XML.element("networkCardIndex", "0") + "</attachment>"
            + "<privateIpAddressesSet><item>" + XML.element("privateIpAddress", member.info.privateIp)
            + XML.element("privateDnsName", member.info.privateDnsName) + XML.element("primary", "true")
            + "</item></privateIpAddressesSet><ipv6AddressesSet/>" + XML.element("interfaceType", "interface") + "</item>"
    }

    /// `GET /_testbed/fleet`: the fleet's instances; nil for other paths.
    func fleetControl(_ request: HTTPRequest) -> HTTPResponse? {
        guard request.path == "/_testbed/fleet" else { return nil }
        guard request.method == "GET" else {
            return HTTPResponse(
                status: 405, contentType: "application/json",
                text: JSONValue.object([("message", .string("use GET on /_testbed/fleet"))]).compact() + "\n")
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(fleet.members.map(\.info))) ?? Data("[]".utf8)  // plain values always encode
        return HTTPResponse(status: 200, contentType: "application/json", text: String(decoding: data, as: UTF8.self) + "\n")
    }
}
