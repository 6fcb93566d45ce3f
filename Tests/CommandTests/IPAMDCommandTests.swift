import Foundation
import IPAMProtocol
import TestSupport
import Testbed
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

/// `nodeboot ipamd` as systemd runs it: the real binary, the testbed as the instance.
@Suite("nodeboot ipamd")
struct IPAMDCommandTests {
    static let binary = Paths.debugBinaries.appendingPathComponent("nodeboot").path

    @Test("refused settings: one line each, naming the variable and where to set it; exit 2; nothing served")
    func refused() async throws {
        let root = try ConfigCommandTests.directory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let result = try await ChildProcess.run(
            [Self.binary, "ipamd", "--root", root],
            environment: ChildProcess.cleanEnvironment(["WARM_IP_TARGET": "lots", "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true"]))
        #expect(result.status == 2)
        let lines = result.stderr.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines.first?.hasPrefix("ipamd: refused setting: WARM_IP_TARGET=lots: not a whole number of 0 or more") == true)
        #expect(lines.allSatisfy { $0.hasSuffix("set it in spec.instance.environment.nodeboot-ipamd of the NodeConfig") })
        #expect(!FileManager.default.fileExists(atPath: root + "/run/nodeboot/ipamd.sock"))
        // The same lines in `nodeboot status` (from the status file: nothing answers on the socket).
        let status = try await ChildProcess.run(
            [Self.binary, "status", "--root", root, "--ipamd"], environment: ChildProcess.cleanEnvironment([:]))
        #expect(status.stdout.contains("error: ipamd: refused setting: WARM_IP_TARGET=lots"), "\(status.stdout)")
        #expect(status.stdout.contains("error: ipamd: refused setting: AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true"))

        // A damaged ipamd.json: refused the same way, naming the file, the field and the fix.
        try FileManager.default.createDirectory(atPath: root + "/etc/nodeboot", withIntermediateDirectories: true)
        try #"{"schema":"nodeboot.ipamd/v1","ipFamily":"ipv4","maxPods":0}"#.write(
            toFile: root + "/etc/nodeboot/ipamd.json", atomically: true, encoding: .utf8)
        let damaged = try await ChildProcess.run(
            [Self.binary, "ipamd", "--root", root], environment: ChildProcess.cleanEnvironment([:]))
        #expect(damaged.status == 2)
        #expect(damaged.stderr.contains(root + "/etc/nodeboot/ipamd.json"), "\(damaged.stderr)")
        #expect(damaged.stderr.contains("nodeboot init writes this file"))
    }

    @Test(
        "serves the ENIs' secondary addresses: conflist once serving, add/del over the socket, SIGTERM exits 0, a restart keeps assignments"
    )
    func serves() async throws {
        var configuration = TestbedConfiguration.default
        configuration.networkInterfaces = [
            .init(
                mac: "0e:49:61:0f:c3:12", deviceNumber: 1, interfaceId: "eni-0000000000000000a",
                localIpv4s: ["172.16.34.50", "172.16.34.51", "172.16.34.52"])
        ]
        let testbed = try await Testbed.start(configuration)
        let root = try ConfigCommandTests.directory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let socket = root + "/run/nodeboot/ipamd.sock"
        let metricsPort = try freeLoopbackPort()
        func get(_ path: String) async throws -> (Int, String) {
            let (data, response) = try await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(metricsPort)\(path)")!)
            return ((response as? HTTPURLResponse)?.statusCode ?? 0, String(decoding: data, as: UTF8.self))
        }
        let key = AttachmentKey(container: "c1", ifname: "eth0", network: "nodeboot")
        let pod = PodReference(namespace: "default", name: "nginx", uid: "u1")

        // Every daemon started here is killed however the test ends (an early return included).
        let started = Locked<[Process]>([])
        defer { for process in started.current where process.isRunning { kill(process.processIdentifier, SIGKILL) } }
        func start() throws -> Process {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: Self.binary)
            process.arguments = ["ipamd", "--root", root]
            // The host's network is not the instance's: ipamd must not wire it.
            process.environment = ChildProcess.cleanEnvironment(
                testbed.environment.merging([
                    "NODEBOOT_IPAMD_HOST_NETWORK": "skip", "NODEBOOT_IPAMD_METRICS_ADDRESS": "127.0.0.1:\(metricsPort)",
                ]) { $1 })
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            started.update { $0.append(process) }
            return process
        }
        func waitForSocket() async throws {
            for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) {
                try await Task.sleep(for: .milliseconds(25))
            }
        }
        func stop(_ process: Process) async throws -> Int32 {
            kill(process.processIdentifier, SIGTERM)
            for _ in 0..<200 where process.isRunning { try await Task.sleep(for: .milliseconds(25)) }
            return process.isRunning ? -1 : process.terminationStatus
        }

        let first = try start()
        try await waitForSocket()
        let client = IPAMClient(socketPath: socket)
        // The first grow (14 addresses on the primary ENI through EC2) may still be under way.
        var added = try client.send(.add(key, netns: "/var/run/netns/x", pod: pod))
        for _ in 0..<250 {
            guard case .failed(let error) = added, error.code == .noAddress else { break }
            try await Task.sleep(for: .milliseconds(20))
            added = try client.send(.add(key, netns: "/var/run/netns/x", pod: pod))
        }
        guard case .added(let assignment) = added else {
            Issue.record("add answered \(added)")
            _ = try await stop(first)
            try await testbed.shutdown()
            return
        }
        // The launch template's ENI (not created by nodeboot) is never used: the address is the primary's.
        let foreign = ["172.16.34.50/32", "172.16.34.51/32", "172.16.34.52/32"]
        #expect(!foreign.contains(assignment.ips.first ?? ""))
        #expect(assignment.device == 0 && assignment.table == 254 && assignment.eni != "eni-0000000000000000a")
        // Health and metrics on loopback (aws-node's names): ready, one address assigned.
        var health = (0, "")
        for _ in 0..<100 {
            health = (try? await get("/healthz")) ?? (0, "")
            if health.0 == 200 { break }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(health.0 == 200 && health.1 == "ok\n")
        let metrics = try await get("/metrics")
        #expect(metrics.0 == 200)
        #expect(metrics.1.contains("awscni_assigned_ip_addresses 1\n"), "\(metrics.1)")
        // One pod of the primary ENI's 14 leaves 13 free, under WARM_ENI_TARGET=1's 14: the reconciler's next pass grows
        // by a second ENI, counted once attached and its 14 addresses once they show (clean-clone runs on a loaded
        // machine caught both in-between states). Which of them /metrics shows is a race, so any of them counts.
        let grown = metrics.1.contains("awscni_eni_allocated 2\n")
        let pool =
            (metrics.1.contains("awscni_total_ip_addresses 14\n")
                && (grown || metrics.1.contains("awscni_eni_allocated 1\n")))
            || (grown && metrics.1.contains("awscni_total_ip_addresses 28\n"))
        #expect(pool, "the primary ENI's 14 slots, with or without the second ENI and its 14: \(metrics.1)")
        let conflist = try String(contentsOfFile: root + "/etc/cni/net.d/10-nodeboot.conflist", encoding: .utf8)
        #expect(conflist.contains(#""type":"nodeboot-cni""#))
        #expect(conflist.contains(#""socket":"\#(socket)""#), "the socket this daemon serves, under --root too")
        #expect(try await stop(first) == 0)
        #expect(!FileManager.default.fileExists(atPath: socket), "the socket is removed at shutdown")

        // A new daemon reads the checkpoint: the same key keeps its address, the next gets another.
        let second = try start()
        try await waitForSocket()
        #expect(try client.send(.add(key, netns: "/var/run/netns/x", pod: pod)) == added)
        guard
            case .added(let other) = try client.send(
                .add(AttachmentKey(container: "c2", ifname: "eth0", network: "nodeboot"), netns: "/n", pod: pod))
        else {
            Issue.record("second add failed")
            return
        }
        #expect(other.ips != assignment.ips && other.eni == assignment.eni && !foreign.contains(other.ips.first ?? ""))
        guard case .deleted(let known, _) = try client.send(.del(key, pod: pod, reason: "test")) else {
            Issue.record("del"); return
        }
        #expect(known)
        #expect(try await stop(second) == 0)
        try await testbed.shutdown()
    }
}

extension IPAMDCommandTests {
    @Test("an EC2 failure (UnauthorizedOperation on every grow): one line in the daemon's log, counted in nodeboot status")
    func ec2Failure() async throws {
        var configuration = TestbedConfiguration.default
        configuration.faults = [
            FaultRule(endpoint: .ec2, action: "AssignPrivateIpAddresses", status: 403, code: "UnauthorizedOperation")
        ]
        let testbed = try await Testbed.start(configuration)
        let root = try ConfigCommandTests.directory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        let log = root + "/ipamd.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["ipamd", "--root", root]
        process.environment = ChildProcess.cleanEnvironment(
            testbed.environment.merging([
                "NODEBOOT_IPAMD_HOST_NETWORK": "skip", "NODEBOOT_IPAMD_METRICS_ADDRESS": "127.0.0.1:\(try freeLoopbackPort())",
            ]) { $1 })
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle(forWritingAtPath: log)
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // The reconciler tries at start and every 5 s: wait for the second attempt to be counted.
        var status = ""
        for _ in 0..<400 {
            let result = try await ChildProcess.run(
                [Self.binary, "status", "--root", root, "--ipamd"], environment: ChildProcess.cleanEnvironment([:]))
            status = result.stdout
            if status.contains("(2 times)") { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        kill(process.processIdentifier, SIGTERM)
        for _ in 0..<200 where process.isRunning { try await Task.sleep(for: .milliseconds(25)) }
        try await testbed.shutdown()
        #expect(status.contains("UnauthorizedOperation"), "\(status)")
        #expect(status.contains("(2 times)"), "the failure is counted, not repeated: \(status)")
        let lines = try String(contentsOfFile: log, encoding: .utf8).split(separator: "\n")
        #expect(lines.filter { $0.contains("UnauthorizedOperation") }.count == 1, "one journal line: \(lines)")
    }
}
