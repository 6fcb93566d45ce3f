import Foundation

/// What the init tests start from: a node root as the image bakes it, and a minimal NodeConfig.
public enum NodeFixture {
    /// A node root as the image bakes it (versions, sysfs, ECR credential provider).
    public static func root() throws -> String {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("node-\(UUID().uuidString)").path
        let files = [
            "/etc/eks/kubelet-version.txt": "Kubernetes v1.31.0\n",
            "/etc/eks/containerd-version.txt": "containerd github.com/containerd/containerd v1.7.27 abc\n",
            "/etc/eks/image-credential-provider/ecr-credential-provider": "",
            "/sys/devices/system/cpu/online": "0-1\n",
        ]
        for (path, text) in files {
            let url = URL(fileURLWithPath: root + path)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try Data(text.utf8).write(to: url)
        }
        for cpu in ["cpu0", "cpu1"] {
            try FileManager.default.createDirectory(
                atPath: root + "/sys/devices/system/cpu/" + cpu, withIntermediateDirectories: true)
        }
        return root
    }

    public static let config = """
        apiVersion: node.eks.aws/v1alpha1
        kind: NodeConfig
        spec:
          cluster:
            name: my-cluster
            apiServerEndpoint: https://example.com
            certificateAuthority: Y2VydGlmaWNhdGVBdXRob3JpdHk=
            cidr: 10.100.0.0/16
        """

    public static func configFile() throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString).yaml").path
        try Data(config.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }
}
