import Foundation
import IPAM
import IPAMProtocol
import Testing

@Suite("ipamd checkpoint")
struct CheckpointTests {
    static let nginx = PodReference(namespace: "default", name: "nginx", uid: "u1")
    static func key(_ container: String) -> AttachmentKey {
        AttachmentKey(container: container, ifname: "eth0", network: "nodeboot")
    }

    static var sample: Checkpoint {
        var checkpoint = Checkpoint(instance: "i-0abc", mode: .secondaryIPv4)
        checkpoint.allocations = [
            .init(key: key("c2"), address: "10.0.97.31", eni: "eni-1", pod: nil, since: 2000),
            .init(key: key("c1"), address: "10.0.97.30", eni: "eni-1", pod: nginx, since: 1000),
        ]
        checkpoint.cooling = [.init(address: "10.0.97.40", until: 5000)]
        checkpoint.intents = [.init(operation: .createENI, token: "nb-1", eni: "eni-2", since: 3000)]
        return checkpoint
    }

    @Test("the bytes: fixed key order, sorted arrays, a trailing newline; decoding gives the state back")
    func bytes() throws {
        let text = String(decoding: Self.sample.bytes, as: UTF8.self)
        #expect(
            text == #"{"version":1,"instance":"i-0abc","mode":"ipv4-secondary","allocations":["#
                + #"{"network":"nodeboot","container":"c1","ifname":"eth0","address":"10.0.97.30","eni":"eni-1","pod":{"namespace":"default","name":"nginx","uid":"u1"},"since":1000},"#
                + #"{"network":"nodeboot","container":"c2","ifname":"eth0","address":"10.0.97.31","eni":"eni-1","since":2000}],"#
                + #""cooling":[{"address":"10.0.97.40","until":5000}],"intents":[{"op":"createENI","token":"nb-1","eni":"eni-2","since":3000}]}"#
                + "\n")
        let decoded = try Checkpoint(bytes: Self.sample.bytes)
        #expect(decoded.bytes == Self.sample.bytes)
    }

    @Test("a newer format refuses the start; a damaged file names the field and the way out")
    func refusals() {
        let newer = #expect(throws: Checkpoint.Failure.self) {
            try Checkpoint(bytes: Array(#"{"version":2,"instance":"i","mode":"ipv6"}"#.utf8), path: "/run/x.json")
        }
        #expect(newer?.description.contains("written by a newer nodeboot (format 2; this one reads 1)") == true)
        let damaged = #expect(throws: Checkpoint.Failure.self) {
            try Checkpoint(
                bytes: Array(#"{"version":1,"instance":"i","mode":"ipv6","allocations":[{"network":"n","container":"c"}]}"#.utf8))
        }
        #expect(damaged?.message == "'allocations[0].ifname' is missing")
        #expect(damaged?.hint.contains("rebuilt from the kernel's pod routes") == true)
        #expect(throws: Checkpoint.Failure.self) { try Checkpoint(bytes: Array("{".utf8)) }
    }

    @Test("written atomically with mode 0600 in a 0700 directory; a missing file is a first start")
    func files() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/ipamd/checkpoint.json"
        #expect(try Checkpoint.load(path) == nil)
        try Self.sample.write(path)
        #expect(try Checkpoint.load(path)?.bytes == Self.sample.bytes)
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        let directoryAttributes = try FileManager.default.attributesOfItem(atPath: directory + "/ipamd")
        #expect((directoryAttributes[.posixPermissions] as? Int) == 0o700)
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/ipamd") == ["checkpoint.json"])
    }

    @Test("reconcile: in use kept, missed DEL cools down, kernel-only addresses adopted, unknown addresses kept")
    func reconcile() {
        let now: Int64 = 10_000_000
        var stored = Checkpoint(instance: "i-0abc", mode: .secondaryIPv4)
        stored.allocations = [
            // A pod whose route is there.
            .init(key: Self.key("routed"), address: "10.0.0.10", eni: "eni-p", pod: nil, since: 0),
            // A pod whose host veth exists (route not yet there).
            .init(key: Self.key("veth"), address: "10.0.0.11", eni: "eni-p", pod: Self.nginx, since: 0),
            // Old, no trace: the DEL never came.
            .init(
                key: Self.key("gone"), address: "10.0.0.12", eni: "eni-p",
                pod: PodReference(namespace: "web", name: "old"), since: 0),
            // Young, no trace: the plugin may be wiring it right now.
            .init(key: Self.key("young"), address: "10.0.0.13", eni: "eni-p", pod: nil, since: now - 1000),
            // On no ENI IMDS lists.
            .init(key: Self.key("lost"), address: "10.0.9.9", eni: "eni-x", pod: nil, since: 0),
        ]
        stored.cooling = [.init(address: "10.0.0.20", until: now - 1), .init(address: "10.0.0.21", until: now + 5000)]
        let host = HostObservation(
            addressesByENI: [
                "eni-p": ["10.0.0.10", "10.0.0.11", "10.0.0.12", "10.0.0.13", "10.0.0.14", "10.0.0.20", "10.0.0.21"]
            ],
            kernelTraces: ["10.0.0.10": "route to enia", "10.0.0.14": "route to enib"],
            links: ["eth0", hostVethName(namespace: "default", name: "nginx")])
        let result = stored.reconcile(with: host, now: now, cooldown: .seconds(30))
        let held = Dictionary(uniqueKeysWithValues: result.checkpoint.allocations.map { ($0.address, $0.key.container) })
        #expect(
            held == [
                "10.0.0.10": "routed", "10.0.0.11": "veth", "10.0.0.13": "young", "10.0.9.9": "lost",
                "10.0.0.14": "kernel:10.0.0.14 route to enib",
            ])
        #expect(
            result.checkpoint.cooling == [
                .init(address: "10.0.0.21", until: now + 5000), .init(address: "10.0.0.12", until: now + 30_000),
            ])
        #expect(result.notes.contains { $0.contains("10.0.9.9") && $0.contains("never handed out again") })
        #expect(result.notes.contains { $0.contains("released 10.0.0.12 of pod web/old") && $0.contains("missed CNI DEL") })
        #expect(
            result.notes.contains { $0.contains("10.0.0.14 is used by the kernel (route to enib)") && $0.contains("adopted") })
        // Next pass: the adopted address's route is gone, so it is released (and cools down).
        let later = HostObservation(
            addressesByENI: host.addressesByENI, kernelTraces: ["10.0.0.10": "route to enia"], links: host.links)
        let second = result.checkpoint.reconcile(with: later, now: now + 1000, cooldown: .seconds(30))
        #expect(!second.checkpoint.allocations.contains { $0.address == "10.0.0.14" })
        #expect(second.checkpoint.cooling.contains { $0.address == "10.0.0.14" })
    }
}
