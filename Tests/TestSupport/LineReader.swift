public import Foundation

/// Reads a child's output line by line on a thread of its own; `next` waits without blocking
/// the cooperative pool.
public final class LineReader: @unchecked Sendable {  // state only touched under the lock
    private let lock = NSLock()
    private var all: [String] = []
    private var cursor = 0

    public init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            var buffer = Data()
            while true {
                let chunk = handle.availableData
                if chunk.isEmpty { return }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: 0x0A) {
                    let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                    buffer.removeSubrange(buffer.startIndex...newline)
                    lock.withLock { all.append(line) }
                }
            }
        }
    }

    /// Every complete line so far.
    public var lines: [String] { lock.withLock { all } }

    /// Lines not yet returned by `next`.
    public var unread: [String] { lock.withLock { Array(all[cursor...]) } }

    /// The next unread line, waiting at most `timeout` seconds for it.
    public func next(timeout: TimeInterval) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            let line: String? = lock.withLock {
                guard cursor < all.count else { return nil }
                cursor += 1
                return all[cursor - 1]
            }
            if let line { return line }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw TestSupportError("no line within \(timeout) s")
    }
}
