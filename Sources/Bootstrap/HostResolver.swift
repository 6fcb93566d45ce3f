import Support

#if canImport(Glibc)
    import Glibc
#endif

/// getaddrinfo, retried briefly (nodeadm: 6 tries, 200 ms apart). `localhost` and
/// `*.localhost` are the loopback addresses of both families without asking anyone (RFC 6761
/// 6.3, as systemd-resolved answers), so the result does not depend on the host's /etc/hosts.
enum HostResolver {
    static let policy = RetryPolicy.poll(every: .milliseconds(200), attempts: 6)

    /// The host's addresses, numeric, without duplicates; empty when it does not resolve.
    static func addresses(_ host: String) async -> [String] {
        let lower = host.lowercased()
        if lower == "localhost" || lower.hasSuffix(".localhost") { return ["127.0.0.1", "::1"] }
        // Not resolved after every try, or cancelled: no addresses (the caller names the host).
        return ((try? await policy.firstValue { _ in lookup(host) }) ?? nil) ?? []
    }

    /// One getaddrinfo call; nil when it fails.
    static func lookup(_ host: String) -> [String]? {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0 else { return nil }
        defer { freeaddrinfo(result) }
        var addresses: [String] = []
        var cursor = result
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(
                info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST)
                == 0
            {
                let text = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                if !addresses.contains(text) { addresses.append(text) }
            }
            cursor = info.pointee.ai_next
        }
        return addresses
    }
}
