import CNIPlugin
import Foundation
import IPAMProtocol
import Netlink
import Synchronization
import WireJSON

/// ipamd in process: answers each request with `answer`, records what it was asked. Either
/// called directly (the `IPAMService` seam) or, after `listen(at:)`, over a real Unix socket
/// speaking the protocol's framing, for the built binary.
final class FakeIPAMD: IPAMService, Sendable {
    let answer: @Sendable (Request) -> Reply
    let recorded = Mutex<[Request]>([])
    let listener = Mutex<Int32>(-1)

    init(answer: @escaping @Sendable (Request) -> Reply) {
        self.answer = answer
    }

    var requests: [Request] { recorded.withLock { $0 } }

    func send(_ request: Request) throws(IPAMClient.Failure) -> Reply {
        recorded.withLock { $0.append(request) }
        return answer(request)
    }

    /// Serves the socket protocol at `path` on a thread of its own until `stop`.
    func listen(at path: String) throws {
        unlink(path)
        let descriptor = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8))
            raw[path.utf8.count] = 0
        }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard descriptor >= 0, bound == 0, Glibc.listen(descriptor, 16) == 0 else {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
        }
        listener.withLock { $0 = descriptor }
        Thread.detachNewThread { [self] in
            while true {
                let connection = accept(descriptor, nil, nil)
                guard connection >= 0 else { return }
                serve(connection)
                close(connection)
            }
        }
    }

    func serve(_ connection: Int32) {
        var framer = LineFramer()
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = chunk.withUnsafeMutableBytes { recv(connection, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return }
            guard let lines = try? framer.append(chunk[..<count]) else { return }  // test fake: drop bad input
            for line in lines {
                let reply: Reply
                if let json = try? JSON(parsing: line), let (_, request) = try? Request.decode(json) {
                    reply = (try? send(request)) ?? .failed(ProtocolError(.internal, "fake"))
                } else {
                    reply = .failed(ProtocolError(.badRequest, "not a request"))
                }
                let bytes = reply.json().line
                _ = bytes.withUnsafeBytes { Glibc.send(connection, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
        }
    }

    /// Stops listening: later connections are refused, as with a stopped daemon.
    func stop() {
        let descriptor = listener.withLock { descriptor in
            defer { descriptor = -1 }
            return descriptor
        }
        if descriptor >= 0 {
            shutdown(descriptor, Int32(SHUT_RDWR))
            close(descriptor)
        }
    }
}

/// A kernel that records: sockets that answer nothing, and the namespaces asked for.
final class RecordingKernel: KernelAccess, Sendable {
    let host = RecordingNetlinkSocket()
    let pod = RecordingNetlinkSocket()
    let opened = Mutex<[String]>([])

    func hostNetlink() throws(NetlinkError) -> RouteNetlink {
        opened.withLock { $0.append("host") }
        return RouteNetlink(socket: host)
    }

    func pod(_ path: String) throws(NetlinkError) -> (NetworkNamespace, RouteNetlink) {
        opened.withLock { $0.append(path) }
        return (try NetworkNamespace(path: "/proc/self/ns/net"), RouteNetlink(socket: pod))
    }

    var openedPaths: [String] { opened.withLock { $0 } }

    /// Nothing was sent to either socket.
    var untouched: Bool { host.sent.isEmpty && pod.sent.isEmpty }
}
