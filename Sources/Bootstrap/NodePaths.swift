/// Node paths under `--root` (or `/`): every path the agent reads or writes by default goes
/// through here, so a test, the demo or an image build can point the agent at a directory.
public struct NodePaths: Sendable, Equatable {
    /// `""` for the real node; otherwise an absolute directory without a trailing slash.
    public var root: String

    public init(root: String?) {
        var root = root ?? ""
        while root.count > 1 && root.hasSuffix("/") { root.removeLast() }
        self.root = root == "/" ? "" : root
    }

    /// `path` (absolute, as on the node) under the root.
    public func node(_ path: String) -> String { root + path }

    public static let kubeletVersionFile = "/etc/eks/kubelet-version.txt"
    public static let containerdVersionFile = "/etc/eks/containerd-version.txt"
    public static let stateDirectory = "/var/lib/nodeboot"
    public static let runDirectory = "/run/nodeboot"
    public static let statusFile = "/run/nodeboot/status.json"
    /// nodeadm's run marker (the udev network manager reads it).
    public static let runMarker = "/run/nodeadm/init"
    public static let setupLocalDisks = "/usr/bin/setup-local-disks"
    public static let cpuDirectory = "/sys/devices/system/cpu"
    public static let nodeDirectory = "/sys/devices/system/node"
    public static let memoryDirectory = "/sys/devices/system/memory"
    public static let pciDevices = "/sys/bus/pci/devices"
    /// The token helper under aws-iam-authenticator's name (AL2 kubeconfigs call it), a link to nodeboot.
    public static let authenticatorLink = "/usr/local/bin/aws-iam-authenticator"
}
