public import AWS
public import FoundationEssentials
import Support

/// What the agent sees on this instance: the `nodeboot facts` report. Holds no secret.
public struct NodeFactsReport: Codable, Sendable {
    public struct Region: Codable, Sendable {
        public var name: String
        public var source: String
    }

    public struct Credentials: Codable, Sendable {
        public var source: String
        public var expiration: Date?
    }

    public var imdsEndpoint: String
    public var instance: InstanceFacts?
    public var region: Region?
    public var credentials: Credentials?
    public var privateDnsName: String?
    /// Every part that could not be discovered, with its reason.
    public var errors: [String]
    public var durationMilliseconds: Int
}

/// `nodeboot facts`: discover and report, never failing half-way: each part that fails is
/// recorded and the rest is still discovered where it does not depend on it.
public enum NodeFacts {
    /// What `nodeboot facts` prints: a session for `environment` (IMDS retried for
    /// `imdsDeadline`), the facts, the session closed.
    public static func gather(environment: [String: String], imdsDeadline: Duration) async throws(NodeBootError)
        -> NodeFactsReport
    {
        let sessions = Sessions()
        let report = await gather(session: try sessions.open(environment, imdsDeadline: imdsDeadline))
        await sessions.shutdown()
        return report
    }

    public static func gather(session: AWSSession) async -> NodeFactsReport {
        let clock = ContinuousClock()
        let start = clock.now
        var report = NodeFactsReport(
            imdsEndpoint: session.imds.endpoint, instance: nil, region: nil, credentials: nil, privateDnsName: nil,
            errors: [], durationMilliseconds: 0)
        // Credentials resolve concurrently with instance discovery.
        async let credentialsResult: Result<any CredentialProvider, any Error> = {
            do { return .success(try await session.credentialProvider()) } catch { return .failure(error) }
        }()
        do {
            let facts = try await session.imds.instanceFacts()
            report.instance = facts
            let region = session.region(identity: facts.identity)
            report.region = .init(name: region.region, source: region.source.rawValue)
        } catch {
            report.errors.append("\(error)")
        }
        switch await credentialsResult {
        case .success(let provider):
            var expiration: Date?
            if let role = provider as? InstanceRoleCredentialProvider { expiration = await role.expiration }
            report.credentials = .init(source: provider.source, expiration: expiration)
            if let instance = report.instance, let region = report.region {
                do {
                    let client = try await session.client(region: region.name)
                    let described = try await client.describeInstance(id: instance.identity.instanceId)
                    report.privateDnsName = described.privateDnsName
                    if described.privateDnsName.isEmpty {
                        report.errors.append(
                            "EC2 DescribeInstances returned an empty PrivateDnsName for \(instance.identity.instanceId) (the instance may still be starting)"
                        )
                    }
                } catch {
                    report.errors.append("\(error)")
                }
            }
        case .failure(let error):
            report.errors.append("\(error)")
        }
        let elapsed = start.duration(to: clock.now)
        report.durationMilliseconds = Int(elapsed.milliseconds)
        return report
    }

    public static func json(_ report: NodeFactsReport) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        // Encoding plain Codable structs of strings and numbers cannot fail.
        let data = (try? encoder.encode(report)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    public static func text(_ report: NodeFactsReport) -> String {
        var lines: [String] = []
        func row(_ key: String, _ value: String?) {
            lines.append(key + String(repeating: " ", count: max(1, 22 - key.count)) + (value ?? "-"))
        }
        row("imds endpoint", report.imdsEndpoint)
        if let facts = report.instance {
            let id = facts.identity
            row("instance id", id.instanceId)
            row("instance type", id.instanceType)
            row("availability zone", id.availabilityZone)
            row("account", id.accountId)
            row("architecture", id.architecture)
            row("image", id.imageId)
            row("mac", facts.mac)
            row("local ipv4", facts.localIPv4)
            row("local hostname", facts.localHostname)
        }
        if let region = report.region { row("region", "\(region.name) (from \(region.source))") }
        if let credentials = report.credentials {
            var value = credentials.source
            if let expiration = credentials.expiration {
                value += ", expires \(expiration.formatted(.iso8601))"
            }
            row("credentials", value)
        }
        row("private dns name", report.privateDnsName)
        for interface in report.instance?.interfaces ?? [] {
            lines.append("")
            lines.append("interface \(interface.mac)")
            row("  device number", interface.deviceNumber.map(String.init))
            row("  network card", interface.networkCard.map(String.init))
            row("  interface id", interface.interfaceId)
            row("  ipv4 addresses", interface.localIPv4s.joined(separator: ", "))
            row("  ipv6 addresses", interface.ipv6s.isEmpty ? nil : interface.ipv6s.joined(separator: ", "))
            row("  subnet ipv4 cidr", interface.subnetIPv4CIDRBlock)
            row("  vpc ipv4 cidrs", interface.vpcIPv4CIDRBlocks.joined(separator: ", "))
        }
        lines.append("")
        lines.append("discovered in \(report.durationMilliseconds) ms")
        for error in report.errors { lines.append("error: \(error)") }
        return lines.joined(separator: "\n") + "\n"
    }
}
