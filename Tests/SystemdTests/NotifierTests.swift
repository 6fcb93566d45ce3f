import Glibc
import Systemd
import TestSupport
import Testing

/// sd_notify against a real AF_UNIX datagram socket standing in for systemd's notify socket.
@Suite("sd_notify")
struct NotifierTests {
    /// An AF_UNIX SOCK_DGRAM socket bound at a path, as systemd binds `NOTIFY_SOCKET`.
    final class Listener {
        let directory: String
        let path: String
        let descriptor: Int32

        init() throws {
            directory = try temporaryDirectory("nodeboot-notify")
            path = directory + "/notify.sock"
            descriptor = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
            guard descriptor >= 0 else { throw TestSupportError("socket: \(String(cString: strerror(errno)))") }
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { bytes in
                for (index, byte) in path.utf8.enumerated() { bytes[index] = byte }
            }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard bound == 0 else { throw TestSupportError("bind \(path): \(String(cString: strerror(errno)))") }
            var timeout = timeval(tv_sec: 5, tv_usec: 0)
            setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit {
            close(descriptor)
            removeTree(directory)
        }

        /// The next datagram, or nil after 5 s.
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(descriptor, &buffer, buffer.count, 0)
            guard n >= 0 else { return nil }
            return String(decoding: buffer[..<n], as: UTF8.self)
        }

        /// Whether a datagram is waiting (without blocking).
        var hasPending: Bool {
            var buffer = [UInt8](repeating: 0, count: 16)
            return recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT)) >= 0
        }
    }

    // sd_notify reads NOTIFY_SOCKET from the environment. Each case sets it in a child process
    // (an exit test) and never in this one: setenv while other suites' threads read the
    // environment (spawning children, looking up proxies) is a use-after-free in glibc.

    @Test("ready() and status(_:) send exactly READY=1 and STATUS=<text> to NOTIFY_SOCKET")
    func sendsDatagrams() async throws {
        let listener = try Listener()
        let path = listener.path
        await #expect(processExitsWith: .success) { [path = path as String] in
            setenv("NOTIFY_SOCKET", path, 1)
            let sent = [
                SystemdNotifier.ready(), SystemdNotifier.status("config"), SystemdNotifier.status("two\nlines"),
                SystemdNotifier.notify("RELOADING=1\nMONOTONIC_USEC=1"),
            ]
            exit(sent.allSatisfy { $0 } ? 0 : 1)
        }
        #expect(listener.receive() == "READY=1")
        #expect(listener.receive() == "STATUS=config")
        #expect(listener.receive() == "STATUS=two lines")
        #expect(listener.receive() == "RELOADING=1\nMONOTONIC_USEC=1")
        #expect(!listener.hasPending)
    }

    @Test("without NOTIFY_SOCKET every call is a no-op returning false")
    func withoutNotifySocket() async throws {
        let listener = try Listener()
        await #expect(processExitsWith: .success) {
            unsetenv("NOTIFY_SOCKET")
            exit(!SystemdNotifier.ready() && !SystemdNotifier.status("config") ? 0 : 1)
        }
        #expect(!listener.hasPending)
    }

    @Test("a NOTIFY_SOCKET nobody listens on: false, no crash")
    func deadSocket() async throws {
        let directory = try temporaryDirectory("nodeboot-notify")
        defer { removeTree(directory) }
        let path = directory + "/nobody.sock"
        await #expect(processExitsWith: .success) { [path = path as String] in
            setenv("NOTIFY_SOCKET", path, 1)
            exit(SystemdNotifier.ready() ? 1 : 0)
        }
    }
}
