public import AWS
public import NodeConfig
import Support
import TOML

/// Where NodeConfig documents come from (`-c/--config-source`).
public enum ConfigSource: Sendable, Equatable, CustomStringConvertible {
    /// `imds://user-data`: the instance user data (nodeadm ignores what follows the scheme).
    case imdsUserData
    /// `file://PATH`: a file, or a directory of `.yaml/.yml/.json` files read in name order.
    case file(String)

    public static let `default` = [ConfigSource.imdsUserData]

    public init(uri: String) throws(NodeBootError) {
        if uri.hasPrefix("imds://") {
            self = .imdsUserData
        } else if uri.hasPrefix("file://") {
            let path = String(uri.dropFirst(7))
            guard !path.isEmpty else {
                throw NodeBootError(
                    .input, "config source '\(uri)' names no path",
                    hint: "use file:///etc/eks/nodeadm.d/ or file://config.yaml")
            }
            self = .file(path)
        } else {
            let scheme = uri.firstRange(of: "://").map { String(uri[..<$0.lowerBound]) } ?? uri
            throw NodeBootError(
                .input, "config source '\(uri)': unsupported scheme '\(scheme)'",
                hint: "use imds://user-data or file://PATH")
        }
    }

    public var description: String {
        switch self {
        case .imdsUserData: "imds://user-data"
        case .file(let path): "file://\(path)"
        }
    }
}

/// The config chain: every source read in order, each document decoded and checked, all merged
/// with nodeadm's rules. Problems from every document are collected before failing.
public struct ConfigChain: Sendable {
    public struct Result: Sendable {
        /// nil when no source held a NodeConfig.
        public var config: LocatedConfig?
        public var diagnostics: [ConfigDiagnostic]
        /// What was skipped and why (empty directory, user data without a NodeConfig).
        public var notes: [String]
        /// The user data held no NodeConfig but what cloud-init runs: a shell script, cloud-config, or MIME
        /// without a NodeConfig part (AL2-style user data calling `/etc/eks/bootstrap.sh`). The description.
        public var cloudInitUserData: String? = nil
    }

    public var sources: [ConfigSource]
    /// Fetches the user data; nil when the instance has none (IMDS 404).
    public var userData: @Sendable () async throws -> [UInt8]?

    public init(sources: [ConfigSource], userData: @escaping @Sendable () async throws -> [UInt8]?) {
        self.sources = sources.isEmpty ? ConfigSource.default : sources
        self.userData = userData
    }

    /// The chain reading user data from `imds` (an instance without user data: nil, not an error).
    public init(sources: [ConfigSource], imds: IMDSClient) {
        self.init(sources: sources) {
            do {
                return try await imds.get("/latest/user-data")
            } catch let error as AWSError where error.kind == .notFound {
                return nil
            }
        }
    }

    /// Bad input naming every error in `diagnostics` (and every warning when `strict`); nil when
    /// there is none.
    public static func failure(_ diagnostics: [ConfigDiagnostic], strict: Bool) -> NodeBootError? {
        let errors = diagnostics.filter { $0.severity == .error || strict }
        guard !errors.isEmpty else { return nil }
        let count = errors.count == 1 ? "1 problem" : "\(errors.count) problems"
        return NodeBootError(
            .input, "the NodeConfig has \(count); nothing was written:\n" + errors.map { "  \($0)" }.joined(separator: "\n"))
    }

    public func load() async throws(NodeBootError) -> Result {
        var documents: [RawDocument] = []
        var notes: [String] = []
        var cloudInitUserData: String?
        for source in sources {
            switch source {
            case .file(let path):
                documents += try Self.fileDocuments(path, notes: &notes)
            case .imdsUserData:
                let bytes: [UInt8]?
                do {
                    bytes = try await userData()
                } catch let error as AWSError where error.kind == .malformedResponse && error.message.contains("too large") {
                    throw NodeBootError(
                        .input, "user data: larger than the \(UserData.maxBytes) bytes accepted",
                        hint: "EC2 user data is at most 16 KiB; put large settings in files under /etc/eks/nodeadm.d")
                } catch {
                    throw Discoverer.imdsFailure(error, reading: "the user data")
                }
                guard let bytes, !bytes.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) else {
                    notes.append("imds://user-data: the instance has no user data")
                    continue
                }
                do {
                    let parts = try UserData.documents(bytes, source: "user data")
                    if parts.count == 1, parts[0].origin.part == nil, !Self.looksLikeNodeConfig(parts[0].bytes) {
                        notes.append("imds://user-data: no NodeConfig in the user data (not MIME, no node.eks.aws apiVersion)")
                        cloudInitUserData = Self.cloudInitKind(parts[0].bytes)
                        continue
                    }
                    documents += parts
                } catch {
                    if case .noNodeConfigPart = error.kind {
                        notes.append("imds://user-data: \(error.message)")
                        cloudInitUserData = "MIME multi-part without a NodeConfig part"
                        continue
                    }
                    throw NodeBootError(.input, "\(error)")
                }
            }
        }
        var diagnostics: [ConfigDiagnostic] = []
        var merged: LocatedConfig?
        var decodedDocuments: [LocatedConfig] = []
        for document in documents {
            let (decoded, found) = NodeConfigDecoder.decodeLocated(document)
            diagnostics += found
            guard var decoded else { continue }
            decoded.documents = [document.origin]
            decodedDocuments.append(decoded)
            diagnostics += Self.checkTOML(decoded)
            if diagnostics.contains(where: { $0.severity == .error }) { continue }
            do {
                merged = try merged.map { earlier throws(ConfigDiagnostic) in try earlier.merged(with: decoded) } ?? decoded
            } catch {
                diagnostics.append(error)
            }
        }
        let failed = diagnostics.contains { $0.severity == .error }
        if failed && decodedDocuments.count > 0 {
            // Every problem at once: the documents that did decode are checked on their own too
            // (what only the merge can tell, a missing field, is left for after the fix).
            for document in decodedDocuments {
                diagnostics += NodeConfigValidation.validate(document).errors.filter {
                    !$0.message.hasPrefix("is missing")
                }
            }
        }
        return Result(
            config: failed ? nil : merged, diagnostics: diagnostics, notes: notes, cloudInitUserData: cloudInitUserData)
    }

    /// What cloud-init makes of a single-part user data that is no NodeConfig, by its first line (cloud-init's
    /// own part types): nil when it is neither a script nor cloud-config.
    static func cloudInitKind(_ bytes: [UInt8]) -> String? {
        let firstLine = String(decoding: bytes.prefix(64).prefix { $0 != 0x0A }, as: UTF8.self)
        if firstLine.hasPrefix("#!") { return "a shell script" }
        if firstLine.hasPrefix("#cloud-config") { return "cloud-config" }
        if firstLine.hasPrefix("#cloud-boothook") { return "a cloud-boothook" }
        return nil
    }

    static func fileDocuments(_ path: String, notes: inout [String]) throws(NodeBootError) -> [RawDocument] {
        guard let status = NodeFileSystem.status(path) else {
            throw NodeBootError(
                .input, "config source file://\(path): no such file or directory",
                hint: "check the path; a relative path is relative to the current directory")
        }
        var files: [String] = [path]
        if status.isDirectory {
            files = (NodeFileSystem.list(path) ?? []).filter { name in
                let lower = name.lowercased()
                return [".yaml", ".yml", ".json"].contains { lower.hasSuffix($0) }
                    && NodeFileSystem.status("\(path)/\(name)")?.isRegular == true
            }.map { path.hasSuffix("/") ? path + $0 : "\(path)/\($0)" }
            if files.isEmpty {
                notes.append("file://\(path): no .yaml, .yml or .json file in the directory")
                return []
            }
        }
        var documents: [RawDocument] = []
        for file in files {
            if let size = NodeFileSystem.status(file)?.size, size > UserData.maxBytes {
                throw NodeBootError(
                    .input, "config source file://\(file): \(size) bytes is more than the \(UserData.maxBytes) bytes accepted",
                    hint: "a NodeConfig is a few KiB; split settings over several files in the directory")
            }
            let bytes: [UInt8]?
            do {
                bytes = try NodeFileSystem.read(file, limit: UserData.maxBytes)
            } catch {
                throw NodeBootError(.input, "config source file://\(file): \(error)", hint: "make the file readable")
            }
            guard let bytes else {
                throw NodeBootError(.input, "config source file://\(file): no such file")
            }
            do {
                documents += try UserData.documents(bytes, source: "file://\(file)")
            } catch {
                throw NodeBootError(.input, "\(error)")
            }
        }
        return documents
    }

    /// A lone user-data document is taken for a NodeConfig only when it says so; anything else
    /// (an AL2 shell script, a cloud-config) is skipped, as nodeadm tolerates it.
    static func looksLikeNodeConfig(_ bytes: [UInt8]) -> Bool {
        let text = String(decoding: bytes.prefix(1 << 20), as: UTF8.self)
        return text.contains("node.eks.aws") || text.contains("NodeConfig")
    }

    /// The inline containerd TOML of one document must parse; the error names its line.
    static func checkTOML(_ located: LocatedConfig) -> [ConfigDiagnostic] {
        let text = located.config.spec.containerd.config
        guard !text.isEmpty else { return [] }
        do {
            _ = try TOML.parse(text)
            return []
        } catch {
            let place = located.location(of: "spec.containerd.config")
            return [
                ConfigDiagnostic(
                    severity: .error, origin: place.origin, line: place.line.map { $0 + error.line },
                    field: "spec.containerd.config",
                    message: "not valid TOML (line \(error.line) of the fragment): \(error.message)",
                    hint: "the value is a containerd config.toml fragment")
            ]
        }
    }
}
