import Support

#if canImport(Glibc)
    import Glibc
#endif

/// The hint for a node file the agent cannot write, from the failure's errno: a read-only or
/// full filesystem is said as such (the fault matrix's disk rows), anything else gets `fallback`.
enum DiskErrorHint {
    static func hint(for error: any Error, fallback: String) -> String {
        guard let failure = error as? NodeFileSystem.Failure else { return fallback }
        switch failure.errno {
        case EROFS:
            return
                "the filesystem holding \(failure.path) is read-only: check `dmesg` for a read-only remount and mount it read-write (/run is a tmpfs on a booted node), then run nodeboot init again"
        case ENOSPC, EDQUOT:
            return "the filesystem holding \(failure.path) is full: free space on it, then run nodeboot init again"
        default:
            return fallback
        }
    }
}
