import Foundation
import Support
import Testing

@Suite("byte search and whole-file reads")
struct BytesTests {
    /// The obvious search, for comparison.
    static func naive(_ haystack: [UInt8], _ needle: [UInt8], from start: Int) -> Int? {
        guard !needle.isEmpty, haystack.count >= needle.count else { return nil }
        var index = max(start, 0)
        while index <= haystack.count - needle.count {
            if Array(haystack[index..<index + needle.count]) == needle { return index }
            index += 1
        }
        return nil
    }

    @Test("firstIndex(of:from:) finds what a plain loop finds: edges, repeats, overlaps, starts out of range")
    func search() {
        let cases: [([UInt8], [UInt8], Int)] = [
            ([], [1], 0), ([1], [], 0), ([1, 2, 3], [1, 2, 3], 0), ([1, 2, 3], [3], 0), ([1, 2, 3], [3], 3),
            ([1, 2, 3], [1, 2, 3, 4], 0), ([1, 1, 1, 2], [1, 1, 2], 0), ([1, 1, 1, 2], [1, 1, 2], 2),
            ([0, 9, 0, 9, 0, 9, 7], [0, 9, 7], -5), ([5, 5, 5], [5, 5], 1), ([5, 5, 5], [5, 5], 2),
        ]
        for (haystack, needle, start) in cases {
            #expect(haystack.firstIndex(of: needle, from: start) == Self.naive(haystack, needle, from: start))
        }
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<300 {
            let haystack = (0..<Int.random(in: 0..<200, using: &generator)).map { _ in UInt8.random(in: 0...3) }
            let needle = (0..<Int.random(in: 1..<5, using: &generator)).map { _ in UInt8.random(in: 0...3) }
            let start = Int.random(in: -2..<210, using: &generator)
            #expect(
                haystack.firstIndex(of: needle, from: start) == Self.naive(haystack, needle, from: start),
                "\(haystack) \(needle) \(start)")
        }
    }

    @Test("read returns a file's bytes whole (empty, small, over the 64 KiB chunk), nil when it does not exist")
    func read() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("bytes-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        for size in [0, 1, 4095, 65536, 65537, 200_000] {
            let bytes = (0..<size).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let path = directory.appendingPathComponent("f\(size)").path
            try Data(bytes).write(to: URL(fileURLWithPath: path))
            #expect(try NodeFileSystem.read(path) == bytes, "\(size)")
        }
        #expect(try NodeFileSystem.read(directory.appendingPathComponent("missing").path) == nil)
    }
}
