public import NodeConfig

/// What the instance is, as discovery found it (nodeadm's `status.instance`).
public struct InstanceDetails: Sendable, Equatable {
    public var id: String
    public var region: String
    public var type: String
    public var availabilityZone: String
    public var mac: String
    /// Empty with the `InstanceIdNodeName` feature gate (DescribeInstances is not called).
    public var privateDnsName: String
    /// The kubelet's `--node-ip`: `local-ipv4`, or the primary ENI's first IPv6 for an IPv6 cluster.
    public var nodeIP: String

    public init(
        id: String, region: String, type: String, availabilityZone: String, mac: String, privateDnsName: String,
        nodeIP: String
    ) {
        self.id = id
        self.region = region
        self.type = type
        self.availabilityZone = availabilityZone
        self.mac = mac
        self.privateDnsName = privateDnsName
        self.nodeIP = nodeIP
    }
}

/// `major.minor.patch` of a Kubernetes or containerd version string (`v1.35.0-eks-5e0fdde`).
public struct ComponentVersion: Sendable, Equatable, Comparable, Codable, CustomStringConvertible {
    public var major: Int
    public var minor: Int
    public var patch: Int

    public init(_ major: Int, _ minor: Int, _ patch: Int) {
        self.major = major
        self.minor = minor
        self.patch = patch
    }

    /// The first `\d+.\d+.\d+` in `text` (nodeadm's regex, optionally after a `v`).
    public init?(parsing text: String) {
        let scalars = Array(text.unicodeScalars)
        var index = 0
        while index < scalars.count {
            var numbers: [Int] = []
            var cursor = index
            while numbers.count < 3 {
                var digits = ""
                while cursor < scalars.count, ("0"..."9").contains(scalars[cursor]) {
                    digits.unicodeScalars.append(scalars[cursor])
                    cursor += 1
                }
                guard !digits.isEmpty, digits.count < 9, let value = Int(digits) else { break }
                numbers.append(value)
                if numbers.count < 3 {
                    guard cursor < scalars.count, scalars[cursor] == "." else { break }
                    cursor += 1
                }
            }
            if numbers.count == 3 {
                self.init(numbers[0], numbers[1], numbers[2])
                return
            }
            index += 1
        }
        return nil
    }

    public var description: String { "\(major).\(minor).\(patch)" }

    public static func < (lhs: Self, rhs: Self) -> Bool {
        (lhs.major, lhs.minor, lhs.patch) < (rhs.major, rhs.minor, rhs.patch)
    }
}

/// Which exec credential plugin the kubeconfig calls.
public enum TokenHelper: String, Sendable, Equatable, CaseIterable, Codable {
    /// `nodeboot token` (the default).
    case nodeboot
    /// nodeadm's `aws eks get-token`.
    case aws
}

/// The daemons whose configuration `init` writes (nodeadm's `--daemon` names).
public enum Daemon: String, Sendable, CaseIterable, Codable {
    case containerd
    /// nodeboot's IPAM daemon (docs/ipamd.md). Opt-in (`--daemon nodeboot-ipamd`) until it
    /// grows the pool through EC2: started by default, it would serve no address on a fresh
    /// node and contend with the aws-node daemonset.
    case ipamd = "nodeboot-ipamd"
    case kubelet

    /// What `init` handles without `--daemon`: nodeadm's two.
    public static let defaults: Set<Daemon> = [.containerd, .kubelet]

    /// The systemd unit that runs it.
    public var unit: ServiceUnit {
        switch self {
        case .containerd: .containerd
        case .ipamd: .ipamd
        case .kubelet: .kubelet
        }
    }
}

/// A systemd unit whose configuration `init` writes. The declaration order is the order the run
/// phase brings them up in; a rendered file names the units it configures (`NodeFile.units`).
public enum ServiceUnit: String, Sendable, CaseIterable, Codable {
    /// DNS: only when the NodeConfig sets nameservers or domains (its drop-in is rendered).
    case resolved = "systemd-resolved.service"
    case containerd = "containerd.service"
    /// Between containerd and the kubelet: the kubelet's first pod needs an address.
    case ipamd = "nodeboot-ipamd.service"
    case kubelet = "kubelet.service"

    /// The daemon it runs (`--daemon` selects it); nil for a unit that is handled only when a
    /// rendered file configures it.
    public var daemon: Daemon? {
        switch self {
        case .resolved: nil
        case .containerd: .containerd
        case .ipamd: .ipamd
        case .kubelet: .kubelet
        }
    }

    /// A node may lack it: its drop-in then takes effect when it is installed.
    public var isOptional: Bool { self == .resolved }

    /// What of nodeboot's `units/` the node image installs for it (for the hint when systemd
    /// does not know the unit).
    public var shippedAs: String {
        switch self {
        case .resolved: "systemd-resolved"
        case .containerd: "nodeboot's units/containerd drop-ins"
        case .ipamd: "nodeboot's units/nodeboot-ipamd.service"
        case .kubelet: "nodeboot's units/kubelet.service"
        }
    }
}

/// Everything the renderers need; every field is decided before rendering, so rendering is
/// a pure function.
public struct RenderContext: Sendable {
    /// The merged config, with cluster details filled in (from the config or DescribeCluster).
    public var config: NodeConfig
    public var instance: InstanceDetails
    public var kubeletVersion: ComponentVersion
    public var containerdVersion: ComponentVersion
    public var maxPods: Int
    public var onlineCPUs: Int
    /// Online memory from sysfs (block size × online blocks); read only for FastImagePull, 0
    /// when unknown or not read.
    public var onlineMemoryBytes: UInt64 = 0
    /// `/usr/bin/nvidia-container-runtime` exists.
    public var nvidiaRuntime: Bool
    /// An NVIDIA PCI device is present (`/sys/bus/pci/devices/*/vendor` is 0x10de).
    public var nvidiaDevice: Bool
    /// Node path of the ECR credential provider binary.
    public var credentialProviderBinary = "/etc/eks/image-credential-provider/ecr-credential-provider"
    public var tokenHelper: TokenHelper = .nodeboot
    /// Node path of nodeboot itself, for the kubeconfig's exec plugin.
    public var nodebootPath = "/usr/bin/nodeboot"
    /// Addresses of the API server host, for an outpost's `/etc/hosts` lines.
    public var apiServerAddresses: [String] = []
    /// The node's current `/etc/hosts` (outposts append to it).
    public var currentHosts: [UInt8]?
    public var daemons: Set<Daemon> = Set(Daemon.allCases)
    /// The instance type's ENI limits as discovery found them (embedded table, else
    /// DescribeInstanceTypes); nil when neither knew the type (max pods is then 110).
    public var networkLimits: ENILimits?

    public init(
        config: NodeConfig, instance: InstanceDetails, kubeletVersion: ComponentVersion,
        containerdVersion: ComponentVersion, maxPods: Int, onlineCPUs: Int, nvidiaRuntime: Bool = false,
        nvidiaDevice: Bool = false
    ) {
        self.config = config
        self.instance = instance
        self.kubeletVersion = kubeletVersion
        self.containerdVersion = containerdVersion
        self.maxPods = maxPods
        self.onlineCPUs = onlineCPUs
        self.nvidiaRuntime = nvidiaRuntime
        self.nvidiaDevice = nvidiaDevice
    }

    public var isOutpost: Bool { config.spec.cluster.enableOutpost == true }
    /// The name in the kubeconfig and token: the cluster ID on an outpost.
    public var clusterNameForToken: String { isOutpost ? config.spec.cluster.id : config.spec.cluster.name }
    public var isIPv6: Bool { CIDR(config.spec.cluster.cidr).map { !$0.address.isIPv4 } ?? false }
    public var nodeName: String {
        config.spec.featureGates["InstanceIdNodeName"] == true || instance.privateDnsName.isEmpty
            ? instance.id : instance.privateDnsName
    }
}

/// An instance type's ENI limits on its default network card, and where they came from.
public struct ENILimits: Sendable, Equatable {
    public var maxENIs: Int
    public var ipv4PerENI: Int
    /// `table` (the embedded instance table) or `DescribeInstanceTypes`.
    public var source: String

    public init(maxENIs: Int, ipv4PerENI: Int, source: String) {
        self.maxENIs = maxENIs
        self.ipv4PerENI = ipv4PerENI
        self.source = source
    }
}

/// One file the node should have, and what reads it: the run phase restarts `units` when it
/// changed, and re-reads systemd's configuration first when it `reloadsSystemd`.
public struct NodeFile: Sendable, Equatable {
    /// Absolute node path (`/etc/kubernetes/kubelet/config.json`).
    public var path: String
    public var bytes: [UInt8]
    public var mode: UInt16
    /// The units that read this file: a change restarts them (none: nothing restarts).
    public var units: [ServiceUnit]
    /// A unit file, drop-in or the manager's configuration: a change needs a daemon-reload.
    public var reloadsSystemd: Bool

    public init(
        _ path: String, _ text: String, mode: UInt16 = 0o644, units: [ServiceUnit] = [], reloadsSystemd: Bool = false
    ) {
        self.init(path, bytes: Array(text.utf8), mode: mode, units: units, reloadsSystemd: reloadsSystemd)
    }

    public init(
        _ path: String, bytes: [UInt8], mode: UInt16 = 0o644, units: [ServiceUnit] = [], reloadsSystemd: Bool = false
    ) {
        self.path = path
        self.bytes = bytes
        self.mode = mode
        self.units = units
        self.reloadsSystemd = reloadsSystemd
    }
}

/// A problem found while rendering (the configuration cannot be expressed for this node).
public struct RenderError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String
    public var message: String
    public var hint: String?

    public init(field: String, message: String, hint: String? = nil) {
        self.field = field
        self.message = message
        self.hint = hint
    }

    public var description: String { "\(field): \(message)" + (hint.map { " — \($0)" } ?? "") }
}
