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
    let proxied: Mutex<[AsyncHTTPTransport.Proxy: AsyncHTTPTransport]> = Mutex([:])

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
            if let existing = transports[proxy] { return existing }
            let created = AsyncHTTPTransport(connectTimeout: connectTimeout, proxy: proxy)
            transports[proxy] = created
            return created
        }
        return try await transport.send(request, timeout: timeout)
    }

    public func shutdown() async {
        await plain.shutdown()
        await direct.shutdown()
        for transport in proxied.withLock({ Array($0.values) }) {
            await transport.shutdown()
        }
    }
}
