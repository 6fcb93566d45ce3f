import FoundationEssentials
import Support

/// How the node reaches the API server, read as the kubelet reads it: the kubeconfig `init`
/// wrote (server, CA file or data) and its exec plugin as the token source.
struct ClusterAccess {
    /// Host path of the kubeconfig.
    let kubeconfigFile: String
    let kubeconfig: Kubeconfig
    let caPEM: [UInt8]?
    /// Where the CA came from, for messages (a host path, or the kubeconfig's data).
    let caSource: String
    let tokens: ExecTokenSource?

    /// `deadline` bounds the exec plugin's runs.
    init(
        kubeconfigPath: String, paths: NodePaths, environment: [String: String], deadline: ContinuousClock.Instant
    ) throws(NodeBootError) {
        kubeconfigFile = paths.node(kubeconfigPath)
        let bytes = try Self.read(
            kubeconfigFile, what: "the kubelet's kubeconfig",
            missing: NodeBootError(
                .io, "the kubelet's kubeconfig \(kubeconfigFile) does not exist",
                hint: "nodeboot init writes it (unless --skip config); run init without --skip config"))
        kubeconfig = try Kubeconfig.parse(String(decoding: bytes, as: UTF8.self), source: kubeconfigFile)
        if let data = kubeconfig.certificateAuthorityData {
            caPEM = data
            caSource = "the kubeconfig's certificate-authority-data (\(kubeconfigFile))"
        } else if let path = kubeconfig.certificateAuthority {
            let file = path.hasPrefix("/") ? paths.node(path) : Kubeconfig.directory(of: kubeconfigFile) + "/" + path
            caPEM = try Self.read(
                file, what: "the cluster CA",
                missing: NodeBootError(
                    .io, "the cluster CA \(file) named by \(kubeconfigFile) does not exist",
                    hint: "nodeboot init writes it from spec.cluster.certificateAuthority; run init again"))
            caSource = file
        } else {
            caPEM = nil
            caSource = "the system's trusted CAs (the kubeconfig names no certificate-authority)"
        }
        if let exec = kubeconfig.exec {
            tokens = ExecTokenSource(
                exec: exec, kubeconfigPath: kubeconfigFile, paths: paths, environment: environment, deadline: deadline)
        } else {
            tokens = nil
        }
    }

    /// The bytes of `file`; `missing` when it does not exist.
    static func read(_ file: String, what: String, missing: NodeBootError) throws(NodeBootError) -> [UInt8] {
        let bytes: [UInt8]?
        do {
            bytes = try NodeFileSystem.read(file)
        } catch {
            throw NodeBootError(.io, "cannot read \(what): \(error)", cause: error)
        }
        guard let bytes else { throw missing }
        return bytes
    }

    var clusterName: String { kubeconfig.clusterName ?? "CLUSTER" }

    /// The exec plugin's command line, for messages.
    var commandLine: String {
        guard let exec = kubeconfig.exec else { return "the kubeconfig's token" }
        return ([exec.command] + exec.args).joined(separator: " ")
    }

    /// ` (certificate SHA-256 fingerprint AB:CD:…)` of the CA's first certificate, as `openssl x509
    /// -noout -fingerprint -sha256` prints it; never the CA itself.
    var fingerprintText: String {
        guard let caPEM, let fingerprint = Self.fingerprint(pem: caPEM) else { return "" }
        return " (certificate SHA-256 fingerprint \(fingerprint))"
    }

    static func fingerprint(pem: [UInt8]) -> String? {
        let text = String(decoding: pem, as: UTF8.self)
        guard let begin = text.firstRange(of: "-----BEGIN CERTIFICATE-----"),
            let end = text[begin.upperBound...].firstRange(of: "-----END CERTIFICATE-----"),
            let der = Data(base64Encoded: text[begin.upperBound..<end.lowerBound].filter { !$0.isWhitespace })
        else { return nil }
        let hex = Array(Hex.sha256(Array(der)).uppercased())
        return stride(from: 0, to: hex.count, by: 2).map { String(hex[$0..<$0 + 2]) }.joined(separator: ":")
    }
}
