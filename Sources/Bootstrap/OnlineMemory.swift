import FoundationEssentials

/// Online memory from sysfs, as nodeadm measures it for the FastImagePull threshold: the memory
/// block size (`block_size_bytes`, hex) times the number of `memory<N>` blocks whose `online`
/// reads `1`. The directory is a parameter so a test or `--root` can point it at a copied tree.
public enum OnlineMemory {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func bytes(memoryDirectory: String) throws(Failure) -> UInt64 {
        let sizePath = memoryDirectory + "/block_size_bytes"
        guard let data = FileManager.default.contents(atPath: sizePath) else {
            throw Failure(description: "\(sizePath) is missing")
        }
        let text = String(decoding: data, as: UTF8.self).filter { !$0.isWhitespace }
        let digits = text.hasPrefix("0x") ? String(text.dropFirst(2)) : text
        guard let blockSize = UInt64(digits, radix: 16), blockSize > 0 else {
            throw Failure(description: "\(sizePath): '\(text)' is not a hexadecimal block size")
        }
        var online: UInt64 = 0
        for block in OnlineCPUs.entries(memoryDirectory, prefix: "memory") {
            let state = FileManager.default.contents(atPath: "\(memoryDirectory)/\(block.name)/online")
            if let state, String(decoding: state, as: UTF8.self).filter({ !$0.isWhitespace }) == "1" { online += 1 }
        }
        return blockSize.multipliedReportingOverflow(by: online).overflow ? .max : blockSize * online
    }
}
