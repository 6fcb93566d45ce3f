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
        // Not zeroed: a zeroed 64 KiB array per read cost more than the reads of a run's small files.
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)
        defer { buffer.deallocate() }
        while bytes.count <= limit {
            let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if count < 0 {
                if errno == EINTR { continue }
                throw Failure(path: path, operation: "read", errno: errno)
            }
            if count == 0 { break }
            bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: buffer[0..<count]))
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
        var created: [String] = []
        try makeDirectories(path, mode: mode, created: &created)
    }

    /// `mkdir -p` that appends each directory it created to `created`, outermost first (so a
    /// caller that gives up can remove them again, innermost first).
    static func makeDirectories(_ path: String, mode: UInt16, created: inout [String]) throws(Failure) {
        if status(path)?.isDirectory == true { return }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try makeDirectories(String(path[..<slash]), mode: 0o755, created: &created)
        }
        if mkdir(path, mode_t(mode)) == 0 {
            created.append(path)
        } else if errno != EEXIST {
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
    /// and every directory it created, and changes no target (`Failure.changedTargets` is
    /// false); a failed rename (the filesystem turning read-only) leaves the files renamed
    /// before it in place. A process killed before its renames leaves staged files behind:
    /// `removeStaleStaged` removes them on the next run.
    ///
    /// `links` (path, target) are symbolic links staged and renamed in the same batch, after the files.
    public static func writeAll(
        _ files: [(path: String, bytes: [UInt8], mode: UInt16)], links: [(path: String, target: String)] = []
    ) throws(Failure) {
        var staged: [Staged] = []
        var created: [String] = []
        do throws(Failure) {
            for file in files { staged.append(try stage(file.path, file.bytes, mode: file.mode, created: &created)) }
            for link in links { staged.append(try stageLink(link.path, target: link.target, created: &created)) }
            try flush(staged)
        } catch {
            for file in staged {
                if file.descriptor >= 0 { close(file.descriptor) }
                unlink(file.temporary)
            }
            for directory in created.reversed() { rmdir(directory) }
            throw error
        }
        for file in staged where file.descriptor >= 0 { close(file.descriptor) }
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
        var devices: [UInt64] = []
        for file in staged {
            // A staged link has no descriptor: its directory stands for it.
            let descriptor = file.descriptor >= 0 ? file.descriptor : open(file.directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard descriptor >= 0 else { throw Failure(path: file.directory, operation: "open", errno: errno) }
            defer { if descriptor != file.descriptor { close(descriptor) } }
            guard let syncfs = GNU.syncfs else {
                if fsync(descriptor) != 0 { throw Failure(path: file.temporary, operation: "fsync", errno: errno) }
                continue
            }
            var status = stat()
            guard fstat(descriptor, &status) == 0 else {
                throw Failure(path: file.temporary, operation: "stat", errno: errno)
            }
            if devices.contains(UInt64(status.st_dev)) { continue }
            devices.append(UInt64(status.st_dev))
            if syncfs(descriptor) != 0 { throw Failure(path: file.temporary, operation: "syncfs", errno: errno) }
        }
    }

    /// A file written under a temporary name beside its target, still open, not yet renamed (a
    /// staged link: descriptor -1).
    struct Staged {
        var path: String
        var directory: String
        var temporary: String
        var descriptor: Int32
    }

    static func stageLink(_ path: String, target: String, created: inout [String]) throws(Failure) -> Staged {
        var directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        if directory.isEmpty { directory = "/" }
        try makeDirectories(directory, mode: 0o755, created: &created)
        let name = path.split(separator: "/").last.map(String.init) ?? "link"
        let temporary = "\(directory == "/" ? "" : directory)/\(stagedName(name, pid: getpid()))"
        unlink(temporary)
        guard symlink(target, temporary) == 0 else { throw Failure(path: temporary, operation: "symlink", errno: errno) }
        return Staged(path: path, directory: directory, temporary: temporary, descriptor: -1)
    }

    static func stage(_ path: String, _ bytes: [UInt8], mode: UInt16, created: inout [String]) throws(Failure) -> Staged {
        var directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        if directory.isEmpty { directory = "/" }
        try makeDirectories(directory, mode: 0o755, created: &created)
        let name = path.split(separator: "/").last.map(String.init) ?? "file"
        let temporary = "\(directory == "/" ? "" : directory)/\(stagedName(name, pid: getpid()))"
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
        let temporary = "\(directory)/\(stagedName(path.split(separator: "/").last.map(String.init) ?? "link", pid: getpid()))"
        unlink(temporary)
        guard symlink(target, temporary) == 0 else { throw Failure(path: temporary, operation: "symlink", errno: errno) }
        guard rename(temporary, path) == 0 else {
            let failure = Failure(path: path, operation: "rename", errno: errno)
            unlink(temporary)
            throw failure
        }
    }

    /// The name a file is staged under beside its target: `.NAME.nodeboot-PID`.
    public static func stagedName(_ name: String, pid: Int32) -> String { ".\(name).nodeboot-\(pid)" }

    /// The process that staged a file, when `name` has `stagedName`'s form; nil otherwise.
    public static func stagingProcess(_ name: String) -> Int32? {
        let bytes = Array(name.utf8)
        let marker = Array(".nodeboot-".utf8)
        var digits = bytes.count
        while digits > 0 && (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[digits - 1]) { digits -= 1 }
        // `.` + at least one byte of name + `.nodeboot-` + 1 to 10 digits.
        guard bytes.first == UInt8(ascii: "."), digits < bytes.count, bytes.count - digits <= 10,
            digits >= marker.count + 2, Array(bytes[(digits - marker.count)..<digits]) == marker,
            let pid = Int32(String(decoding: bytes[digits...], as: UTF8.self)), pid > 0
        else { return nil }
        return pid
    }

    /// Removes the files staged by processes that are gone (`.NAME.nodeboot-PID` left by a
    /// writer killed before its renames) from `directories`, and returns their paths. Only names
    /// of that form, only regular files and symbolic links, only in the directories given (not
    /// below them). A file is stale when no process PID exists, or when the process with that
    /// PID started after the file was last written (the PID was reused, after a reboot or a
    /// wrap); the staged files of a live writer are never touched.
    public static func removeStaleStaged(in directories: [String]) -> [String] {
        var removed: [String] = []
        var seen: Set<String> = []
        for directory in directories where seen.insert(directory).inserted {
            for name in list(directory) ?? [] {
                guard let pid = stagingProcess(name) else { continue }
                let path = (directory == "/" ? "" : directory) + "/" + name
                var info = stat()
                guard lstat(path, &info) == 0 else { continue }
                let type = info.st_mode & S_IFMT
                guard type == S_IFREG || type == S_IFLNK else { continue }
                if let started = processStart(pid), started <= Double(info.st_mtim.tv_sec) + 2 { continue }
                if unlink(path) == 0 { removed.append(path) }
            }
        }
        return removed
    }

    /// When process `pid` started, in seconds since the epoch (whole-second precision: the boot
    /// time in /proc/stat has no more); nil when there is no such process.
    static func processStart(_ pid: Int32) -> Double? {
        if kill(pid, 0) != 0 && errno == ESRCH { return nil }
        guard let stat = try? read("/proc/\(pid)/stat", limit: 4096),
            let close = stat.lastIndex(of: UInt8(ascii: ")"))
        else { return 0 }  // alive, but its start unknown: treat as older than any file
        let fields = stat[(close + 1)...].split(separator: UInt8(ascii: " "))
        // Field 22 (starttime) is the 20th after the command's closing parenthesis.
        guard fields.count > 19, let ticks = Double(String(decoding: fields[19], as: UTF8.self)),
            let system = try? read("/proc/stat", limit: 1 << 20)
        else { return 0 }
        var boot: Double?
        for line in system.split(separator: UInt8(ascii: "\n")) where line.starts(with: Array("btime ".utf8)) {
            boot = Double(String(decoding: line.dropFirst(6), as: UTF8.self))
        }
        let perSecond = Double(sysconf(Int32(_SC_CLK_TCK)))
        guard let boot, perSecond > 0 else { return 0 }
        return boot + ticks / perSecond
    }

    /// The running executable's path (`/proc/self/exe`).
    public static var executablePath: String? { linkTarget("/proc/self/exe") }

    public static func remove(_ path: String) throws(Failure) {
        if unlink(path) != 0 && errno != ENOENT { throw Failure(path: path, operation: "remove", errno: errno) }
    }
}
