import Foundation
import Logging
import Synchronization

/// EC2's network model in process: the ENIs and subnets as EC2 holds them, the IMDS and detach
/// lags, leaked ENIs, and the hooks that play the hypervisor plugging a NIC in or out.
extension Testbed {
    /// Every ENI, sorted by id.
    public func networkInterfaces() async -> [TestbedNetworkInterface] {
        await networkState().networkInterfaces
    }

    /// The whole model: VPC, subnets (with their live free counts), ENIs, the instance's limits, lags.
    public func networkState() async -> TestbedNetworkState {
        core.state.withLock { state in
            state.network.settle(Date())
            return state.network.snapshot()
        }
    }

    /// How long an attach, a detach or an address change takes to show in IMDS, and how long a
    /// detached ENI stays `detaching`; nil leaves a lag as it is.
    public func setNetworkLag(imdsMilliseconds: Int? = nil, detachMilliseconds: Int? = nil) async {
        core.setNetworkLag(imds: imdsMilliseconds, detach: detachMilliseconds)
    }

    /// Runs `onAttach` after each AttachNetworkInterface and `onDetach` after each
    /// DetachNetworkInterface, before EC2's answer is sent: what a test needs to create (or
    /// remove) the matching NIC, e.g. in a network namespace. nil removes a hook.
    public func setNetworkHooks(
        onAttach: (@Sendable (ENIEvent) async -> Void)?, onDetach: (@Sendable (ENIEvent) async -> Void)? = nil
    ) async {
        core.networkHooks.withLock { $0 = TestbedCore.NetworkHooks(onAttach: onAttach, onDetach: onDetach) }
    }

    /// Creates a detached ENI directly in the model, `ageSeconds` old (a leaked ENI). Throws
    /// `TestbedError` with code `configuration` when the subnet is unknown or full.
    public func createDetachedNetworkInterface(_ request: DetachedNetworkInterface) async throws
        -> TestbedNetworkInterface
    {
        switch core.createDetached(request, now: Date()) {
        case .success(let eni): return eni
        case .failure(let failure):
            throw TestbedError(.configuration, "testbed ec2: cannot create the ENI: \(failure.code): \(failure.message)")
        }
    }
}

extension TestbedCore {
    func setNetworkLag(imds: Int?, detach: Int?) {
        state.withLock { state in
            if let imds { state.network.imdsLagMs = max(0, imds) }
            if let detach { state.network.detachLagMs = max(0, detach) }
        }
        logger.info(
            "testbed ec2: lags set (imds \(imds.map(String.init) ?? "unchanged") ms, detach \(detach.map(String.init) ?? "unchanged") ms)"
        )
    }

    func createDetached(_ request: DetachedNetworkInterface, now: Date) -> Result<TestbedNetworkInterface, EC2Failure> {
        state.withLock { state in
            do throws(EC2Failure) {
                let eni = try state.network.createDetached(request, now: now)
                return .success(state.network.snapshot(eni))
            } catch {
                return .failure(error)
            }
        }
    }

    // MARK: Control API

    /// `/_testbed/ec2/…`: the model as JSON, leaked ENIs, the lags. Nil when the path is not one of these.
    func networkControl(_ request: HTTPRequest) -> HTTPResponse? {
        func json(_ status: Int, _ text: String) -> HTTPResponse {
            HTTPResponse(status: status, contentType: "application/json", text: text + "\n")
        }
        func message(_ status: Int, _ text: String) -> HTTPResponse {
            json(status, JSONValue.object([("message", .string(text))]).compact())
        }
        func encode<T: Encodable>(_ value: T) -> HTTPResponse {
            let encoder = JSONEncoder()
            encoder.dateEncodingStrategy = .iso8601
            encoder.outputFormatting = [.sortedKeys]
            guard let data = try? encoder.encode(value) else {  // plain values always encode
                return message(500, "the model could not be encoded")
            }
            return json(200, String(decoding: data, as: UTF8.self))
        }
        let now = Date()
        switch (request.method, request.path) {
        case ("GET", "/_testbed/ec2/network"):
            return encode(
                state.withLock { state in
                    state.network.settle(now)
                    return state.network.snapshot()
                })
        case ("GET", "/_testbed/ec2/network-interfaces"):
            return encode(
                state.withLock { state in
                    state.network.settle(now)
                    return state.network.snapshot().networkInterfaces
                })
        case ("POST", "/_testbed/ec2/network-interfaces"):
            let body = request.body.isEmpty ? Array("{}".utf8) : request.body
            let detached: DetachedNetworkInterface
            do {
                detached = try JSONDecoder().decode(DetachedNetworkInterface.self, from: Data(body))
            } catch let error as DecodingError {
                return message(400, "network interface: \(describe(error))")
            } catch {
                return message(400, "network interface: \(error)")
            }
            switch createDetached(detached, now: now) {
            case .success(let eni):
                logger.info("testbed ec2: detached \(eni.networkInterfaceId) created, \(detached.ageSeconds) s old")
                return encode(eni)
            case .failure(let failure):
                return message(400, "\(failure.code): \(failure.message)")
            }
        case ("PUT", "/_testbed/ec2/lag"):
            struct Lag: Decodable {
                var imdsLagMs: Int?
                var detachLagMs: Int?
            }
            guard let lag = try? JSONDecoder().decode(Lag.self, from: Data(request.body)),  // the message says what is wanted
                (lag.imdsLagMs ?? 0) >= 0, (lag.detachLagMs ?? 0) >= 0
            else {
                return message(400, #"lag: expected {"imdsLagMs": N, "detachLagMs": N} with N >= 0 (either may be left out)"#)
            }
            setNetworkLag(imds: lag.imdsLagMs, detach: lag.detachLagMs)
            let (imds, detach) = state.withLock { ($0.network.imdsLagMs, $0.network.detachLagMs) }
            return json(
                200, JSONValue.object([("detachLagMs", .number(Double(detach))), ("imdsLagMs", .number(Double(imds)))]).compact())
        default:
            return nil
        }
    }
}

extension NetworkModel {
    /// A leaked ENI: detached, in `request.subnetId` (else the primary's), `ageSeconds` old.
    mutating func createDetached(_ request: DetachedNetworkInterface, now: Date) throws(EC2Failure) -> ENI {
        settle(now)
        let primary = enis[primaryENIID]
        let createdAt = now.addingTimeInterval(-request.ageSeconds)
        var tags = request.tags
        if request.tagCreatedAt && tags[DetachedNetworkInterface.createdAtTag] == nil {
            tags[DetachedNetworkInterface.createdAtTag] = ISO8601.format(createdAt)
        }
        var eni = try create(
            subnetID: request.subnetId ?? primary?.subnetID ?? "",
            groups: request.securityGroupIds ?? primary?.groups.map(\.id) ?? [], description: request.description,
            addresses: AddressRequest(secondaryIPv4: request.secondaryPrivateIpAddressCount), tags: tags, clientToken: nil,
            fingerprint: "", now: now)
        eni.createdAt = createdAt
        enis[eni.id] = eni
        return eni
    }

    func snapshot(_ eni: ENI) -> TestbedNetworkInterface {
        TestbedNetworkInterface(
            networkInterfaceId: eni.id, macAddress: eni.mac, status: eni.status, subnetId: eni.subnetID,
            vpcId: subnets[eni.subnetID]?.vpcID ?? vpcID, description: eni.description,
            securityGroupIds: eni.groups.map(\.id), tags: eni.tags, privateIpAddresses: eni.ipv4.map(IPv4.format),
            ipv4Prefixes: eni.ipv4Prefixes.map { IPv4.format($0) + "/28" }, ipv6Addresses: eni.ipv6.map(IPv6.format),
            ipv6Prefixes: eni.ipv6Prefixes.map { IPv6.format($0) + "/80" },
            attachment: eni.attachment.map {
                .init(
                    attachmentId: $0.id, instanceId: $0.instanceID, deviceIndex: $0.deviceIndex, networkCardIndex: $0.card,
                    status: $0.detachingUntil == nil ? "attached" : "detaching", deleteOnTermination: $0.deleteOnTermination)
            }, createdAt: eni.createdAt, clientToken: eni.clientToken)
    }

    func snapshot() -> TestbedNetworkState {
        TestbedNetworkState(
            vpc: .init(vpcId: vpcID, cidrBlocks: vpcCIDRs, ipv6CidrBlocks: vpcIPv6CIDRs),
            subnets: subnets.values.sorted { $0.id < $1.id }.map { subnet in
                TestbedSubnet(
                    subnetId: subnet.id, vpcId: subnet.vpcID, availabilityZone: subnet.availabilityZone,
                    cidrBlock: subnet.cidr.description, ipv6CidrBlock: subnet.ipv6?.description,
                    availableIpAddressCount: subnet.available, tags: subnet.tags)
            },
            networkInterfaces: enis.values.sorted { $0.id < $1.id }.map(snapshot),
            instance: .init(
                instanceId: instanceID, instanceType: instanceType,
                maximumNetworkInterfaces: Dictionary(
                    (limits?.interfacesPerCard ?? [:]).map { (String($0.key), $0.value) }, uniquingKeysWith: { a, _ in a }),
                ipv4AddressesPerInterface: limits?.ipv4PerInterface),
            imdsLagMs: imdsLagMs, detachLagMs: detachLagMs)
    }
}
