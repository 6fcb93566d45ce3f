import FoundationEssentials
import Synchronization

/// The transport for AWS API calls: direct, or through the proxy `ProxySettings` picks for each
/// URL. One AsyncHTTPClient per distinct proxy, created on first use; a direct `http://`
/// endpoint (a local test endpoint) goes over `PlainHTTPTransport`.
public final class ProxyingTransport: HTTPTransport {
    let settings: ProxySettings
    let connectTimeout: Duration
    let direct: AsyncHTTPTransport
    let plain: PlainHTTPTransport
    /// One per proxy, in the order first used (a list: there are one or two, and a dictionary's metadata costs a
    /// conformance lookup at run time in every process, even when no proxy is set).
    let proxied: Mutex<[(proxy: AsyncHTTPTransport.Proxy, transport: AsyncHTTPTransport)]> = Mutex([])

    public init(settings: ProxySettings, connectTimeout: Duration = .seconds(5)) {
        self.settings = settings
        self.connectTimeout = connectTimeout
        self.direct = AsyncHTTPTransport(connectTimeout: connectTimeout)
        self.plain = PlainHTTPTransport(connectTimeout: connectTimeout)
    }

    public func send(_ request: HTTPRequest, timeout: Duration) async throws -> HTTPResponse {
        guard let proxy = settings.proxy(for: request.url) else {
            if request.url.scheme == "http" { return try await plain.send(request, timeout: timeout) }
            return try await direct.send(request, timeout: timeout)
        }
        let transport = proxied.withLock { transports in
            if let existing = transports.first(where: { $0.proxy == proxy }) { return existing.transport }
            let created = AsyncHTTPTransport(connectTimeout: connectTimeout, proxy: proxy)
            transports.append((proxy, created))
            return created
        }
        do {
            return try await transport.send(request, timeout: timeout)
        } catch var error as TransportError {
            // Name the proxy: an unreachable proxy is not the endpoint's fault (or a permission's).
            error.proxy = "\(proxy.host):\(proxy.port)"
            throw error
        }
    }

    public func shutdown() async {
        await plain.shutdown()
        await direct.shutdown()
        for transport in proxied.withLock({ $0.map(\.transport) }) {
            await transport.shutdown()
        }
    }
}
