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
        /// Some of the targets were already replaced when this failed (only a failed rename of `writeAll`).
        public var changedTargets = false

        public init(path: String, operation: String, errno: Int32) {
            self.path = path
            self.operation = operation
            self.errno = errno
        }

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

    /// Writes `bytes` to `path` atomically with `mode` (a reader sees the old file or the new one,
    /// never a part), durably: `writeAll` of one file.
    public static func writeAtomically(_ path: String, _ bytes: [UInt8], mode: UInt16) throws(Failure) {
        try writeAll([(path, bytes, mode)])
    }

    /// Writes files all or nothing, durably, with few flushes: each is staged beside its target
    /// (`.NAME.nodeboot-PID`, written, its mode set), then all staged files are fsynced (one
    /// journal commit serves most of them), then renamed over their targets, then each
    /// directory is fsynced once. A failure while staging or flushing removes every staged file
    /// and changes no target (`Failure.changedTargets` is false); a failed rename (the
    /// filesystem turning read-only) leaves the files renamed before it in place.
    public static func writeAll(_ files: [(path: String, bytes: [UInt8], mode: UInt16)]) throws(Failure) {
        var staged: [Staged] = []
        do throws(Failure) {
            for file in files { staged.append(try stage(file.path, file.bytes, mode: file.mode)) }
            try flush(staged)
        } catch {
            for file in staged {
                close(file.descriptor)
                unlink(file.temporary)
            }
            throw error
        }
        for file in staged { close(file.descriptor) }
        for (index, file) in staged.enumerated() where rename(file.temporary, file.path) != 0 {
            var failure = Failure(path: file.path, operation: "rename", errno: errno)
            failure.changedTargets = index > 0
            for rest in staged[index...] { unlink(rest.temporary) }
            throw failure
        }
        var directories: [String] = []
        for file in staged where !directories.contains(file.directory) { directories.append(file.directory) }
        for directory in directories {
            let descriptor = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            if descriptor >= 0 {
                fsync(descriptor)
                close(descriptor)
            }
        }
    }

    /// Makes the staged files durable: one `syncfs` per filesystem they are on (a single journal
    /// flush instead of one per file), or one `fsync` each where the C library has no syncfs.
    static func flush(_ staged: [Staged]) throws(Failure) {
        guard let syncfs = GNU.syncfs else {
            for file in staged where fsync(file.descriptor) != 0 {
                throw Failure(path: file.temporary, operation: "fsync", errno: errno)
            }
            return
        }
        var devices: [UInt64] = []
        for file in staged {
            var status = stat()
            guard fstat(file.descriptor, &status) == 0 else {
                throw Failure(path: file.temporary, operation: "stat", errno: errno)
            }
            if devices.contains(UInt64(status.st_dev)) { continue }
            devices.append(UInt64(status.st_dev))
            if syncfs(file.descriptor) != 0 { throw Failure(path: file.temporary, operation: "syncfs", errno: errno) }
        }
    }

    /// A file written under a temporary name beside its target, still open, not yet renamed.
    struct Staged {
        var path: String
        var directory: String
        var temporary: String
        var descriptor: Int32
    }

    static func stage(_ path: String, _ bytes: [UInt8], mode: UInt16) throws(Failure) -> Staged {
        var directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        if directory.isEmpty { directory = "/" }
        try makeDirectories(directory)
        let name = path.split(separator: "/").last.map(String.init) ?? "file"
        let temporary = "\(directory == "/" ? "" : directory)/.\(name).nodeboot-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, mode_t(mode))
        guard descriptor >= 0 else { throw Failure(path: temporary, operation: "create", errno: errno) }
        var failure: Failure?
        var offset = 0
        while offset < bytes.count && failure == nil {
            let written = bytes[offset...].withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno != EINTR { failure = Failure(path: temporary, operation: "write", errno: errno) }
            } else {
                offset += written
            }
        }
        if failure == nil && fchmod(descriptor, mode_t(mode)) != 0 {
            failure = Failure(path: temporary, operation: "chmod", errno: errno)
        }
        if let failure {
            close(descriptor)
            unlink(temporary)
            throw failure
        }
        return Staged(path: path, directory: directory, temporary: temporary, descriptor: descriptor)
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
