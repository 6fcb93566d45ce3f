import Bootstrap
import Foundation
import Testing

@Suite("online memory from sysfs (nodeadm's resources_test facts)")
struct OnlineMemoryTests {
    /// A scratch memory directory: the block size and one `memory<N>/online` per entry.
    static func tree(blockSize: String, online: [String?]) throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("memory-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        try Data(blockSize.utf8).write(to: root.appendingPathComponent("block_size_bytes"))
        for (index, state) in online.enumerated() {
            let block = root.appendingPathComponent("memory\(index)")
            try FileManager.default.createDirectory(at: block, withIntermediateDirectories: true)
            if let state { try Data(state.utf8).write(to: block.appendingPathComponent("online")) }
        }
        return root.path
    }

    @Test("block size × online blocks: one, two of three, none")
    func counts() throws {
        #expect(try OnlineMemory.bytes(memoryDirectory: Self.tree(blockSize: "8000000\n", online: ["1\n"])) == 0x800_0000)
        #expect(
            try OnlineMemory.bytes(memoryDirectory: Self.tree(blockSize: "8000000\n", online: ["1\n", "0\n", "1\n"]))
                == 2 * 0x800_0000)
        #expect(try OnlineMemory.bytes(memoryDirectory: Self.tree(blockSize: "8000000\n", online: ["0\n", nil])) == 0)
    }

    @Test("a missing or unreadable block size is an error naming the file")
    func errors() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("memory-none-\(UUID().uuidString)")
        #expect(throws: OnlineMemory.Failure.self) { try OnlineMemory.bytes(memoryDirectory: missing.path) }
        do {
            _ = try OnlineMemory.bytes(memoryDirectory: Self.tree(blockSize: "zz\n", online: ["1"]))
            Issue.record("accepted a block size that is not hexadecimal")
        } catch {
            #expect("\(error)".contains("block_size_bytes") && "\(error)".contains("'zz'"))
        }
    }

    @Test("this machine's sysfs, when it has one, reads as a plausible size")
    func thisMachine() throws {
        guard FileManager.default.fileExists(atPath: "/sys/devices/system/memory/block_size_bytes") else { return }
        let bytes = try OnlineMemory.bytes(memoryDirectory: "/sys/devices/system/memory")
        #expect(bytes > 256 << 20)
    }
}
