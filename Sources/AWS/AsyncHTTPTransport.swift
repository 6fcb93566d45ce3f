import AsyncHTTPClient
import FoundationEssentials
import NIOCore
import NIOHTTP1
import Support
import Synchronization

/// `HTTPTransport` over AsyncHTTPClient. One instance per proxy setting; call `shutdown()` once.
public final class AsyncHTTPTransport: HTTPTransport {
    /// An HTTP(S) proxy, as `HTTP_PROXY`/`HTTPS_PROXY` give it.
    public struct Proxy: Sendable, Hashable {
        public var host: String
        public var port: Int
        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }
    }

    static let maxResponseBytes = 4 << 20
    private let connectTimeout: Duration
    private let proxy: Proxy?
    /// Made on the first request: a command that sends none (`config check` of files, a boot whose AWS endpoints
    /// are all `http://`) starts no event loop and no thread, and does not even build the client's configuration
    /// (its tracing lookup costs dynamic casts at run time).
    private let started = Mutex<HTTPClient?>(nil)

    /// - Parameters:
    ///   - connectTimeout: bound on the TCP connect of every attempt.
    ///   - proxy: all requests go through this proxy (`nil`: direct).
    public init(connectTimeout: Duration, proxy: Proxy? = nil) {
        self.connectTimeout = connectTimeout
        self.proxy = proxy
    }

    var configuration: HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration()
        configuration.timeout = .init(connect: .nanoseconds(Int64(connectTimeout.nanoseconds)))
        configuration.redirectConfiguration = .disallow
        configuration.httpVersion = .http1Only
        configuration.decompression = .disabled
        if let proxy {
            configuration.proxy = .server(host: proxy.host, port: proxy.port)
        }
        return configuration
    }

    var client: HTTPClient {
        started.withLock { client in
            if let client { return client }
            let made = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: configuration)
            client = made
            return made
        }
    }

    public func shutdown() async {
        guard let client = started.withLock({ $0 }) else { return }
        // A second shutdown or one racing a finished client only reports that it is already shut down.
        try? await client.shutdown()
    }

    public func send(_ request: HTTPRequest, timeout: Duration) async throws -> HTTPResponse {
        var outgoing = HTTPClientRequest(url: request.url.absoluteString)
        outgoing.method = HTTPMethod(rawValue: request.method)
        for header in request.headers {
            outgoing.headers.add(name: header.name, value: header.value)
        }
        if !request.body.isEmpty || request.method == "POST" || request.method == "PUT" {
            outgoing.body = .bytes(ByteBuffer(bytes: request.body))
        }
        let url = request.url.absoluteString
        do {
            let response = try await client.execute(outgoing, timeout: .nanoseconds(Int64(timeout.nanoseconds)))
            let body = try await response.body.collect(upTo: Self.maxResponseBytes)
            return HTTPResponse(
                status: Int(response.status.code),
                headers: response.headers.map { (name: $0.name, value: $0.value) },
                body: Array(buffer: body))
        } catch is CancellationError {
            throw CancellationError()
        } catch let error as HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout, .writeTimeout:
                throw TransportError(.timeout, url: url, detail: "\(error)")
            case .cancelled:
                throw CancellationError()
            default:
                throw TransportError(.connection, url: url, detail: "\(error)")
            }
        } catch let error as NIOTooManyBytesError {
            throw TransportError(.responseTooLarge, url: url, detail: "\(error)")
        } catch {
            throw TransportError(.connection, url: url, detail: "\(error)")
        }
    }
}
