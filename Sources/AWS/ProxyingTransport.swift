import Synchronization

/// The transport for AWS API calls: direct, or through the proxy `ProxySettings` picks for each
/// URL. One AsyncHTTPClient per distinct proxy, created on first use.
public final class ProxyingTransport: HTTPTransport {
    let settings: ProxySettings
    let connectTimeout: Duration
    let direct: AsyncHTTPTransport
    let proxied: Mutex<[AsyncHTTPTransport.Proxy: AsyncHTTPTransport]> = Mutex([:])

    public init(settings: ProxySettings, connectTimeout: Duration = .seconds(5)) {
        self.settings = settings
        self.connectTimeout = connectTimeout
        self.direct = AsyncHTTPTransport(connectTimeout: connectTimeout)
    }

    public func send(_ request: HTTPRequest, timeout: Duration) async throws -> HTTPResponse {
        guard let proxy = settings.proxy(for: request.url) else {
            return try await direct.send(request, timeout: timeout)
        }
        let transport = proxied.withLock { transports in
            if let existing = transports[proxy] { return existing }
            let created = AsyncHTTPTransport(connectTimeout: connectTimeout, proxy: proxy)
            transports[proxy] = created
            return created
        }
        return try await transport.send(request, timeout: timeout)
    }

    public func shutdown() async {
        await direct.shutdown()
        for transport in proxied.withLock({ Array($0.values) }) {
            await transport.shutdown()
        }
    }
}
