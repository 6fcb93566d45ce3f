@preconcurrency import CNIOBoringSSL

#if canImport(Glibc)
    import Glibc
#endif

/// The trust and settings of `PlainHTTPTransport`'s `https://` connections: TLS 1.2 or later, the peer's certificate
/// verified against `caPEM` alone (or the system's roots) and checked for the URL's host name or IP address.
///
/// BoringSSL is the one swift-nio-ssl builds into the binary (its `CNIOBoringSSL` module): the same TLS code as the
/// NIO clients, without an event loop, a channel pipeline or a connection pool manager. Measured (docs/boot.md):
/// AsyncHTTPClient's one connection to the API server cost the run unit 63 K distinct instructions and about 20 M
/// executed ones (runtime conformance lookups, eager log metadata), which qemu's TCG pays at every boot.
public final class TLSContext: @unchecked Sendable {
    let context: OpaquePointer

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    /// - Parameter caPEM: the certificates to trust, alone; nil trusts the system's roots.
    public init(caPEM: [UInt8]?) throws(Failure) {
        guard let context = SSL_CTX_new(TLS_method()) else { throw Failure(description: "SSL_CTX_new failed") }
        self.context = context
        SSL_CTX_set_min_proto_version(context, UInt16(TLS1_2_VERSION))
        SSL_CTX_set_verify(context, SSL_VERIFY_PEER, nil)
        if let caPEM {
            let count = try Self.trust(caPEM, in: SSL_CTX_get_cert_store(context))
            guard count > 0 else { throw Failure(description: "the CA holds no PEM certificate") }
        } else {
            let bundles = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
            guard let bundle = bundles.first(where: { access($0, R_OK) == 0 }),
                SSL_CTX_load_verify_locations(context, bundle, nil) == 1
            else {
                throw Failure(description: "no system CA bundle (\(bundles.joined(separator: ", ")))")
            }
        }
    }

    deinit { SSL_CTX_free(context) }

    /// Adds every PEM certificate of `pem` to `store`; the number added.
    static func trust(_ pem: [UInt8], in store: OpaquePointer?) throws(Failure) -> Int {
        ERR_clear_error()
        let added: Int? = pem.withUnsafeBytes { raw in
            guard let bio = BIO_new_mem_buf(raw.baseAddress, raw.count) else { return nil }
            defer { BIO_free(bio) }
            var count = 0
            while let certificate = PEM_read_bio_X509(bio, nil, nil, nil) {
                defer { X509_free(certificate) }
                guard X509_STORE_add_cert(store, certificate) == 1 else { return nil }
                count += 1
            }
            return count
        }
        // The loop ends with "no start line" at the end of the text: only an error when nothing was read.
        let last = ERR_peek_last_error()
        ERR_clear_error()
        guard let added else { throw Failure(description: "the CA cannot be read (\(TLSSession.errorText(last)))") }
        if added == 0 && last != 0 && ERR_GET_REASON(last) != PEM_R_NO_START_LINE {
            throw Failure(description: "the CA is not a PEM certificate bundle (\(TLSSession.errorText(last)))")
        }
        return added
    }
}

/// TLS over one connected non-blocking socket, driven through memory BIOs: this code sends and receives the
/// records itself (`send` with MSG_NOSIGNAL, so a peer that closed gives EPIPE, not a SIGPIPE), each wait bounded by
/// the exchange's deadline.
final class TLSSession {
    let ssl: OpaquePointer
    let descriptor: Int32
    let incoming: OpaquePointer
    let outgoing: OpaquePointer
    let url: String

    /// Connects TLS on `descriptor` (which stays the caller's to close) and completes the handshake.
    init(descriptor: Int32, host: String, context: TLSContext, url: String, deadline: ContinuousClock.Instant) throws {
        guard let ssl = SSL_new(context.context), let incoming = BIO_new(BIO_s_mem()),
            let outgoing = BIO_new(BIO_s_mem())
        else {
            throw TransportError(.tls, url: url, detail: "cannot set up TLS (out of memory)")
        }
        BIO_set_mem_eof_return(incoming, -1)
        SSL_set_bio(ssl, incoming, outgoing)  // the SSL owns both from here
        self.ssl = ssl
        self.incoming = incoming
        self.outgoing = outgoing
        self.descriptor = descriptor
        self.url = url
        let parameters = SSL_get0_param(ssl)
        if Self.isAddress(host) {
            X509_VERIFY_PARAM_set1_ip_asc(parameters, host)
        } else {
            SSL_set_tlsext_host_name(ssl, host)
            X509_VERIFY_PARAM_set_hostflags(parameters, UInt32(X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS))
            X509_VERIFY_PARAM_set1_host(parameters, host, host.utf8.count)
        }
        SSL_set_connect_state(ssl)
        do {
            _ = try drive(deadline: deadline, timeout: "the TLS handshake with \(host) timed out") {
                SSL_do_handshake(ssl)
            }
        } catch let error as TransportError where error.kind == .tls {
            let verified = SSL_get_verify_result(ssl)
            guard verified != X509_V_OK else { throw error }
            let reason = String(cString: X509_verify_cert_error_string(verified))
            throw TransportError(.certificate, url: url, detail: "CERTIFICATE_VERIFY_FAILED: \(reason)")
        }
    }

    deinit { SSL_free(ssl) }

    static func isAddress(_ host: String) -> Bool {
        var buffer = in6_addr()
        return inet_pton(AF_INET, host, &buffer) == 1 || inet_pton(AF_INET6, host, &buffer) == 1
    }

    /// Sends all of `bytes` as application data.
    func send(_ bytes: [UInt8], deadline: ContinuousClock.Instant) throws {
        var offset = 0
        while offset < bytes.count {
            let written = try drive(deadline: deadline, timeout: "sending the request timed out") {
                bytes.withUnsafeBytes { raw in
                    SSL_write(ssl, raw.baseAddress! + offset, Int32(clamping: raw.count - offset))
                }
            }
            guard written > 0 else {
                throw TransportError(.connection, url: url, detail: "the server closed the TLS connection")
            }
            offset += Int(written)
        }
    }

    /// Reads application data into `chunk`; 0 at the end of the stream (close_notify or the socket closed).
    func receive(into chunk: inout [UInt8], deadline: ContinuousClock.Instant) throws -> Int {
        let count = chunk.count
        let read = try chunk.withUnsafeMutableBytes { raw in
            try drive(deadline: deadline, timeout: "no answer in time") {
                SSL_read(ssl, raw.baseAddress, Int32(clamping: count))
            }
        }
        return max(Int(read), 0)
    }

    /// Sends close_notify without waiting for the peer's.
    func shutdown() {
        if SSL_shutdown(ssl) >= 0 { try? flush(deadline: .now + .milliseconds(200)) }
        ERR_clear_error()
    }

    /// Runs `operation` until it succeeds, moving TLS records between the memory BIOs and the socket. A positive
    /// result is returned; 0 means the stream ended cleanly (close_notify, or EOF where no more was due).
    private func drive(deadline: ContinuousClock.Instant, timeout: String, _ operation: () -> Int32) throws -> Int32 {
        ERR_clear_error()
        while true {
            let result = operation()
            try flush(deadline: deadline, timeout: timeout)
            if result > 0 { return result }
            let code = SSL_get_error(ssl, result)
            switch code {
            case SSL_ERROR_WANT_READ:
                guard try pull(deadline: deadline, timeout: timeout) else {
                    // The socket closed: a clean end only where a TLS read expected more (an HTTP/1.0 answer
                    // read to the end); during the handshake it is the server's doing.
                    if SSL_is_init_finished(ssl) == 1 { return 0 }
                    throw TransportError(
                        .connection, url: url, detail: "the server closed the connection during the TLS handshake")
                }
            case SSL_ERROR_ZERO_RETURN:
                return 0
            default:
                throw TransportError(.tls, url: url, detail: Self.errorText(ERR_get_error()))
            }
        }
    }

    /// Sends what TLS wrote into the outgoing BIO.
    private func flush(deadline: ContinuousClock.Instant, timeout: String = "sending timed out") throws {
        // Called after every TLS operation, most of which wrote nothing.
        guard BIO_ctrl_pending(outgoing) > 0 else { return }
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        while BIO_ctrl_pending(outgoing) > 0 {
            let count = chunk.withUnsafeMutableBytes { BIO_read(outgoing, $0.baseAddress, Int32($0.count)) }
            guard count > 0 else { return }
            try chunk.withUnsafeBytes { raw in
                try PlainHTTPTransport.send(
                    UnsafeRawBufferPointer(rebasing: raw[..<Int(count)]), on: descriptor, url: url, deadline: deadline,
                    timeout: timeout)
            }
        }
    }

    /// Receives bytes from the socket into the incoming BIO; false when the socket closed.
    private func pull(deadline: ContinuousClock.Instant, timeout: String) throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 16 << 10)
        let received = try PlainHTTPTransport.receive(
            into: &chunk, from: descriptor, url: url, deadline: deadline, timeout: timeout)
        guard received > 0 else { return false }
        _ = chunk.withUnsafeBytes { BIO_write(incoming, $0.baseAddress, Int32(received)) }
        return true
    }

    static func errorText(_ code: UInt32) -> String {
        guard code != 0 else { return "unknown TLS error" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
