import IPAMProtocol
public import NIOCore
import NIOPosix
import Support
import WireJSON

#if canImport(Glibc)
    import Glibc
#endif

/// Serves the ipamd protocol (docs/ipamd.md §7) on a Unix socket: one JSON line in, one JSON
/// line out, requests on a connection answered in order. The socket is bound under a temporary
/// name, given mode 0660 and renamed into place, so it never exists with a wider mode.
public final class SocketServer: Sendable {
    public let path: String
    let channel: any Channel

    init(path: String, channel: any Channel) {
        self.path = path
        self.channel = channel
    }

    /// Binds `path` (replacing a stale socket a killed daemon left) and serves `core`.
    public static func start(
        core: IPAMCore, path: String, group: any EventLoopGroup, idleTimeout: Duration = .seconds(10)
    ) async throws -> SocketServer {
        let staging = path + ".new"
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 256)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    // A client that sends nothing for `idleTimeout` is closed (a stuck plugin must not hold a descriptor).
                    try channel.pipeline.syncOperations.addHandler(
                        IdleStateHandler(readTimeout: .nanoseconds(Int64(idleTimeout.nanoseconds))))
                    try channel.pipeline.syncOperations.addHandler(Connection(core: core))
                }
            }
            .bind(unixDomainSocketPath: staging, cleanupExistingSocketFile: true).get()
        guard chmod(staging, 0o660) == 0, rename(staging, path) == 0 else {
            let reason = String(cString: strerror(errno))
            try? await channel.close()
            throw IPAMError("cannot put the socket in place at \(path): \(reason)")
        }
        return SocketServer(path: path, channel: channel)
    }

    /// Stops accepting; connections in flight finish their request.
    public func close() async {
        try? await channel.close()
        unlink(path)
    }

    /// The reply to one request line: a decoding problem is a `badRequest` reply, not a crash.
    static func answer(_ line: [UInt8], core: IPAMCore) async -> [UInt8] {
        let reply: Reply
        do {
            let (_, request) = try Request.decode(try JSON(parsing: line))
            reply = await core.handle(request)
        } catch let error as ProtocolError {
            reply = .failed(error)
        } catch {
            reply = .failed(ProtocolError(.badRequest, "not JSON: \(error)"))
        }
        return reply.json().line
    }

    /// One client connection: frames lines, answers them in order on the connection.
    final class Connection: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        let core: IPAMCore
        var framer = LineFramer()
        var queue: EventLoopFuture<Void>?

        init(core: IPAMCore) { self.core = core }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            var buffer = unwrapInboundIn(data)
            let bytes = buffer.readBytes(length: buffer.readableBytes) ?? []
            let channel = context.channel
            let core = self.core
            let lines: [[UInt8]]
            do {
                lines = try framer.append(bytes)
            } catch {
                // After the answers already queued on this connection, then the connection closes.
                let reply = Reply.failed(error).json().line
                let previous = queue ?? context.eventLoop.makeSucceededVoidFuture()
                queue = previous.flatMap { channel.writeAndFlush(ByteBuffer(bytes: reply)) }.always { _ in
                    channel.close(promise: nil)
                }
                return
            }
            for line in lines {
                let previous = queue ?? context.eventLoop.makeSucceededVoidFuture()
                queue = previous.flatMap {
                    channel.eventLoop.makeFutureWithTask { await SocketServer.answer(line, core: core) }
                }.flatMap { reply in
                    channel.writeAndFlush(ByteBuffer(bytes: reply))
                }.recover { _ in }
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if event is IdleStateHandler.IdleStateEvent {
                context.close(promise: nil)
            } else {
                context.fireUserInboundEventTriggered(event)
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}

/// A daemon failure that is not a protocol reply: it names the object and the cause.
public struct IPAMError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}
