import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#endif

/// Runs a program with arguments (no shell) with separate stdout and stderr, without blocking a
/// thread while it runs (non-blocking pipes polled between short sleeps), killed at the time limit
/// or on cancellation. Used for `kubelet --version`, `containerd --version`, `setup-local-disks`
/// and the kubeconfig's exec credential plugin (which may call back into in-process servers in
/// tests, so no thread of the pool may block on it).
public enum ExternalCommand {
    public struct Output: Sendable {
        public var status: Int32
        public var stdout: [UInt8]
        public var stderr: [UInt8]
        public var timedOut: Bool

        public init(status: Int32, stdout: [UInt8], stderr: [UInt8], timedOut: Bool) {
            self.status = status
            self.stdout = stdout
            self.stderr = stderr
            self.timedOut = timedOut
        }

        /// stdout, then stderr, as text (for commands whose output is only shown).
        public var combined: String { String(decoding: stdout + stderr, as: UTF8.self) }
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static let maxOutput = 1 << 20

    /// The search path when the environment has none.
    public static let defaultSearchPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

    /// The first executable regular file `name` in the environment's `PATH` (or the default).
    public static func find(_ name: String, environment: [String: String]) -> String? {
        for directory in (environment["PATH"] ?? defaultSearchPath).split(separator: ":") where !directory.isEmpty {
            let candidate = "\(directory)/\(name)"
            if isExecutable(candidate) { return candidate }
        }
        return nil
    }

    /// A regular file this process may execute.
    public static func isExecutable(_ path: String) -> Bool {
        NodeFileSystem.status(path)?.isRegular == true && access(path, X_OK) == 0
    }

    /// `input`, when given, is the child's stdin (written as it reads, then closed); otherwise its
    /// stdin is `/dev/null`. Each of stdout and stderr keeps at most `outputLimit` bytes.
    public static func run(
        _ path: String, _ arguments: [String], environment: [String: String], input: [UInt8]? = nil,
        outputLimit: Int = maxOutput, timeout: Duration
    ) async throws(Failure) -> Output {
        var out: [Int32] = [0, 0]
        var err: [Int32] = [0, 0]
        // stdin is a socket, not a pipe: `send` with MSG_NOSIGNAL gets EPIPE from a child that
        // exited without reading, where `write` to a pipe would raise SIGPIPE in this process.
        var feed: [Int32] = [-1, -1]
        func closeAll(_ fds: [Int32]) { for fd in fds where fd >= 0 { close(fd) } }
        guard makePipe(&out) == 0 else { throw Failure(description: "pipe: \(String(cString: strerror(errno)))") }
        guard makePipe(&err) == 0 else {
            closeAll(out)
            throw Failure(description: "pipe: \(String(cString: strerror(errno)))")
        }
        if input != nil {
            let type = Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
            guard socketpair(AF_UNIX, type, 0, &feed) == 0 else {
                closeAll(out + err)
                throw Failure(description: "socketpair: \(String(cString: strerror(errno)))")
            }
            _ = shutdown(feed[0], Int32(SHUT_RD))
            _ = shutdown(feed[1], Int32(SHUT_WR))
        }
        for fd in [out[0], err[0], feed[0]] where fd >= 0 { _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        if feed[1] >= 0 {
            posix_spawn_file_actions_adddup2(&actions, feed[1], 0)
        } else {
            posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        }
        posix_spawn_file_actions_adddup2(&actions, out[1], 1)
        posix_spawn_file_actions_adddup2(&actions, err[1], 2)
        // Only stdin, stdout and stderr: descriptors another thread opened without close-on-exec
        // (its pipes) stay out of the plugin, and so out of whatever the plugin leaves running.
        if let closeFrom = GNU.addCloseFrom { _ = closeFrom(&actions, 3) }
        let argv = ([path] + arguments).map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        // Its own process group (so a timeout kills what it started too: mkfs under
        // setup-local-disks, python under aws), an empty signal mask and default dispositions
        // (not whatever this process blocks or ignores).
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var mask = sigset_t()
        sigemptyset(&mask)
        posix_spawnattr_setsigmask(&attributes, &mask)
        var defaults = sigset_t()
        sigfillset(&defaults)
        sigdelset(&defaults, SIGKILL)
        sigdelset(&defaults, SIGSTOP)
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        var pid: pid_t = 0
        var spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        // ETXTBSY: another thread forked while it had the file open for writing (a plugin written
        // just now); that child's copy closes at its exec, so a moment later the spawn succeeds.
        var busyRetries = 0
        while spawned == ETXTBSY && busyRetries < 20 {
            busyRetries += 1
            try? await Task.sleep(for: .milliseconds(10 * busyRetries))  // cancellation: checked below
            if Task.isCancelled { break }
            spawned = posix_spawn(&pid, path, &actions, &attributes, argv, envp)
        }
        closeAll([out[1], err[1], feed[1]])
        guard spawned == 0 else {
            closeAll([out[0], err[0], feed[0]])
            if Task.isCancelled { throw Failure(description: "cancelled before \(path) could start") }
            throw Failure(description: "cannot run \(path): \(String(cString: strerror(spawned)))")
        }
        var pending = input ?? []
        var written = 0
        defer { closeAll([out[0], err[0], feed[0]]) }
        let deadline = ContinuousClock.now + timeout
        var stdout: [UInt8] = []
        var stderr: [UInt8] = []
        var open = [true, true]
        var timedOut = false
        var status: Int32 = 0
        var pause = Duration.milliseconds(1)
        var buffer = [UInt8](repeating: 0, count: 16384)
        /// Reads what is there now; true when something was.
        func drain() -> Bool {
            var progressed = false
            for (index, fd) in [out[0], err[0]].enumerated() where open[index] {
                while true {
                    let count = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                    if count > 0 {
                        progressed = true
                        if index == 0 {
                            if stdout.count < outputLimit { stdout += buffer[0..<count] }
                        } else if stderr.count < outputLimit {
                            stderr += buffer[0..<count]
                        }
                        continue
                    }
                    if count == 0 { open[index] = false }
                    if count < 0 && errno == EINTR { continue }
                    break
                }
            }
            // Feed stdin as far as the socket takes it; at the end (or when the child stopped
            // reading) close this side so the child sees end of file.
            while feed[0] >= 0 {
                if written == pending.count {
                    close(feed[0])
                    feed[0] = -1
                    break
                }
                let count = pending.withUnsafeBytes {
                    send(feed[0], $0.baseAddress! + written, $0.count - written, Int32(MSG_NOSIGNAL))
                }
                if count > 0 {
                    written += count
                    progressed = true
                } else if count < 0 && errno == EINTR {
                    continue
                } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                    break
                } else {
                    pending = []
                    written = 0
                }
            }
            return progressed
        }
        while true {
            let progressed = drain()
            // Done when the plugin has exited (what it wrote is in the pipes), even if a process it
            // left behind still holds them open.
            var raw: Int32 = 0
            if waitpid(pid, &raw, WNOHANG) == pid {
                status = raw
                _ = drain()
                break
            }
            if ContinuousClock.now >= deadline || Task.isCancelled {
                timedOut = !Task.isCancelled
                kill(-pid, SIGKILL)
                while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
                break
            }
            if progressed {
                pause = .milliseconds(1)
            } else {
                // Cancellation is checked above; the sleep's own error adds nothing.
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, .milliseconds(20))
            }
        }
        if Task.isCancelled { throw Failure(description: "cancelled") }
        let code = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return Output(status: code, stdout: stdout, stderr: stderr, timedOut: timedOut)
    }

    /// A pipe, close-on-exec from the start when the C library has `pipe2` (a program another
    /// thread spawns meanwhile must not inherit a write end: this side would not see the end of
    /// its output).
    static func makePipe(_ fds: inout [Int32]) -> Int32 {
        if let pipe2 = GNU.pipe2 { return pipe2(&fds, O_CLOEXEC) }
        guard pipe(&fds) == 0 else { return -1 }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        return 0
    }
}
