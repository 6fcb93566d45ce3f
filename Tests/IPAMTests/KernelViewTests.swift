import Foundation
import IPAM
import Netlink
import TestSupport
import Testing

/// The kernel's pod traces, read in a scratch network namespace standing for the node.
@Suite("ipamd kernel view")
struct KernelViewTests {
    /// Nil when this machine can make network namespaces, else why not.
    static let unavailable: String? = {
        guard geteuid() == 0 else { return "needs root for network namespaces (running as uid \(geteuid()))" }
        guard ChildProcess.exists("ip") else { return "needs iproute2's ip" }
        return nil
    }()

    static func ip(_ arguments: String...) async throws {
        let result = try await ChildProcess.run(["/usr/bin/env", "ip"] + arguments, environment: ChildProcess.cleanEnvironment())
        try #require(result.status == 0, "ip \(arguments.joined(separator: " ")): \(result.stderr)")
    }

    @Test(
        "routes to eni* links are traces; other routes, links and leftover pod rules are not; a restart keeps those pods' addresses",
        // Root only: it creates (and deletes) a network namespace; the host's own routes are never touched.
        .enabled(if: unavailable == nil, Comment(rawValue: unavailable ?? "")))
    func traces() async throws {
        let namespace = "nbipamd-\(getpid())"
        try await Self.ip("netns", "add", namespace)
        do {
            // veth pairs (this kernel may lack the dummy driver): a pod's host veth and a NIC-like link.
            try await Self.ip("-n", namespace, "link", "add", "enic440f455693", "type", "veth", "peer", "name", "podside0")
            try await Self.ip("-n", namespace, "link", "add", "eth9", "type", "veth", "peer", "name", "eth9peer")
            for link in ["enic440f455693", "podside0", "eth9", "eth9peer", "lo"] {
                try await Self.ip("-n", namespace, "link", "set", link, "up")
            }
            try await Self.ip("-n", namespace, "route", "add", "10.0.0.10/32", "dev", "enic440f455693", "scope", "link")
            try await Self.ip("-n", namespace, "route", "add", "10.0.0.99/32", "dev", "eth9")
            try await Self.ip("-n", namespace, "rule", "add", "to", "10.0.0.11/32", "lookup", "main", "prio", "512")
            try await Self.ip("-n", namespace, "rule", "add", "from", "10.0.0.12/32", "lookup", "2", "prio", "1536")
            try await Self.ip("-n", namespace, "rule", "add", "from", "10.0.0.13/32", "lookup", "2", "prio", "32765")
            let view = try NetworkNamespace(named: namespace).runOnDedicatedThread {
                try KernelView.read(
                    try RouteNetlink(), addressesByENI: ["eni-p": ["10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13"]],
                    vethPrefix: "eni")
            }
            #expect(
                view.kernelTraces == ["10.0.0.10": "route to enic440f455693"],
                "a pod's rules without its route are what a DEL without prevResult, namespace or ipamd leaves behind")
            #expect(view.links.isSuperset(of: ["enic440f455693", "eth9", "lo"]) && view.kernelKnown)
            // A restart's reconcile with this view: the routed address is adopted, the rest stays free.
            let result = Checkpoint(instance: "i-1", mode: .secondaryIPv4).reconcile(
                with: view, now: 1_000_000, cooldown: .seconds(30))
            #expect(Set(result.checkpoint.allocations.map(\.address)) == ["10.0.0.10"])
        } catch {
            try? await Self.ip("netns", "del", namespace)
            throw error
        }
        try await Self.ip("netns", "del", namespace)
    }
}
