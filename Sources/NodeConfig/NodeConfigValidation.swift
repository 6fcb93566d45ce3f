/// Checks a merged NodeConfig before anything is written, collecting every problem (nodeadm
/// stops at the first of its five checks and validates nothing else; see docs/compat.md).
public enum NodeConfigValidation {
    public struct Result: Sendable, Equatable {
        public var diagnostics: [ConfigDiagnostic] = []
        /// `apiServerEndpoint`, `certificateAuthority`, `cidr` that are not given: `init` reads
        /// them with one DescribeCluster.
        public var missingClusterFields: [String] = []

        public var errors: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .error } }
        public var warnings: [ConfigDiagnostic] { diagnostics.filter { $0.severity == .warning } }
    }

    public static let strategies = ["RAID0", "RAID10", "Mount"]
    public static let disabledMounts = ["Containerd", "PodLogs", "SOCI"]
    /// What `storage.volumes[].fsType` may be: what nodeadm formats (mkfs.xfs, mkfs.ext4).
    public static let volumeFilesystems = ["xfs", "ext4"]

    /// Where setup-local-disks mounts the instance store disks without `localStorage.mountPath`.
    public static let localStorageMountPath = "/mnt/k8s-disks"

    /// The directories setup-local-disks bind-mounts from a RAID0/RAID10 array, each with the
    /// `disabledMounts` value that keeps it off the array (none for the kubelet's).
    public static func localStorageBinds(_ disabled: [String]) -> [(directory: String, disable: String?)] {
        let all: [(directory: String, disable: String?)] = [
            ("/var/lib/kubelet", nil), ("/var/lib/containerd", "Containerd"),
            ("/var/lib/soci-snapshotter-grpc", "SOCI"), ("/var/log/pods", "PodLogs"),
        ]
        return all.filter { $0.disable.map { !disabled.contains($0) } ?? true }
    }

    /// Why a data volume may not be mounted at `path` (nil: it may): over the root filesystem or
    /// the system's own directories, the node would lose what it runs from.
    public static func reservedMountTarget(_ path: String) -> String? {
        let system = ["/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib64", "/proc", "/run", "/sbin", "/sys", "/usr", "/var"]
        return system.contains(path) ? "is a system directory" : nil
    }

    public static func validate(_ located: LocatedConfig) -> Result {
        var check = Checker(located: located)
        check.cluster()
        check.instance()
        check.kubelet()
        return check.result
    }

    struct Checker {
        let located: LocatedConfig
        var result = Result()
        var spec: NodeConfig.Spec { located.config.spec }

        mutating func error(_ field: String, _ message: String, hint: String? = nil) {
            add(.error, field, message, hint)
        }

        mutating func warning(_ field: String, _ message: String, hint: String? = nil) {
            add(.warning, field, message, hint)
        }

        mutating func add(_ severity: ConfigDiagnostic.Severity, _ field: String, _ message: String, _ hint: String?) {
            let place = located.location(of: field)
            result.diagnostics.append(
                ConfigDiagnostic(
                    severity: severity, origin: place.origin, line: place.line, field: field, message: message,
                    hint: hint))
        }

        mutating func cluster() {
            let cluster = spec.cluster
            if cluster.name.isEmpty {
                error(
                    "spec.cluster.name", "is missing",
                    hint: "set spec.cluster.name to the EKS cluster's name (keys are case-sensitive: 'name', not 'Name')")
            } else if !Self.isClusterName(cluster.name) {
                error(
                    "spec.cluster.name", "'\(Self.printable(cluster.name))' is not a valid EKS cluster name",
                    hint: "1 to 100 letters, digits, '-' and '_', starting with a letter or digit")
            }
            if cluster.apiServerEndpoint.isEmpty {
                result.missingClusterFields.append("apiServerEndpoint")
            } else if let problem = Self.endpointProblem(cluster.apiServerEndpoint) {
                error(
                    "spec.cluster.apiServerEndpoint", "'\(Self.printable(cluster.apiServerEndpoint))' \(problem)",
                    hint:
                        "use the cluster's endpoint as DescribeCluster returns it, e.g. https://ABC.gr7.us-west-2.eks.amazonaws.com"
                )
            }
            if cluster.certificateAuthority.isEmpty {
                result.missingClusterFields.append("certificateAuthority")
            } else if let bytes = cluster.certificateAuthorityBytes {
                certificateAuthority(bytes)
            }
            if cluster.cidr.isEmpty {
                result.missingClusterFields.append("cidr")
            } else if CIDR(cluster.cidr) == nil {
                error(
                    "spec.cluster.cidr", "'\(Self.printable(cluster.cidr))' is not a valid CIDR",
                    hint: "use the cluster's service CIDR, e.g. 10.100.0.0/16 or fd00:1234::/108")
            }
            if cluster.enableOutpost == true {
                if cluster.id.isEmpty {
                    error(
                        "spec.cluster.id", "is missing: cluster ID must be provided for outposts",
                        hint: "set spec.cluster.id to the local cluster's ID (DescribeCluster .cluster.id)")
                } else if !Self.isClusterName(cluster.id) {
                    error(
                        "spec.cluster.id", "'\(Self.printable(cluster.id))' is not a valid cluster ID",
                        hint: "letters, digits, '-' and '_' only")
                }
            }
        }

        mutating func certificateAuthority(_ bytes: [UInt8]) {
            let field = "spec.cluster.certificateAuthority"
            switch PEM.certificateProblem(bytes) {
            case .none:
                break
            case .notPEM:
                warning(
                    field, "the decoded value is not a PEM certificate; the kubelet will not trust the API server",
                    hint: "use certificateAuthority.data from DescribeCluster (base64 of a PEM bundle)")
            case .malformed(let problem):
                error(
                    field, "the decoded value is not a usable PEM certificate: \(problem)",
                    hint: "use certificateAuthority.data from DescribeCluster (base64 of a PEM bundle)")
            }
        }

        mutating func instance() {
            let instance = spec.instance
            let storage = instance.localStorage
            if !storage.strategy.isEmpty && !NodeConfigValidation.strategies.contains(storage.strategy) {
                error(
                    "spec.instance.localStorage.strategy", "'\(Self.printable(storage.strategy))' is not a strategy",
                    hint: "use one of \(NodeConfigValidation.strategies.joined(separator: ", "))")
            }
            if !storage.mountPath.isEmpty, let problem = Self.pathProblem(storage.mountPath) {
                error("spec.instance.localStorage.mountPath", problem, hint: "use an absolute path such as /mnt/k8s-disks")
            }
            for (index, mount) in storage.disabledMounts.enumerated()
            where !NodeConfigValidation.disabledMounts.contains(mount) {
                error(
                    "spec.instance.localStorage.disabledMounts[\(index)]", "'\(Self.printable(mount))' is not a mount",
                    hint: "use one of \(NodeConfigValidation.disabledMounts.joined(separator: ", "))")
            }
            volumes(instance.storage.volumes)
            localStorageConflicts(storage, instance.storage.volumes)
            for unit in instance.environment.keys.sorted() {
                let field = FieldPath.child("spec.instance.environment", unit)
                if !Self.isUnitName(unit) {
                    error(
                        field, "'\(Self.printable(unit))' is not a systemd unit name (it becomes a directory name)",
                        hint: "use 'default' or a unit name such as kubelet or containerd, without '/' or '..'")
                }
                for (name, value) in (instance.environment[unit] ?? [:]).sorted(by: { $0.key < $1.key }) {
                    if !Self.isVariableName(name) {
                        error(
                            FieldPath.child(field, name), "'\(Self.printable(name))' is not an environment variable name",
                            hint: "letters, digits and '_', not starting with a digit")
                    }
                    if value.unicodeScalars.contains(where: { $0.value == 0 }) {
                        error(FieldPath.child(field, name), "the value contains a NUL character")
                    }
                }
            }
            for (index, server) in instance.network.nameservers.enumerated() where IPAddress(server) == nil {
                error(
                    "spec.instance.network.nameservers[\(index)]", "'\(Self.printable(server))' is not an IP address",
                    hint: "nameservers are IPv4 or IPv6 addresses")
            }
            for (index, domain) in instance.network.domains.enumerated() where !Self.isDomain(domain) {
                error(
                    "spec.instance.network.domains[\(index)]", "'\(Self.printable(domain))' is not a DNS domain",
                    hint: "letters, digits, '-' and '.', or '~' for a routing domain")
            }
        }

        mutating func kubelet() {
            let kubelet = spec.kubelet
            for (index, flag) in kubelet.flags.enumerated() {
                let field = "spec.kubelet.flags[\(index)]"
                if flag.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                    error(
                        field, "'\(Self.printable(flag))' contains a line break or control character",
                        hint:
                            "give each flag as one list item on one line; it would inject lines into /etc/eks/kubelet/environment"
                    )
                } else if !flag.hasPrefix("-") {
                    warning(field, "'\(flag)' does not start with '-'", hint: "kubelet flags look like --name=value")
                }
            }
            if kubelet.maxPodsExpression.unicodeScalars.contains(where: { $0.value == 0 }) {
                error("spec.kubelet.maxPodsExpression", "contains a NUL character")
            }
            if let config = kubelet.config, case .object = config {
            } else if kubelet.config != nil {
                error("spec.kubelet.config", "must be a mapping of KubeletConfiguration fields")
            }
        }

        static func printable(_ text: String) -> String {
            var out = ""
            for scalar in text.unicodeScalars.prefix(200) {
                switch scalar {
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if scalar.properties.generalCategory == .control {
                        out += "\\u{\(String(scalar.value, radix: 16))}"
                    } else {
                        out.unicodeScalars.append(scalar)
                    }
                }
            }
            return text.unicodeScalars.count > 200 ? out + "…" : out
        }

        static func isClusterName(_ name: String) -> Bool {
            guard (1...100).contains(name.utf8.count), let first = name.unicodeScalars.first,
                first.properties.isASCIIHexDigit || ("A"..."Z").contains(first) || ("a"..."z").contains(first)
            else { return false }
            return name.unicodeScalars.allSatisfy { $0.isASCIIWordCharacter || $0 == "-" }
        }

        static func isUnitName(_ name: String) -> Bool {
            !name.isEmpty && name != "." && name != ".." && name.utf8.count <= 255
                && name.unicodeScalars.allSatisfy { $0.isASCIIWordCharacter || ":-.@\\".unicodeScalars.contains($0) }
                && !name.contains("..")
        }

        static func isVariableName(_ name: String) -> Bool {
            guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
            return name.unicodeScalars.allSatisfy(\.isASCIIWordCharacter)
        }

        static func isDomain(_ domain: String) -> Bool {
            let name = domain.hasPrefix("~") ? String(domain.dropFirst()) : domain
            if name.isEmpty { return domain == "~" }
            return name.utf8.count <= 253
                && name.split(separator: ".", omittingEmptySubsequences: false).enumerated().allSatisfy { index, label in
                    (label.isEmpty && index > 0 && name.hasSuffix("."))
                        || ((1...63).contains(label.utf8.count)
                            && label.unicodeScalars.allSatisfy { $0.isASCIIWordCharacter || $0 == "-" })
                }
        }

        /// nil when `path` is absolute, has no `..` component and no control characters.
        /// `storage.volumes`: every rule checked before a disk is touched (nodeadm checks
        /// duplicates only when it sets the volumes up, after earlier volumes were formatted).
        mutating func volumes(_ volumes: [NodeConfig.Volume]) {
            var devices: [String: Int] = [:]
            var targets: [String: String] = [:]
            for (index, volume) in volumes.enumerated() {
                let field = "spec.instance.storage.volumes[\(index)]"
                if volume.device.isEmpty {
                    error("\(field).device", "is missing", hint: "name the block device, e.g. /dev/xvdb or /dev/nvme1n1")
                } else if let problem = Self.pathProblem(volume.device) {
                    error("\(field).device", problem, hint: "name the block device by its /dev path, e.g. /dev/xvdb")
                } else if !volume.device.hasPrefix("/dev/") {
                    error(
                        "\(field).device", "'\(Self.printable(volume.device))' is not under /dev",
                        hint: "name the block device by its /dev path, e.g. /dev/xvdb")
                } else if let earlier = devices[volume.device] {
                    error(
                        "\(field).device",
                        "'\(Self.printable(volume.device))' is already volume \(earlier)'s device",
                        hint: "list every directory of one volume under its mountTargets")
                } else {
                    devices[volume.device] = index
                }
                if !NodeConfigValidation.volumeFilesystems.contains(volume.filesystem) {
                    error(
                        "\(field).fsType", "'\(Self.printable(volume.fsType))' is not a filesystem nodeboot formats",
                        hint: "use one of \(NodeConfigValidation.volumeFilesystems.joined(separator: ", ")) (default xfs)")
                }
                if volume.targets.isEmpty {
                    error(
                        "\(field).mountTarget", "is missing", hint: "name the directory to mount it at, e.g. /var/lib/containerd")
                }
                let named = volume.mountTarget.isEmpty ? [] : [("\(field).mountTarget", volume.mountTarget)]
                let listed = volume.mountTargets.enumerated().map { ("\(field).mountTargets[\($0.offset)]", $0.element) }
                for (path, target) in named + listed {
                    if let problem = Self.pathProblem(target) {
                        error(path, problem, hint: "use an absolute directory such as /var/lib/containerd")
                        continue
                    }
                    let clean = "/" + target.split(separator: "/").joined(separator: "/")
                    if let reason = NodeConfigValidation.reservedMountTarget(clean) {
                        error(
                            path, "'\(Self.printable(target))' \(reason)",
                            hint: "mount data volumes at a directory of their own, e.g. /var/lib/containerd")
                    } else if let earlier = targets[clean] {
                        error(path, "'\(Self.printable(target))' is also \(earlier)", hint: "give each directory to one volume")
                    } else {
                        targets[clean] = path
                    }
                }
            }
            let sorted = targets.keys.sorted()
            for (outer, inner) in zip(sorted, sorted.dropFirst()) where inner.hasPrefix(outer + "/") {
                error(
                    targets[inner] ?? "", "'\(inner)' is inside '\(outer)' (\(targets[outer] ?? ""))",
                    hint: "mount volumes at directories that do not contain each other")
            }
        }

        /// Volumes next to `localStorage`: the run phase sets the volumes up first, then
        /// setup-local-disks, which leaves a directory whose `.mount` unit is active alone (a volume
        /// at /var/lib/containerd keeps it; amazon-eks-ami #2759 relies on that). Two things it
        /// cannot leave alone are refused here, before a disk is touched: a volume inside the
        /// mountPath tree (the script mounts the instance store disks there and rewrites its units),
        /// and, with a RAID strategy, a volume inside a directory the array bind-mounts (the bind
        /// would hide the volume, and at the next boot systemd would mount the volume over the bind).
        mutating func localStorageConflicts(_ storage: NodeConfig.LocalStorage, _ volumes: [NodeConfig.Volume]) {
            guard NodeConfigValidation.strategies.contains(storage.strategy) else { return }
            let mountPath =
                storage.mountPath.isEmpty || Self.pathProblem(storage.mountPath) != nil
                ? NodeConfigValidation.localStorageMountPath
                : "/" + storage.mountPath.split(separator: "/").joined(separator: "/")
            let bound = storage.strategy == "Mount" ? [] : NodeConfigValidation.localStorageBinds(storage.disabledMounts)
            for (index, volume) in volumes.enumerated() {
                let field = "spec.instance.storage.volumes[\(index)]"
                let named = volume.mountTarget.isEmpty ? [] : [("\(field).mountTarget", volume.mountTarget)]
                let listed = volume.mountTargets.enumerated().map { ("\(field).mountTargets[\($0.offset)]", $0.element) }
                for (path, target) in named + listed where Self.pathProblem(target) == nil {
                    let clean = "/" + target.split(separator: "/").joined(separator: "/")
                    if clean == mountPath || clean.hasPrefix(mountPath + "/") {
                        error(
                            path,
                            "'\(Self.printable(target))' is inside \(mountPath), where localStorage (\(storage.strategy)) mounts the instance store disks",
                            hint:
                                "mount the volume elsewhere, or move the instance store disks with spec.instance.localStorage.mountPath"
                        )
                    } else if let bind = bound.first(where: { clean.hasPrefix($0.directory + "/") }) {
                        let directory = bind.directory
                        let fix = bind.disable.map { ", or keep the array off it (localStorage.disabledMounts: [\($0)])" } ?? ""
                        error(
                            path,
                            "'\(Self.printable(target))' is inside \(directory), which localStorage's \(storage.strategy) array bind-mounts: the bind would hide the volume",
                            hint: "mount the volume at \(directory) itself (setup-local-disks then leaves it to the volume)\(fix)"
                        )
                    }
                }
            }
        }

        static func pathProblem(_ path: String) -> String? {
            if !path.hasPrefix("/") { return "'\(printable(path))' is not an absolute path" }
            if path.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                return "'\(printable(path))' contains a control character"
            }
            if path.split(separator: "/").contains("..") { return "'\(printable(path))' contains a '..' component" }
            return nil
        }

        /// nil when `text` is an http(s) URL with a host and nothing a config file could be
        /// broken by (quotes, spaces, line breaks).
        static func endpointProblem(_ text: String) -> String? {
            let lower = text.lowercased()
            guard let schemeEnd = lower.firstRange(of: "://"), ["https", "http"].contains(lower[..<schemeEnd.lowerBound])
            else { return "is not an http(s) URL" }
            if text.unicodeScalars.contains(where: {
                $0.properties.generalCategory == .control || $0 == " " || $0 == "\"" || $0 == "'" || $0 == "\\"
                    || !$0.isASCII
            }) {
                return "contains spaces, quotes, control or non-ASCII characters"
            }
            let rest = text[schemeEnd.upperBound...]
            let authority = rest.prefix { $0 != "/" && $0 != "?" && $0 != "#" }
            if authority.contains("@") { return "must not contain user information" }
            var host = Substring(authority)
            if host.hasPrefix("[") {
                guard let close = host.firstIndex(of: "]"), IPAddress(host[host.index(after: host.startIndex)..<close]) != nil
                else { return "has a malformed IPv6 host" }
                let after = host[host.index(after: close)...]
                if !after.isEmpty {
                    guard after.hasPrefix(":"), let port = Int(after.dropFirst()), (1...65535).contains(port) else {
                        return "has an invalid port"
                    }
                }
                return nil
            }
            if let colon = host.lastIndex(of: ":") {
                guard let port = Int(host[host.index(after: colon)...]), (1...65535).contains(port) else {
                    return "has an invalid port"
                }
                host = host[..<colon]
            }
            if host.isEmpty { return "has no host" }
            if !isDomain(String(host)) { return "has an invalid host name" }
            return nil
        }
    }
}

extension Unicode.Scalar {
    fileprivate var isASCIIWordCharacter: Bool {
        ("a"..."z").contains(self) || ("A"..."Z").contains(self) || ("0"..."9").contains(self) || self == "_"
    }
}

extension NodeConfig.Cluster {
    /// The decoded CA bytes (PEM), or nil when unset or not base64.
    public var certificateAuthorityBytes: [UInt8]? {
        certificateAuthority.isEmpty ? nil : Base64.decode(Array(certificateAuthority.utf8), ignoringWhitespace: true)
    }
}

extension ConfigDiagnostic: Error {}
