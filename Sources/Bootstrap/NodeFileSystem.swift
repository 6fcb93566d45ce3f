import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// The few file operations the agent needs, on plain POSIX calls: whole-file reads, directory
/// listings, and atomic writes (temporary file in the same directory, fsync, rename, fsync of
/// the directory).
public enum NodeFileSystem {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var path: String
        public var operation: String
        public var errno: Int32

        public var description: String {
            "\(operation) \(path): \(String(cString: strerror(errno)))"
        }
    }

    public struct Status: Sendable, Equatable {
        public var isDirectory: Bool
        public var isRegular: Bool
        public var mode: UInt16
        public var size: Int
    }

    public static func status(_ path: String) -> Status? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let type = info.st_mode & S_IFMT
        return Status(
            isDirectory: type == S_IFDIR, isRegular: type == S_IFREG, mode: UInt16(info.st_mode & 0o7777),
            size: Int(info.st_size))
    }

    public static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    /// The file's bytes; nil when it does not exist. Reads at most `limit` bytes + 1 so a caller
    /// can tell "too large".
    public static func read(_ path: String, limit: Int = 64 << 20) throws(Failure) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw Failure(path: path, operation: "open", errno: errno)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while bytes.count <= limit {
            let count = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, operation: "read", errno: errno)
            }
            if count == 0 { break }
            bytes += buffer[0..<count]
        }
        return bytes
    }

    /// Names in a directory (no `.`/`..`), sorted bytewise; nil when it is not a directory.
    public static func list(_ path: String) -> [String]? {
        guard let directory = opendir(path) else { return nil }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
    }

    /// `mkdir -p` with `mode` for the directories it creates.
    public static func makeDirectories(_ path: String, mode: UInt16 = 0o755) throws(Failure) {
        if status(path)?.isDirectory == true { return }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]), mode: 0o755)
        }
        if mkdir(path, mode_t(mode)) != 0 && errno != EEXIST {
            throw Failure(path: path, operation: "mkdir", errno: errno)
        }
    }

    /// Writes `bytes` to `path` atomically with `mode`: a reader sees the old file or the new
    /// one, never a part.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: UInt16) throws(Failure) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        try makeDirectories(directory.isEmpty ? "/" : directory)
        let name = path.split(separator: "/").last.map(String.init) ?? "file"
        let temporary = "\(directory)/.\(name).nodeboot-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode_t(mode))
        guard fd >= 0 else { throw Failure(path: temporary, operation: "create", errno: errno) }
        var failure: Failure?
        var offset = 0
        while offset < bytes.count && failure == nil {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno != EINTR { failure = Failure(path: temporary, operation: "write", errno: errno) }
            } else {
                offset += written
            }
        }
        if failure == nil && fchmod(fd, mode_t(mode)) != 0 {
            failure = Failure(path: temporary, operation: "chmod", errno: errno)
        }
        if failure == nil && fsync(fd) != 0 { failure = Failure(path: temporary, operation: "fsync", errno: errno) }
        close(fd)
        if failure == nil && rename(temporary, path) != 0 { failure = Failure(path: path, operation: "rename", errno: errno) }
        if let failure {
            unlink(temporary)
            throw failure
        }
        let directoryFD = open(directory.isEmpty ? "/" : directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if directoryFD >= 0 {
            fsync(directoryFD)
            close(directoryFD)
        }
    }

    /// Where a symbolic link points; nil when `path` is not a link.
    public static func linkTarget(_ path: String) -> String? {
        var buffer = [CChar](repeating: 0, count: 4096)
        let count = readlink(path, &buffer, buffer.count - 1)
        guard count >= 0 else { return nil }
        return String(decoding: buffer[0..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Makes `path` a symbolic link to `target`: a new link beside it, renamed over it.
    public static func linkAtomically(_ path: String, target: String) throws(Failure) {
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        try makeDirectories(directory.isEmpty ? "/" : directory)
        let temporary = "\(directory)/.\(path.split(separator: "/").last ?? "link").nodeboot-\(getpid())"
        unlink(temporary)
        guard symlink(target, temporary) == 0 else { throw Failure(path: temporary, operation: "symlink", errno: errno) }
        guard rename(temporary, path) == 0 else {
            let failure = Failure(path: path, operation: "rename", errno: errno)
            unlink(temporary)
            throw failure
        }
    }

    /// The running executable's path (`/proc/self/exe`).
    public static var executablePath: String? { linkTarget("/proc/self/exe") }

    public static func remove(_ path: String) throws(Failure) {
        if unlink(path) != 0 && errno != ENOENT { throw Failure(path: path, operation: "remove", errno: errno) }
    }
}
