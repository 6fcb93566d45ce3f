import YAML

/// One problem in a configuration document: where (source, MIME part, line, field), what, and
/// what to do.
public struct ConfigDiagnostic: Sendable, Equatable, CustomStringConvertible {
    public enum Severity: String, Sendable { case error, warning }

    public var severity: Severity
    public var origin: DocumentOrigin
    /// Line in the source (user data or file), 1-based.
    public var line: Int?
    /// Dotted path, e.g. `spec.cluster.cidr`.
    public var field: String
    public var message: String
    public var hint: String?

    public init(
        severity: Severity, origin: DocumentOrigin, line: Int?, field: String, message: String, hint: String? = nil
    ) {
        self.severity = severity
        self.origin = origin
        self.line = line
        self.field = field
        self.message = message
        self.hint = hint
    }

    public var description: String {
        var text = "\(origin)"
        if let line { text += ": line \(line)" }
        if !field.isEmpty { text += ": \(field)" }
        text += ": \(message)"
        if let hint { text += " — \(hint)" }
        return text
    }
}

/// Decodes one YAML or JSON document into a `NodeConfig`, collecting every problem. Unknown
/// fields are warnings (nodeadm ignores them silently, #2553); keys are case-sensitive, as in
/// nodeadm. Only the first YAML document of the text is read, as nodeadm does.
public enum NodeConfigDecoder {
    public static func decode(_ document: RawDocument) -> (config: NodeConfig?, diagnostics: [ConfigDiagnostic]) {
        let result = decodeLocated(document)
        return (result.config?.config, result.diagnostics)
    }

    /// Decodes and records the line of every field set, so that later checks (after merging)
    /// can name the place. `allowStatus` accepts the `status` member of nodeboot's config cache.
    public static func decodeLocated(_ document: RawDocument, allowStatus: Bool = false) -> (
        config: LocatedConfig?, diagnostics: [ConfigDiagnostic]
    ) {
        var walker = Walker(origin: document.origin, allowStatus: allowStatus)
        if let problem = TextCheck.firstProblem(document.bytes) {
            walker.diagnostics.append(
                ConfigDiagnostic(
                    severity: .error, origin: document.origin, line: document.origin.firstLine + problem.line - 1,
                    field: "", message: "column \(problem.column): \(problem.message)", hint: problem.hint))
            return (nil, walker.diagnostics)
        }
        let text = String(decoding: document.bytes, as: UTF8.self)
        let root: YAMLNode?
        do {
            root = try YAML.compose(text)
        } catch {
            walker.yamlError(error)
            return (nil, walker.diagnostics)
        }
        guard let root else {
            walker.error(
                nil, "", "the document is empty", hint: "user data must hold a NodeConfig (apiVersion: \(NodeConfig.apiVersion))")
            return (nil, walker.diagnostics)
        }
        let config = walker.nodeConfig(root)
        let failed = walker.diagnostics.contains { $0.severity == .error }
        let locations = walker.locations.mapValues { SourceLocation(origin: document.origin, line: $0) }
        return (failed ? nil : LocatedConfig(config: config, locations: locations), walker.diagnostics)
    }

    struct Walker {
        let origin: DocumentOrigin
        var allowStatus = false
        var diagnostics: [ConfigDiagnostic] = []
        /// Field path → line of its value.
        var locations: [String: Int] = [:]

        mutating func record(_ node: YAMLNode, _ field: String) {
            if let line = line(node) { locations[field] = line }
        }

        func line(_ node: YAMLNode?) -> Int? {
            node.map { origin.firstLine + $0.mark.line - 1 }
        }

        mutating func error(_ node: YAMLNode?, _ field: String, _ message: String, hint: String? = nil) {
            diagnostics.append(
                ConfigDiagnostic(
                    severity: .error, origin: origin, line: line(node), field: field, message: message, hint: hint))
        }

        mutating func warning(_ node: YAMLNode?, _ field: String, _ message: String, hint: String? = nil) {
            diagnostics.append(
                ConfigDiagnostic(
                    severity: .warning, origin: origin, line: line(node), field: field, message: message, hint: hint))
        }

        mutating func yamlError(_ error: YAMLError) {
            diagnostics.append(
                ConfigDiagnostic(
                    severity: .error, origin: origin, line: origin.firstLine + (error.context ?? error.mark).line - 1,
                    field: "",
                    message: "column \((error.context ?? error.mark).column): not valid YAML or JSON: \(error.message)",
                    hint: "check indentation and quoting near that line"))
        }

        /// `~`, `null` or nothing, unquoted.
        static func isNull(_ scalar: YAMLScalar) -> Bool { scalar.isNull }

        static func kindName(_ node: YAMLNode) -> String {
            switch node {
            case .scalar: "a scalar"
            case .mapping: "a mapping"
            case .sequence: "a list"
            }
        }

        /// The entries of a mapping; unknown keys are warned about (with a suggestion).
        mutating func mapping(_ node: YAMLNode, _ field: String, known: [String]) -> [(key: String, node: YAMLNode)]? {
            guard case .mapping(let mapping, _) = node else {
                if case .scalar(let scalar) = node, Self.isNull(scalar) { return [] }
                error(node, field, "expected a mapping, found \(Self.kindName(node))")
                return nil
            }
            if !field.isEmpty { record(node, field) }
            var entries: [(key: String, node: YAMLNode)] = []
            for (keyNode, value) in mapping {
                let key = keyNode.string ?? ""
                let path = FieldPath.child(field, key)
                if !known.isEmpty && !known.contains(key) {
                    let suggestion = Self.closest(key, in: known).map { "did you mean '\($0)'?" }
                    warning(keyNode, path, "unknown field '\(key)'", hint: suggestion)
                    continue
                }
                entries.append((key, value))
            }
            return entries
        }

        mutating func string(_ node: YAMLNode, _ field: String) -> String? {
            guard case .scalar(let scalar) = node else {
                error(node, field, "expected a string, found \(Self.kindName(node))")
                return nil
            }
            record(node, field)
            return Self.isNull(scalar) ? "" : scalar.string
        }

        mutating func bool(_ node: YAMLNode, _ field: String) -> Bool? {
            guard case .scalar(let scalar) = node, let value = scalar.bool else {
                error(node, field, "expected true or false, found '\(node.string ?? Self.kindName(node))'")
                return nil
            }
            record(node, field)
            return value
        }

        mutating func strings(_ node: YAMLNode, _ field: String) -> [String]? {
            guard case .sequence(let sequence, _) = node else {
                if case .scalar(let scalar) = node, Self.isNull(scalar) { return [] }
                error(node, field, "expected a list of strings, found \(Self.kindName(node))")
                return nil
            }
            record(node, field)
            var result: [String] = []
            for (index, item) in sequence.enumerated() {
                if let value = string(item, "\(field)[\(index)]") { result.append(value) }
            }
            return result
        }

        mutating func stringMap(_ node: YAMLNode, _ field: String) -> [String: String]? {
            guard let entries = mapping(node, field, known: []) else { return nil }
            var result: [String: String] = [:]
            for (key, value) in entries {
                if let text = string(value, FieldPath.child(field, key)) { result[key] = text }
            }
            return result
        }

        /// Any value, typed as YAML resolves it (for inline documents).
        func value(_ node: YAMLNode) -> ConfigValue {
            switch node {
            case .scalar(let scalar):
                // Plain scalars are typed as YAML 1.1 (sigs.k8s.io/yaml) types them; quoted ones are strings.
                guard scalar.style == .plain else { return .string(scalar.string) }
                if Self.isNull(scalar) { return .null }
                if let value = scalar.bool { return .bool(value) }
                if let value = scalar.int { return .int(value) }
                if let value = scalar.double { return .double(value) }
                return .string(scalar.string)
            case .sequence(let sequence, _):
                return .array(sequence.map(value))
            case .mapping(let mapping, _):
                var object: [String: ConfigValue] = [:]
                for (key, item) in mapping { object[key.string ?? ""] = value(item) }
                return .object(object)
            }
        }

        mutating func inlineDocument(_ node: YAMLNode, _ field: String) -> ConfigValue? {
            guard case .mapping = node else {
                if case .scalar(let scalar) = node, Self.isNull(scalar) { return nil }
                error(node, field, "expected a mapping (an inline document), found \(Self.kindName(node))")
                return nil
            }
            record(node, field)
            return value(node)
        }

        mutating func nodeConfig(_ root: YAMLNode) -> NodeConfig {
            var config = NodeConfig()
            let known = ["apiVersion", "kind", "metadata", "spec"] + (allowStatus ? ["status"] : [])
            guard let entries = mapping(root, "", known: known) else { return config }
            let fields = Dictionary(entries.map { ($0.key, $0.node) }, uniquingKeysWith: { first, _ in first })
            let apiVersion = fields["apiVersion"].flatMap { string($0, "apiVersion") } ?? ""
            if apiVersion != NodeConfig.apiVersion {
                error(
                    fields["apiVersion"] ?? root, "apiVersion",
                    apiVersion.isEmpty ? "missing" : "'\(apiVersion)' is not supported",
                    hint: "use apiVersion: \(NodeConfig.apiVersion)")
            }
            let kind = fields["kind"].flatMap { string($0, "kind") } ?? ""
            if kind != NodeConfig.kind {
                error(
                    fields["kind"] ?? root, "kind", kind.isEmpty ? "missing" : "'\(kind)' is not NodeConfig",
                    hint: "use kind: NodeConfig")
            }
            if let spec = fields["spec"] { config.spec = self.spec(spec) }
            return config
        }

        mutating func spec(_ node: YAMLNode) -> NodeConfig.Spec {
            var spec = NodeConfig.Spec()
            for (key, value) in mapping(node, "spec", known: ["cluster", "containerd", "instance", "kubelet", "featureGates"])
                ?? []
            {
                switch key {
                case "cluster": spec.cluster = cluster(value)
                case "containerd": spec.containerd = containerd(value)
                case "instance": spec.instance = instance(value)
                case "kubelet": spec.kubelet = kubelet(value)
                default:
                    let gates = ["InstanceIdNodeName", "FastImagePull"]
                    for (gate, flag) in mapping(value, "spec.featureGates", known: []) ?? [] {
                        if !gates.contains(gate) {
                            let suggestion = Self.closest(gate, in: gates).map { "did you mean '\($0)'?" }
                            warning(
                                flag, FieldPath.child("spec.featureGates", gate), "unknown feature gate (treated as false)",
                                hint: suggestion ?? "known gates: \(gates.joined(separator: ", "))")
                        }
                        if let enabled = bool(flag, FieldPath.child("spec.featureGates", gate)) {
                            spec.featureGates[gate] = enabled
                        }
                    }
                }
            }
            return spec
        }

        mutating func cluster(_ node: YAMLNode) -> NodeConfig.Cluster {
            var cluster = NodeConfig.Cluster()
            let known = ["name", "apiServerEndpoint", "certificateAuthority", "cidr", "enableOutpost", "id"]
            for (key, value) in mapping(node, "spec.cluster", known: known) ?? [] {
                let field = "spec.cluster.\(key)"
                switch key {
                case "enableOutpost": cluster.enableOutpost = bool(value, field)
                default:
                    let text = string(value, field) ?? ""
                    switch key {
                    case "name": cluster.name = text
                    case "apiServerEndpoint": cluster.apiServerEndpoint = text
                    case "cidr": cluster.cidr = text
                    case "id": cluster.id = text
                    default:
                        cluster.certificateAuthority = text
                        if !text.isEmpty && Base64.decode(Array(text.utf8), ignoringWhitespace: true) == nil {
                            error(
                                value, field, "is not base64",
                                hint: "use the cluster's certificateAuthority.data from DescribeCluster, as it is")
                        }
                    }
                }
            }
            return cluster
        }

        mutating func containerd(_ node: YAMLNode) -> NodeConfig.Containerd {
            var containerd = NodeConfig.Containerd()
            for (key, value) in mapping(node, "spec.containerd", known: ["config", "baseRuntimeSpec"]) ?? [] {
                if key == "config" {
                    containerd.config = string(value, "spec.containerd.config") ?? ""
                } else {
                    containerd.baseRuntimeSpec = inlineDocument(value, "spec.containerd.baseRuntimeSpec")
                }
            }
            return containerd
        }

        mutating func instance(_ node: YAMLNode) -> NodeConfig.Instance {
            var instance = NodeConfig.Instance()
            for (key, value) in mapping(
                node, "spec.instance", known: ["localStorage", "storage", "environment", "network"]) ?? []
            {
                switch key {
                case "localStorage":
                    let field = "spec.instance.localStorage"
                    for (name, item) in mapping(value, field, known: ["strategy", "mountPath", "disabledMounts"]) ?? [] {
                        switch name {
                        case "strategy": instance.localStorage.strategy = string(item, "\(field).strategy") ?? ""
                        case "mountPath": instance.localStorage.mountPath = string(item, "\(field).mountPath") ?? ""
                        default: instance.localStorage.disabledMounts = strings(item, "\(field).disabledMounts") ?? []
                        }
                    }
                case "storage":
                    for (name, item) in mapping(value, "spec.instance.storage", known: ["volumes"]) ?? [] where name == "volumes"
                    {
                        instance.storage.volumes = volumes(item, "spec.instance.storage.volumes")
                    }
                case "environment":
                    for (unit, variables) in mapping(value, "spec.instance.environment", known: []) ?? [] {
                        instance.environment[unit] =
                            stringMap(variables, FieldPath.child("spec.instance.environment", unit)) ?? [:]
                    }
                default:
                    let field = "spec.instance.network"
                    for (name, item) in mapping(value, field, known: ["nameservers", "domains"]) ?? [] {
                        if name == "nameservers" {
                            instance.network.nameservers = strings(item, "\(field).nameservers") ?? []
                        } else {
                            instance.network.domains = strings(item, "\(field).domains") ?? []
                        }
                    }
                }
            }
            return instance
        }

        mutating func volumes(_ node: YAMLNode, _ field: String) -> [NodeConfig.Volume] {
            guard case .sequence(let sequence, _) = node else {
                if case .scalar(let scalar) = node, Self.isNull(scalar) { return [] }
                error(node, field, "expected a list of volumes, found \(Self.kindName(node))")
                return []
            }
            record(node, field)
            var result: [NodeConfig.Volume] = []
            for (index, item) in sequence.enumerated() {
                let path = "\(field)[\(index)]"
                var volume = NodeConfig.Volume()
                for (key, value) in mapping(item, path, known: ["device", "mountTarget", "mountTargets", "fsType"]) ?? [] {
                    switch key {
                    case "device": volume.device = string(value, "\(path).device") ?? ""
                    case "mountTarget": volume.mountTarget = string(value, "\(path).mountTarget") ?? ""
                    case "mountTargets": volume.mountTargets = strings(value, "\(path).mountTargets") ?? []
                    default: volume.fsType = string(value, "\(path).fsType") ?? ""
                    }
                }
                result.append(volume)
            }
            return result
        }

        mutating func kubelet(_ node: YAMLNode) -> NodeConfig.Kubelet {
            var kubelet = NodeConfig.Kubelet()
            for (key, value) in mapping(node, "spec.kubelet", known: ["config", "flags", "maxPodsExpression"]) ?? [] {
                switch key {
                case "config": kubelet.config = inlineDocument(value, "spec.kubelet.config")
                case "flags": kubelet.flags = strings(value, "spec.kubelet.flags") ?? []
                default: kubelet.maxPodsExpression = string(value, "spec.kubelet.maxPodsExpression") ?? ""
                }
            }
            return kubelet
        }

        /// The known name within edit distance 2 (case-insensitive match first).
        static func closest(_ key: String, in known: [String]) -> String? {
            if let match = known.first(where: { $0.lowercased() == key.lowercased() }) { return match }
            return known.map { ($0, distance(key, $0)) }.filter { $0.1 <= 2 }.min { $0.1 < $1.1 }?.0
        }

        static func distance(_ a: String, _ b: String) -> Int {
            let x = Array(a)
            let y = Array(b)
            var previous = Array(0...y.count)
            for i in 1...max(x.count, 1) where !x.isEmpty {
                var current = [i] + Array(repeating: 0, count: y.count)
                for j in 1...max(y.count, 1) where !y.isEmpty {
                    current[j] = min(
                        previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (x[i - 1] == y[j - 1] ? 0 : 1))
                }
                previous = current
            }
            return x.isEmpty ? y.count : previous[y.count]
        }
    }
}

/// Text a NodeConfig may hold: UTF-8 without control characters other than tab and line breaks
/// (YAML's own rule). Checked before parsing, so no parser ever echoes such bytes in a message.
enum TextCheck {
    struct Problem {
        var line: Int
        var column: Int
        var message: String
        var hint: String
    }

    static func firstProblem(_ bytes: [UInt8]) -> Problem? {
        var iterator = bytes.makeIterator()
        var parser = Unicode.UTF8.ForwardParser()
        var line = 1
        var column = 1
        while true {
            switch parser.parseScalar(from: &iterator) {
            case .valid(let encoded):
                let scalar = Unicode.UTF8.decode(encoded)
                if scalar == "\n" {
                    line += 1
                    column = 0
                } else if scalar.value == 0xFEFF && line == 1 && column == 1 {
                    column = 0  // a byte-order mark
                } else if (scalar.value < 0x20 && scalar != "\t" && scalar != "\r") || (0x7F...0x9F).contains(scalar.value) {
                    let code = String(scalar.value, radix: 16, uppercase: true)
                    return Problem(
                        line: line, column: column,
                        message: "control character U+\(String(repeating: "0", count: 4 - code.count))\(code) is not allowed",
                        hint: "remove it; a NodeConfig is plain text")
                }
                column += 1
            case .error:
                return Problem(
                    line: line, column: column, message: "the text is not valid UTF-8",
                    hint: "save the file as UTF-8 (a NodeConfig is UTF-8 text)")
            case .emptyInput:
                return nil
            }
        }
    }
}

/// Dotted field paths; a map key that is not a plain name is written `["key"]` (escaped), so
/// that `../../etc/evil` reads as a key, not as path syntax.
public enum FieldPath {
    public static func child(_ parent: String, _ key: String) -> String {
        let plain =
            !key.isEmpty
            && key.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-"
            }
        if plain { return parent.isEmpty ? key : "\(parent).\(key)" }
        var quoted = "\""
        for scalar in key.unicodeScalars.prefix(100) {
            switch scalar {
            case "\"": quoted += "\\\""
            case "\\": quoted += "\\\\"
            case "\n": quoted += "\\n"
            default:
                if scalar.properties.generalCategory == .control {
                    quoted += "\\u{\(String(scalar.value, radix: 16))}"
                } else {
                    quoted.unicodeScalars.append(scalar)
                }
            }
        }
        return parent + "[" + quoted + "\"]"
    }
}
