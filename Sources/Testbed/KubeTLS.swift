import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// The kube API server's TLS identity: a CA (generated at start, or loaded from the files the
/// configuration names) and a P-256 server certificate it signs for `localhost`, `127.0.0.1`
/// and the bind host (and `advertiseEndpoint`'s host), valid from an hour ago for a day.
struct KubeTLS: Sendable {
    /// The CA certificate, PEM, as a kubeconfig's `certificate-authority` wants it.
    var caPEM: String
    var context: NIOSSLContext

    static func make(_ configuration: TestbedConfiguration.KubeAPI, host: String, now: Date) throws -> KubeTLS {
        let authority: (certificate: Certificate, key: Certificate.PrivateKey)
        if let certificateFile = configuration.caCertificateFile, let keyFile = configuration.caKeyFile {
            authority = try load(certificateFile: certificateFile, keyFile: keyFile)
        } else {
            authority = try generateAuthority(now: now)
        }
        let serverKey = P256.Signing.PrivateKey()
        let server = try issueServerCertificate(
            for: Certificate.PrivateKey(serverKey).publicKey,
            hosts: ["localhost", "127.0.0.1", host] + [configuration.advertised?.host].compactMap { $0 },
            authority: authority, now: now)
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: try der(server), format: .der))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(serverKey.pemRepresentation.utf8), format: .pem)))
        configuration.applicationProtocols = ["http/1.1"]
        let caPEM = try authority.certificate.serializeAsPEM().pemString + "\n"
        return KubeTLS(caPEM: caPEM, context: try NIOSSLContext(configuration: configuration))
    }

    static func der(_ certificate: Certificate) throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(certificate)
        return serializer.serializedBytes
    }

    /// A self-signed P-256 CA, valid from an hour ago for a day.
    static func generateAuthority(now: Date) throws -> (certificate: Certificate, key: Certificate.PrivateKey) {
        let key = Certificate.PrivateKey(P256.Signing.PrivateKey())
        let name = try DistinguishedName {
            OrganizationName("nodeboot-testbed")
            CommonName("nodeboot-testbed kubernetes CA")
        }
        let certificate = try Certificate(
            version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: key.publicKey,
            notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(86400),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
                SubjectKeyIdentifier(hash: key.publicKey)
            },
            issuerPrivateKey: key)
        return (certificate, key)
    }

    /// The server certificate: SANs for each host (IP addresses as IP SANs), server auth.
    static func issueServerCertificate(
        for publicKey: Certificate.PublicKey, hosts: [String],
        authority: (certificate: Certificate, key: Certificate.PrivateKey), now: Date
    ) throws -> Certificate {
        var names: [GeneralName] = []
        for host in hosts {
            let name: GeneralName =
                IPAddressBytes.parse(host).map { .ipAddress(ASN1OctetString(contentBytes: $0[...])) } ?? .dnsName(host)
            if !names.contains(name) { names.append(name) }
        }
        let subject = try DistinguishedName {
            OrganizationName("nodeboot-testbed")
            CommonName("kube-apiserver")
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(names)
            AuthorityKeyIdentifier(keyIdentifier: SubjectKeyIdentifier(hash: authority.certificate.publicKey).keyIdentifier)
        }
        // The loaded CA key may be of any type X509 signs with: the first algorithm it accepts.
        var lastError: (any Error)?
        for algorithm: Certificate.SignatureAlgorithm in [
            .ecdsaWithSHA256, .ecdsaWithSHA384, .ecdsaWithSHA512, .sha256WithRSAEncryption, .ed25519,
        ] {
            do {
                return try Certificate(
                    version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: publicKey,
                    notValidBefore: now.addingTimeInterval(-3600), notValidAfter: now.addingTimeInterval(86400),
                    issuer: authority.certificate.subject, subject: subject, signatureAlgorithm: algorithm,
                    extensions: extensions, issuerPrivateKey: authority.key)
            } catch {
                lastError = error
            }
        }
        throw TestbedError(
            .configuration, "testbed kubeAPI: the CA key cannot sign the server certificate",
            cause: lastError)
    }

    /// Reads a CA certificate and its key (PEM); the key must be the certificate's.
    static func load(certificateFile: String, keyFile: String) throws -> (
        certificate: Certificate, key: Certificate.PrivateKey
    ) {
        func read(_ path: String, _ field: String) throws -> String {
            do {
                return try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw TestbedError(
                    .configuration, "testbed kubeAPI.\(field) \(path): cannot be read: \(error.localizedDescription)")
            }
        }
        let certificate: Certificate
        do {
            certificate = try Certificate(pemEncoded: try read(certificateFile, "caCertificateFile"))
        } catch let error as TestbedError {
            throw error
        } catch {
            throw TestbedError(
                .configuration, "testbed kubeAPI.caCertificateFile \(certificateFile): not a PEM certificate",
                hint: "give a PEM file with one CERTIFICATE block", cause: error)
        }
        let key: Certificate.PrivateKey
        do {
            key = try Certificate.PrivateKey(pemEncoded: try read(keyFile, "caKeyFile"))
        } catch let error as TestbedError {
            throw error
        } catch {
            throw TestbedError(
                .configuration, "testbed kubeAPI.caKeyFile \(keyFile): not a PEM private key",
                hint: "give a PKCS#8 (PRIVATE KEY) or SEC1 (EC PRIVATE KEY) PEM file", cause: error)
        }
        guard key.publicKey == certificate.publicKey else {
            throw TestbedError(
                .configuration,
                "testbed kubeAPI.caKeyFile \(keyFile): the key does not belong to the certificate in \(certificateFile)")
        }
        guard case .isCertificateAuthority = try certificate.extensions.basicConstraints else {
            throw TestbedError(
                .configuration,
                "testbed kubeAPI.caCertificateFile \(certificateFile): not a CA certificate (no basicConstraints CA:TRUE)")
        }
        return (certificate, key)
    }
}

/// The bytes of an IPv4 or IPv6 address in text form, for IP SANs.
enum IPAddressBytes {
    static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }
}
