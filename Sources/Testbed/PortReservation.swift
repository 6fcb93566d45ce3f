import Foundation
import NIOCore
import Synchronization

/// A TCP port held by a socket that is bound but not listening, for a late start: connections
/// to it are refused, and no other listener (another testbed's ephemeral port, say) can take it
/// in the meantime. Released just before the real listener binds the same port.
final class PortReservation: Sendable {
    let port: Int
    private let descriptor: Mutex<Int32?>

    /// Binds `host:port` (0 = an ephemeral port); throws a message naming the failing call.
    init(host: String, port: Int) throws {
        let address = try SocketAddress.makeAddressResolvingHost(host, port: port)
        let family: Int32 = address.protocol == .inet6 ? AF_INET6 : AF_INET
        let fd = socket(family, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw PortReservationError("socket() failed: errno \(errno)") }
        var one: Int32 = 1
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        let bound = address.withSockAddr { pointer, length in bind(fd, pointer, socklen_t(length)) }
        guard bound == 0 else {
            let code = errno
            close(fd)
            throw PortReservationError("bind() failed: errno \(code)")
        }
        var storage = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &storage) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard named == 0 else {
            let code = errno
            close(fd)
            throw PortReservationError("getsockname() failed: errno \(code)")
        }
        // sin_port and sin6_port both sit at bytes 2-3 of the address, in network byte order.
        self.port = withUnsafeBytes(of: &storage) { Int($0[2]) << 8 | Int($0[3]) }
        self.descriptor = Mutex(fd)
    }

    /// Gives the port back (once).
    func release() {
        let fd = descriptor.withLock { descriptor in
            defer { descriptor = nil }
            return descriptor
        }
        if let fd { close(fd) }
    }

    deinit { release() }
}

struct PortReservationError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
