import FoundationEssentials
import Logging
import Support

#if canImport(Glibc)
    import Glibc
#endif

/// One `init` at a time on a node: an exclusive `flock` on `/run/nodeboot/init.lock`, taken
/// before the run first writes to the node (apply, or the run phase with `--skip config`) and
/// held until its report is written. The kernel drops the lock when its holder exits, however
/// it exits (SIGKILL included), so a dead run never blocks the next. The file's content is never
/// written: who holds it comes from `/proc/locks`.
public final class InitLock: Sendable {
    public static let path = "/run/nodeboot/init.lock"

    let descriptor: Int32

    init(descriptor: Int32) { self.descriptor = descriptor }

    deinit { close(descriptor) }

    /// Takes the lock, waiting up to `timeout` while another process holds it; `waiting` is
    /// called once, with the holder's pid when known, when the lock is not free at once. Throws
    /// `io` when the file cannot be opened or the wait times out (the message names the holder).
    public static func acquire(
        _ paths: NodePaths, timeout: Duration, waiting: (Int32?) -> Void
    ) async throws(NodeBootError) -> InitLock {
        let path = paths.node(Self.path)
        do {
            try NodeFileSystem.makeDirectories(paths.node(NodePaths.runDirectory))
        } catch {
            throw NodeBootError(
                .io, "cannot create the lock \(path): \(error)",
                hint: DiskErrorHint.hint(for: error, fallback: "nodeboot init must be able to write /run/nodeboot"),
                cause: error)
        }
        // 0600: anyone who can open the file can flock it (a shared lock from a read-only descriptor would hold
        // init off), so only root may.
        let descriptor = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard descriptor >= 0 else {
            let failure = NodeFileSystem.Failure(path: path, operation: "open", errno: errno)
            throw NodeBootError(
                .io, "cannot open the lock \(path): \(failure)",
                hint: DiskErrorHint.hint(for: failure, fallback: "nodeboot init must be able to write /run/nodeboot"),
                cause: failure)
        }
        let lock = InitLock(descriptor: descriptor)
        fchmod(descriptor, 0o600)  // a file an older nodeboot created 0644
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        var announced = false
        var attempts = 0
        while flock(descriptor, LOCK_EX | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let failure = NodeFileSystem.Failure(path: path, operation: "flock", errno: errno)
                throw NodeBootError(.io, "cannot lock \(path): \(failure)", cause: failure)
            }
            attempts += 1
            // A `nodeboot status` holds a shared lock for a moment: announce only a lasting holder.
            if !announced && attempts > 3 {
                announced = true
                waiting(lock.holder())
            }
            guard clock.now < deadline else {
                let holder = lock.holder().map { "pid \($0)" } ?? "another process"
                throw NodeBootError(
                    .io,
                    "another nodeboot init (\(holder)) still holds \(path) after \(timeout.secondsText): two runs never write a node at once",
                    hint:
                        "wait until it finishes (`nodeboot status` shows it running), or give --lock-timeout more seconds; nothing was written"
                )
            }
            do {
                try await Task.sleep(for: .milliseconds(attempts <= 3 ? 20 : 100))
            } catch {
                throw NodeBootError(.internal, "cancelled while waiting for \(path)", cause: error)
            }
        }
        return lock
    }

    /// The pid holding an exclusive lock on the same file, from `/proc/locks`.
    func holder() -> Int32? {
        var info = stat()
        guard fstat(descriptor, &info) == 0 else { return nil }
        return Self.holders(inode: UInt64(info.st_ino)).first
    }

    /// The pids holding a granted (not waiting) `flock` on the file with this inode, from `/proc/locks`
    /// (`1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234567 0 EOF`; waiters are the lines with `->`).
    static func holders(inode: UInt64) -> [Int32] {
        guard let table = try? NodeFileSystem.read("/proc/locks", limit: 4 << 20) else { return [] }
        var pids: [Int32] = []
        for line in table.split(separator: UInt8(ascii: "\n")) {
            let fields = line.split(separator: UInt8(ascii: " ")).map { String(decoding: $0, as: UTF8.self) }
            guard fields.count >= 6, fields[1] == "FLOCK", let pid = Int32(fields[4]),
                fields[5].split(separator: ":").last.flatMap({ UInt64($0) }) == inode
            else { continue }
            pids.append(pid)
        }
        return pids
    }

    /// Whether process `pid` holds the node's init lock now (`nodeboot status`: a report that
    /// says "running" from a process that holds no lock was interrupted). Takes no lock.
    public static func isHeld(_ paths: NodePaths, by pid: Int32) -> Bool {
        var info = stat()
        guard stat(paths.node(Self.path), &info) == 0 else { return false }
        if let table = try? NodeFileSystem.read("/proc/locks", limit: 4 << 20), !table.isEmpty {
            return holders(inode: UInt64(info.st_ino)).contains(pid)
        }
        // No /proc/locks to read: the process being alive is the best one can tell.
        return kill(pid, 0) == 0 || errno != ESRCH
    }
}

/// What a run holds once it begins to write to the node: the init lock. Taking it also clears
/// what an interrupted run left (its staged files) and marks the report `running`.
struct NodeClaim {
    var lock: InitLock?

    var isHeld: Bool { lock != nil }

    /// Takes the lock (bounded by `timeout`), removes staged files of dead writers from
    /// `directories`, and writes status.json as `running`; a no-op when already held. Returns
    /// the warnings and notes for the report.
    mutating func take(
        _ paths: NodePaths, timeout: Duration, directories: [String], report: InitReport, startedAt: Date,
        reporter: ReportPhase, logger: Logger
    ) async throws(NodeBootError) -> (warnings: [String], notes: [String]) {
        guard lock == nil else { return ([], []) }
        lock = try await InitLock.acquire(paths, timeout: timeout) { holder in
            let who = holder.map { "pid \($0)" } ?? "another process"
            logger.notice(
                "waiting up to \(timeout.secondsText) for another nodeboot init (\(who)) to finish: it holds \(paths.node(InitLock.path))",
                metadata: ["phase": "apply"])
        }
        var warnings: [String] = []
        var notes: [String] = []
        // The lock is ours: a report still saying `running` is from a run that died.
        if let bytes = try? NodeFileSystem.read(paths.node(NodePaths.statusFile), limit: 16 << 20),
            let previous = try? StatusReport.decode(bytes), previous.result == .running
        {
            let pid = previous.pid.map { "pid \($0), " } ?? ""
            warnings.append(
                "the previous init (\(pid)started \(previous.startedAt)) was interrupted before it finished; this run repairs the node"
            )
        }
        let removed = NodeFileSystem.removeStaleStaged(in: directories)
        if !removed.isEmpty {
            let shown = removed.prefix(5).joined(separator: ", ") + (removed.count > 5 ? ", …" : "")
            notes.append("removed \(removed.count) staged file(s) an interrupted run left: \(shown)")
        }
        var running = report
        running.warnings += warnings
        reporter.write(StatusReport.running(startedAt: startedAt, report: running))
        return (warnings, notes)
    }
}
