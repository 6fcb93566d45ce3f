import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// Unbuffered, complete writes to stdout and stderr (no `FileHandle`: that needs full
/// Foundation), serialised so that lines of concurrent writers do not interleave. A stream that
/// is closed or full drops the rest: there is nowhere left to report it.
public enum StandardStreams {
    private static let lock = Mutex(())

    /// Writes `text` to file descriptor 1 (an ExecCredential read by client-go, reports).
    public static func output(_ text: String) { write(text, to: 1) }

    /// Writes `text` to file descriptor 2 (errors, progress lines).
    public static func error(_ text: String) { write(text, to: 2) }

    static func write(_ text: String, to descriptor: Int32) {
        lock.withLock { _ in
            let bytes = Array(text.utf8)
            var offset = 0
            while offset < bytes.count {
                let written = bytes.withUnsafeBytes { buffer -> Int in
                    guard let base = buffer.baseAddress else { return 0 }
                    return Glibc.write(descriptor, base + offset, buffer.count - offset)
                }
                if written > 0 {
                    offset += written
                } else if written < 0 && errno == EINTR {
                    continue
                } else {
                    return
                }
            }
        }
    }
}
