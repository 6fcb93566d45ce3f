public import IPAMProtocol
import Netlink

/// What the host shows when the daemon (re)starts or reconciles (docs/ipamd.md §6).
public struct HostObservation: Sendable {
    /// Pod addresses on each ENI the daemon manages, as IMDS (or EC2) lists them.
    public var addressesByENI: [String: Set<String>]
    /// Addresses the kernel routes to a pod: a `/32` (`/128`) route to a `<vethPrefix>*` link,
    /// or a pod's `to`/`from` rule; the value names the trace (the link, or the rule).
    public var kernelTraces: [String: String]
    /// Names of the host's network links (a pod's host veth is `hostVethName(namespace, name)`).
    public var links: Set<String>
    public var vethPrefix: String
    /// False when the kernel's view could not be read: then nothing is released or adopted
    /// (without it, "no trace" proves nothing).
    public var kernelKnown: Bool
    /// An IPv6 node's /80 on each ENI: its pod addresses are too many to list.
    public var ipv6PrefixesByENI: [String: [String]] = [:]

    /// The ENI whose addresses (or IPv6 prefix) include `address`.
    public func eni(holding address: String) -> String? {
        if let listed = addressesByENI.first(where: { $0.value.contains(address) }) { return listed.key }
        guard address.contains(":"), let parsed = IPAddress(address) else { return nil }
        return ipv6PrefixesByENI.first { $0.value.contains { IPPrefix($0)?.contains(parsed) == true } }?.key
    }

    public init(
        addressesByENI: [String: Set<String>], kernelTraces: [String: String], links: Set<String>, vethPrefix: String = "eni",
        kernelKnown: Bool = true
    ) {
        self.addressesByENI = addressesByENI
        self.kernelTraces = kernelTraces
        self.links = links
        self.vethPrefix = vethPrefix
        self.kernelKnown = kernelKnown
    }
}

/// The outcome of `Checkpoint.reconcile`: the state to continue with and what to tell the operator.
public struct Reconciliation: Sendable, Equatable {
    public var checkpoint: Checkpoint
    /// Journal lines, one per decision that changes what the checkpoint said.
    public var notes: [String] = []
}

extension Checkpoint {
    /// Attachments created by the kernel view, not by an add (`kernel:<trace>`): never handed out.
    public static let adoptedNetwork = "kernel"

    /// A pod may be between ipamd's reply and its wiring for this long (containerd bounds a
    /// sandbox start at 4 minutes): an allocation this young is kept without a kernel trace.
    public static let wiringGrace: Int64 = 5 * 60 * 1000

    /// Reconciles the stored state with the host. The rules, in order: an address a pod's
    /// interface still uses is never freed; an address the kernel uses that the checkpoint
    /// does not hold is adopted (never handed out twice); an allocation with no trace left
    /// after the grace period was a missed DEL and cools down; cooling ends at its time.
    public func reconcile(with host: HostObservation, now: Int64, cooldown: Duration) -> Reconciliation {
        var result = Reconciliation(checkpoint: self)
        var kept: [Allocation] = []
        var cooling = self.cooling.filter { $0.until > now }
        let cooldownMilliseconds = Int64(cooldown / .milliseconds(1))
        for allocation in allocations {
            let trace = host.kernelTraces[allocation.address]
            let adopted = allocation.key.network == Self.adoptedNetwork
            let veth = allocation.pod.map { hostVethName(namespace: $0.namespace, name: $0.name, prefix: host.vethPrefix) }
            let inUse = !host.kernelKnown || trace != nil || veth.map(host.links.contains) == true
            guard host.eni(holding: allocation.address) != nil else {
                kept.append(allocation)
                result.notes.append(
                    "ipamd: \(allocation.address) of \(Self.owner(allocation)) is on no ENI the metadata service lists; "
                        + "kept, never handed out again, until its pod's DEL")
                continue
            }
            if adopted ? (trace != nil || !host.kernelKnown) : (inUse || now - allocation.since < Self.wiringGrace) {
                kept.append(allocation)
                continue
            }
            cooling.append(Cooling(address: allocation.address, until: now + cooldownMilliseconds))
            result.notes.append(
                adopted
                    ? "ipamd: \(allocation.address) is no longer used by the kernel (\(allocation.key.container)); released"
                    : "ipamd: released \(allocation.address) of \(Self.owner(allocation)): no pod interface uses it "
                        + "(a missed CNI DEL)")
        }
        let held = Set(kept.map(\.address))
        for (address, trace) in host.kernelTraces.sorted(by: { $0.key < $1.key }) where !held.contains(address) {
            kept.append(
                Allocation(
                    key: AttachmentKey(container: "kernel:\(address) \(trace)", ifname: "-", network: Self.adoptedNetwork),
                    address: address, eni: host.eni(holding: address) ?? "", pod: nil,
                    since: now))
            cooling.removeAll { $0.address == address }
            result.notes.append(
                "ipamd: \(address) is used by the kernel (\(trace)) but not in the checkpoint; adopted (never handed out)")
        }
        let allocated = Set(kept.map(\.address))
        cooling.removeAll { allocated.contains($0.address) }
        result.checkpoint.allocations = kept
        result.checkpoint.cooling = cooling
        return result
    }

    static func owner(_ allocation: Allocation) -> String {
        allocation.pod.map { "pod \($0.namespace)/\($0.name)" } ?? "container \(allocation.key.container)"
    }
}
