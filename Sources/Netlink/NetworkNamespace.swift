import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// An open network namespace file: `/var/run/netns/NAME` (what `ip netns add` creates), a CNI
/// runtime's netns path, or `/proc/PID/ns/net`. The descriptor is what `IFLA_NET_NS_FD` carries
/// (`createVeth(peerNamespace:)`, `moveLink(_:to:)`) and what `setns` enters.
///
/// Entering a namespace changes the calling **thread** only (`setns(2)` with `CLONE_NEWNET`).
/// So code that runs inside one must own its thread for the whole time: a synchronous closure on
/// a thread no other work can be scheduled on meanwhile. `runOnDedicatedThread` creates such a
/// thread; `run` is for a thread the caller already dedicates (never a Swift concurrency pool
/// thread that might be lent to other tasks, never across an `await`). A socket opened inside
/// stays in that namespace for its whole life, so the usual shape is to open a `RouteNetlink`
/// there and use it from anywhere afterwards:
///
/// ```swift
/// let pod = try NetworkNamespace(path: netnsPath)
/// let podNetlink = try pod.runOnDedicatedThread { try RouteNetlink() }
/// ```
public final class NetworkNamespace: Sendable {
    public let path: String
    public let descriptor: Int32

    /// Opens a namespace file read-only (`O_CLOEXEC`).
    public init(path: String) throws(NetlinkError) {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw NetlinkError(.namespace, "open netns \(path)", errno: errno) }
        self.path = path
        self.descriptor = descriptor
    }

    /// `/var/run/netns/NAME`, the namespace `ip netns add NAME` made.
    public convenience init(named name: String) throws(NetlinkError) {
        guard !name.isEmpty, name != ".", name != "..", !name.utf8.contains(0x2F) else {
            throw NetlinkError(
                .invalidArgument, "open netns \(name)", detail: "a namespace name is not empty and has no '/'")
        }
        try self.init(path: "/var/run/netns/" + name)
    }

    /// The calling thread's own namespace (`/proc/thread-self/ns/net`: `/proc/self` would name
    /// the main thread's).
    public static func current() throws(NetlinkError) -> NetworkNamespace {
        try NetworkNamespace(path: "/proc/thread-self/ns/net")
    }

    deinit { close(descriptor) }

    /// Runs `body` with the calling thread inside this namespace and returns the thread to the
    /// namespace it was in. The thread must be dedicated to this call (see the type's note).
    /// A thread that cannot be returned would program the wrong namespace from then on, so that
    /// failure stops the process.
    public func run<T>(_ body: () throws -> T) throws -> T {
        let original = try NetworkNamespace.current()
        try enter()
        defer {
            do {
                try original.enter()
            } catch {
                fatalError("cannot return this thread from netns \(path) to \(original.path): \(error)")
            }
        }
        return try body()
    }

    /// Runs `body` on a new thread that enters this namespace first and ends afterwards (so it
    /// never returns to other work in the wrong namespace). Blocks the caller until `body`
    /// returns: keep `body` short (a few netlink requests) when calling from async code.
    public func runOnDedicatedThread<T: Sendable>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        let outcome = Mutex<Result<T, any Error>?>(nil)
        let job = ThreadJob {
            let result = Result { () throws -> T in
                try self.enter()
                return try body()
            }
            outcome.withLock { $0 = result }
        }
        try job.runAndWait(operation: "start a thread for netns \(path)")
        guard let result = outcome.withLock({ $0 }) else {
            throw NetlinkError(.namespace, "run in netns \(path)", detail: "the thread ended without a result")
        }
        return try result.get()
    }

    /// `setns(fd, CLONE_NEWNET)` for the calling thread.
    func enter() throws(NetlinkError) {
        let operation = "enter netns \(path)"
        guard let setns = Self.setns else { throw NetlinkError(.namespace, operation, errno: ENOSYS) }
        guard setns(descriptor, Self.cloneNewNet) == 0 else { throw NetlinkError(.namespace, operation, errno: errno) }
    }

    static let cloneNewNet: Int32 = 0x4000_0000  // CLONE_NEWNET

    typealias SetNS = @convention(c) (Int32, Int32) -> Int32
    /// glibc's `setns` (a `_GNU_SOURCE` function the Glibc module does not declare), looked up once.
    static let setns: SetNS? = {
        guard let handle = dlopen(nil, RTLD_NOW), let address = dlsym(handle, "setns") else { return nil }
        return unsafeBitCast(address, to: SetNS.self)
    }()
}

/// A closure run on a pthread of its own, joined before `runAndWait` returns.
final class ThreadJob: Sendable {
    let work: @Sendable () -> Void

    init(_ work: @escaping @Sendable () -> Void) { self.work = work }

    func runAndWait(operation: String) throws(NetlinkError) {
        let retained = Unmanaged.passRetained(self)
        var thread = pthread_t()
        let started = pthread_create(
            &thread, nil,
            { raw in
                guard let raw else { return nil }
                Unmanaged<ThreadJob>.fromOpaque(raw).takeRetainedValue().work()
                return nil
            }, retained.toOpaque())
        guard started == 0 else {
            retained.release()
            throw NetlinkError(.namespace, operation, errno: started)
        }
        pthread_join(thread, nil)
    }
}
