public import IPAMProtocol

/// The CNI operations (vpc-cni.md §13; STATUS and GC are CNI 1.1).
public enum CNICommand: String, Sendable, CaseIterable {
    case add = "ADD"
    case del = "DEL"
    case check = "CHECK"
    case version = "VERSION"
    case status = "STATUS"
    case gc = "GC"
}

/// The spec versions this plugin reads configurations of and writes results in. 0.1.0 and
/// 0.2.0 (the `ip4`/`ip6` result) are left out: no runtime of the Kubernetes versions EKS
/// supports asks for them.
public enum CNIVersion {
    public static let supported = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
    public static let latest = "1.1.0"

    /// `1.0.0` → (1, 0, 0); nil for text that is not three numbers.
    static func parts(_ version: String) -> (Int, Int, Int)? {
        let parts = version.split(separator: ".", omittingEmptySubsequences: false).map { Int($0) }
        guard parts.count == 3, let major = parts[0], let minor = parts[1], let patch = parts[2] else { return nil }
        return (major, minor, patch)
    }

    /// Whether `version` is at least `minimum` (both supported versions).
    static func atLeast(_ version: String, _ minimum: String) -> Bool {
        guard let have = parts(version), let need = parts(minimum) else { return false }
        return have >= need
    }
}

/// One run of the plugin as the runtime describes it in the environment: `CNI_COMMAND`,
/// `CNI_CONTAINERID`, `CNI_NETNS`, `CNI_IFNAME`, `CNI_ARGS`, `CNI_PATH`.
public struct Invocation: Sendable, Equatable {
    public var command: CNICommand
    public var containerID: String
    /// Empty when not given (DEL after the namespace is gone; VERSION, STATUS, GC).
    public var netns: String
    public var ifname: String
    /// `CNI_ARGS` as pairs (`K8S_POD_NAMESPACE=…;K8S_POD_NAME=…`), in order.
    public var arguments: [(key: String, value: String)]

    public static func == (lhs: Invocation, rhs: Invocation) -> Bool {
        lhs.command == rhs.command && lhs.containerID == rhs.containerID && lhs.netns == rhs.netns
            && lhs.ifname == rhs.ifname && lhs.arguments.map(\.key) == rhs.arguments.map(\.key)
            && lhs.arguments.map(\.value) == rhs.arguments.map(\.value)
    }

    public func argument(_ key: String) -> String? { arguments.last { $0.key == key }?.value }

    /// The pod from the kubelet's `K8S_POD_*` arguments. Without them (`ctr run --cni`), the
    /// container stands for the pod: namespace empty, name the container id.
    public var pod: PodReference {
        guard let name = argument("K8S_POD_NAME"), !name.isEmpty else {
            return PodReference(namespace: "", name: containerID)
        }
        return PodReference(
            namespace: argument("K8S_POD_NAMESPACE") ?? "", name: name, uid: argument("K8S_POD_UID") ?? "")
    }

    /// Reads the environment; every missing or malformed variable the command needs is named in
    /// one error (code 4).
    public static func parse(_ environment: [String: String]) throws(CNIError) -> Invocation {
        guard let commandText = environment["CNI_COMMAND"], !commandText.isEmpty else {
            throw CNIError(
                .invalidEnvironment, "CNI_COMMAND is not set",
                details: "nodeboot-cni is a CNI plugin: the container runtime runs it with CNI_COMMAND set to one of "
                    + CNICommand.allCases.map(\.rawValue).joined(separator: ", "))
        }
        guard let command = CNICommand(rawValue: commandText) else {
            throw CNIError(
                .invalidEnvironment, "CNI_COMMAND '\(commandText)' is not a CNI command",
                details: "expected one of " + CNICommand.allCases.map(\.rawValue).joined(separator: ", "))
        }
        let containerID = environment["CNI_CONTAINERID"] ?? ""
        let netns = environment["CNI_NETNS"] ?? ""
        let ifname = environment["CNI_IFNAME"] ?? ""
        var problems: [String] = []
        let needed: [String] =
            switch command {
            case .add, .check: ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"]
            case .del: ["CNI_CONTAINERID", "CNI_IFNAME"]
            case .version, .status, .gc: []
            }
        for name in needed where (environment[name] ?? "").isEmpty {
            problems.append("\(name) is not set")
        }
        if !containerID.isEmpty, let problem = containerIDProblem(containerID) { problems.append(problem) }
        if !ifname.isEmpty, let problem = interfaceNameProblem(ifname) { problems.append("CNI_IFNAME \(problem)") }
        var arguments: [(key: String, value: String)] = []
        for part in (environment["CNI_ARGS"] ?? "").split(separator: ";", omittingEmptySubsequences: true) {
            guard let equals = part.firstIndex(of: "="), equals != part.startIndex else {
                problems.append("CNI_ARGS part '\(part)' is not KEY=VALUE")
                continue
            }
            arguments.append((String(part[..<equals]), String(part[part.index(after: equals)...])))
        }
        guard problems.isEmpty else {
            throw CNIError(
                .invalidEnvironment, "\(command.rawValue): " + problems.joined(separator: "; "),
                details: "the runtime sets CNI_CONTAINERID, CNI_NETNS (not needed for DEL) and CNI_IFNAME for "
                    + "ADD, CHECK and DEL")
        }
        return Invocation(command: command, containerID: containerID, netns: netns, ifname: ifname, arguments: arguments)
    }

    /// The spec's container id: an alphanumeric first character, then `[A-Za-z0-9_.-]`.
    static func containerIDProblem(_ id: String) -> String? {
        func alphanumeric(_ byte: UInt8) -> Bool {
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
        }
        let bytes = Array(id.utf8)
        guard let first = bytes.first, alphanumeric(first),
            bytes.allSatisfy({ alphanumeric($0) || $0 == 0x5F || $0 == 0x2E || $0 == 0x2D })
        else {
            return "CNI_CONTAINERID '\(id)' is not a container id (a letter or digit, then letters, digits, '_', '.', '-')"
        }
        return nil
    }

    /// The kernel's rule for interface names; nil when `name` follows it.
    static func interfaceNameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        guard bytes.count <= 15 else { return "'\(name)' is longer than 15 bytes" }
        guard name != ".", name != "..", !bytes.contains(where: { $0 == 0x2F || $0 == 0x3A || $0 <= 0x20 || $0 == 0x7F })
        else { return "'\(name)' is not an interface name (no '/', ':' or white space; not '.' or '..')" }
        return nil
    }
}
