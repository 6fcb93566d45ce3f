import Bootstrap
import Foundation
import TestSupport
import Testing

@Suite("online CPUs from sysfs (nodeadm's resources_test facts)")
struct OnlineCPUsTests {
    /// A scratch sysfs: `cpus` CPU directories, `nodes` mapping node number to its CPUs, optional `online`.
    static func tree(cpus: [Int], nodes: [Int: [Int]] = [:], online: String? = nil) throws -> (cpu: String, node: String) {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("sysfs-\(UUID().uuidString)")
        let cpu = root.appendingPathComponent("cpu")
        let node = root.appendingPathComponent("node")
        for id in cpus {
            try FileManager.default.createDirectory(at: cpu.appendingPathComponent("cpu\(id)"), withIntermediateDirectories: true)
        }
        try FileManager.default.createDirectory(at: node, withIntermediateDirectories: true)
        for (number, members) in nodes {
            for id in members {
                try FileManager.default.createDirectory(
                    at: node.appendingPathComponent("node\(number)/cpu\(id)"), withIntermediateDirectories: true)
            }
        }
        if let online { try Data(online.utf8).write(to: cpu.appendingPathComponent("online")) }
        return (cpu.path, node.path)
    }

    @Test("nodeadm's e2e sysfs tree has 2 online CPUs")
    func conformanceTree() throws {
        let infra = Paths.conformance.appendingPathComponent("nodeadm/_infra")
        let count = try OnlineCPUs.count(
            cpuDirectory: infra.appendingPathComponent("cpu").path, nodeDirectory: infra.appendingPathComponent("node").path)
        #expect(count == 2)
    }

    @Test("the unit-test layouts")
    func layouts() throws {
        let flat = try Self.tree(cpus: [0, 1, 2, 3])
        #expect(try OnlineCPUs.count(cpuDirectory: flat.cpu, nodeDirectory: flat.node) == 4)
        let oneNode = try Self.tree(cpus: [0, 1, 2, 3], nodes: [0: [0, 1, 2, 3]])
        #expect(try OnlineCPUs.count(cpuDirectory: oneNode.cpu, nodeDirectory: oneNode.node) == 4)
        let twoNodes = try Self.tree(cpus: [0, 1, 2, 3], nodes: [0: [0, 1], 1: [2, 3]])
        #expect(try OnlineCPUs.count(cpuDirectory: twoNodes.cpu, nodeDirectory: twoNodes.node) == 4)
        let sparse = try Self.tree(
            cpus: Array(0...7), nodes: [0: [0, 1], 1: [2, 3], 2: [4, 5], 3: [6], 4: [7]], online: "0,2-4,6\n")
        #expect(try OnlineCPUs.count(cpuDirectory: sparse.cpu, nodeDirectory: sparse.node) == 5)
    }

    @Test("a malformed online list is an error naming the file")
    func malformed() throws {
        let bad = try Self.tree(cpus: [0], online: "0-1-2")
        #expect(throws: OnlineCPUs.Failure.self) { try OnlineCPUs.count(cpuDirectory: bad.cpu, nodeDirectory: bad.node) }
        do {
            _ = try OnlineCPUs.count(cpuDirectory: bad.cpu, nodeDirectory: bad.node)
        } catch {
            #expect(error.description.contains("/online: '0-1-2' has more than two parts"))
        }
    }
}
