import NodeRender

#if canImport(Glibc)
    import Glibc
#endif

/// The node as this instance should register it: what the kubelet would put into its Node
/// object at registration (`kubelet_node_status.go`'s initial node), from the discovered facts.
package struct DesiredNode: Sendable, Equatable {
    /// `aws:///<az>/<instance-id>`.
    var providerID: String
    /// The `kubernetes.io/hostname` label and the `Hostname` address (the kubelet's
    /// `--hostname-override`, i.e. the node name).
    var hostname: String
    var region: String
    var zone: String
    var instanceType: String
    var os = "linux"
    /// `amd64` or `arm64` (``DesiredNode/hostArchitecture``).
    var arch: String
    var privateIPv4: String?
    var privateIPv6: String?
    var privateDNSName: String?
    var maxPods: Int
    /// Online CPUs; nil or 0 leaves `cpu` out of capacity.
    var cpus: Int?
    /// The kubelet's flags as `NODEADM_KUBELET_ARGS` has them (`--node-labels`,
    /// `--register-with-taints`, `--node-ip` and `--cloud-provider` are read).
    var kubeletFlags: [String]

    package init(
        providerID: String, hostname: String, region: String, zone: String, instanceType: String,
        arch: String = DesiredNode.hostArchitecture, privateIPv4: String? = nil, privateIPv6: String? = nil,
        privateDNSName: String? = nil, maxPods: Int, cpus: Int? = nil, kubeletFlags: [String] = []
    ) {
        self.providerID = providerID
        self.hostname = hostname
        self.region = region
        self.zone = zone
        self.instanceType = instanceType
        self.arch = arch
        self.privateIPv4 = privateIPv4
        self.privateIPv6 = privateIPv6
        self.privateDNSName = privateDNSName
        self.maxPods = maxPods
        self.cpus = cpus
        self.kubeletFlags = kubeletFlags
    }

    /// From the render context `init` used: the same provider ID, node name, node IP, max pods
    /// and kubelet flags as the files it wrote.
    init(context: RenderContext, arch: String = DesiredNode.hostArchitecture) {
        let instance = context.instance
        self.init(
            providerID: "aws:///\(instance.availabilityZone)/\(instance.id)", hostname: context.nodeName,
            region: instance.region, zone: instance.availabilityZone, instanceType: instance.type, arch: arch,
            privateIPv4: context.isIPv6 ? nil : instance.nodeIP, privateIPv6: context.isIPv6 ? instance.nodeIP : nil,
            privateDNSName: instance.privateDnsName.isEmpty ? nil : instance.privateDnsName, maxPods: context.maxPods,
            cpus: context.onlineCPUs, kubeletFlags: KubeletConfig.flags(context))
    }

    /// The host's architecture as Kubernetes names it (`uname -m`: x86_64 → amd64, aarch64 → arm64).
    package static var hostArchitecture: String {
        var names = utsname()
        guard uname(&names) == 0 else { return "amd64" }
        let machine = withUnsafeBytes(of: &names.machine) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        return architecture(machine: machine)
    }

    static func architecture(machine: String) -> String {
        switch machine {
        case "x86_64", "amd64": "amd64"
        case "aarch64", "arm64": "arm64"
        default: machine
        }
    }
}
