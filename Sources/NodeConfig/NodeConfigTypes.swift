/// `node.eks.aws/v1alpha1` `NodeConfig`: every field of nodeadm's API. Absent strings are empty,
/// as in nodeadm, so merge can tell "not set".
public struct NodeConfig: Sendable, Equatable, Codable {
    public static let apiVersion = "node.eks.aws/v1alpha1"
    public static let kind = "NodeConfig"

    public var apiVersion: String = NodeConfig.apiVersion
    public var kind: String = NodeConfig.kind
    public var spec = Spec()

    public init() {}

    public struct Spec: Sendable, Equatable, Codable {
        public var cluster = Cluster()
        public var containerd = Containerd()
        public var instance = Instance()
        public var kubelet = Kubelet()
        public var featureGates: [String: Bool] = [:]
        public init() {}
    }

    public struct Cluster: Sendable, Equatable, Codable {
        public var name = ""
        public var apiServerEndpoint = ""
        /// The base64 text as given (the bytes are PEM once decoded).
        public var certificateAuthority = ""
        public var cidr = ""
        public var enableOutpost: Bool?
        public var id = ""
        public init() {}
    }

    public struct Containerd: Sendable, Equatable, Codable {
        /// Inline TOML, deep-merged over the generated config.
        public var config = ""
        public var baseRuntimeSpec: ConfigValue?
        public init() {}
    }

    public struct Instance: Sendable, Equatable, Codable {
        public var localStorage = LocalStorage()
        /// EBS data volumes (nodeadm's `storage.volumes`, after amazon-eks-ami #2759).
        public var storage = Storage()
        public var environment: [String: [String: String]] = [:]
        public var network = Network()
        public init() {}
    }

    public struct LocalStorage: Sendable, Equatable, Codable {
        /// `RAID0`, `RAID10` or `Mount`; empty when not set.
        public var strategy = ""
        public var mountPath = ""
        /// `Containerd`, `PodLogs`, `SOCI`.
        public var disabledMounts: [String] = []
        public init() {}
    }

    public struct Storage: Sendable, Equatable, Codable {
        public var volumes: [Volume] = []
        public init() {}
    }

    /// One EBS volume: formatted when it has no filesystem, mounted by UUID at its target.
    /// `mountTargets` (several directories from one volume, bind mounts) is nodeboot's addition
    /// (amazon-eks-ami #2827); nodeadm has only `mountTarget`.
    public struct Volume: Sendable, Equatable, Codable {
        public var device = ""
        public var mountTarget = ""
        public var mountTargets: [String] = []
        /// `xfs` when not set.
        public var fsType = ""
        public init() {}
        public init(device: String, mountTarget: String = "", mountTargets: [String] = [], fsType: String = "") {
            self.device = device
            self.mountTarget = mountTarget
            self.mountTargets = mountTargets
            self.fsType = fsType
        }

        /// Every directory it backs, in the order given.
        public var targets: [String] { (mountTarget.isEmpty ? [] : [mountTarget]) + mountTargets }
        public var filesystem: String { fsType.isEmpty ? "xfs" : fsType }
    }

    public struct Network: Sendable, Equatable, Codable {
        public var nameservers: [String] = []
        public var domains: [String] = []
        public init() {}
    }

    public struct Kubelet: Sendable, Equatable, Codable {
        /// A KubeletConfiguration fragment.
        public var config: ConfigValue?
        public var flags: [String] = []
        public var maxPodsExpression = ""
        public init() {}
    }
}
