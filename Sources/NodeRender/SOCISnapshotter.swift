import NodeConfig

/// nodeadm's FastImagePull: containerd pulls through the SOCI snapshotter (lazy loading) when the
/// `FastImagePull` feature gate is on and the instance is big enough to profit (≥ 4 online CPUs
/// and ≥ 7 GiB online memory, nodeadm's "most xlarge types" threshold). Then containerd's config
/// names the `soci` snapshotter and its proxy plugin, the snapshotter gets its config file,
/// containerd.service requires soci-snapshotter.service, and the kubelet pulls images through the
/// snapshotter's socket. The image must ship `soci-snapshotter-grpc` with a `soci-snapshotter.service`
/// of Type=notify and `/usr/bin/unpigz` (Debian's pigz); docs/compat.md says what nodeboot's own
/// image does.
public enum SOCISnapshotter {
    public static let gate = "FastImagePull"
    public static let configPath = "/etc/soci-snapshotter-grpc/config.toml"
    public static let dropInPath = "/etc/systemd/system/containerd.service.d/10-soci-snapshotter.conf"
    public static let socket = "/run/soci-snapshotter-grpc/soci-snapshotter-grpc.sock"
    public static let root = "/var/lib/soci-snapshotter-grpc"
    /// The pause image the image build saved; imported into the snapshotter's store after
    /// containerd started, since the build cached it with the overlayfs snapshotter.
    public static let pauseArchive = "/etc/eks/pause.tar"
    public static let minimumCPUs = 4
    public static let minimumMemoryBytes: UInt64 = 7 << 30

    /// Whether this node uses it, and why not when the gate asked for it (nil: it does, or the
    /// gate is off).
    public static func decision(_ context: RenderContext) -> (enabled: Bool, reason: String?) {
        guard context.config.spec.featureGates[gate] == true else { return (false, nil) }
        let gibibytes = Double(context.onlineMemoryBytes) / Double(1 << 30)
        if context.onlineCPUs < minimumCPUs || context.onlineMemoryBytes < minimumMemoryBytes {
            let memory = (gibibytes * 100).rounded() / 100
            return (
                false,
                "FastImagePull needs ≥ \(minimumCPUs) online CPUs and ≥ 7 GiB online memory; this instance has \(context.onlineCPUs) and \(memory) GiB: images are pulled without SOCI"
            )
        }
        return (true, nil)
    }

    /// The `ctr` arguments that import the pause image into the snapshotter's store.
    public static let importArguments = [
        "--namespace", "k8s.io", "images", "import", "--snapshotter", "soci", "--discard-unpacked-layers=false",
        "--local", pauseArchive,
    ]

    /// The snapshotter's settings, byte for byte nodeadm's (parallel pull and unpack, the CRI
    /// keychain through containerd's socket).
    public static let config = """
        debug = false

        [content_store]
        type = 'containerd'

        [cri_keychain]
        enable_keychain = true
        image_service_path = '/run/containerd/containerd.sock'

        [pull_modes.parallel_pull_unpack]
        enable = true
        concurrent_download_chunk_size = "16mb"
        discard_unpacked_layers = true
        max_concurrent_downloads = -1
        max_concurrent_downloads_per_image = 20
        max_concurrent_unpacks = -1
        max_concurrent_unpacks_per_image = 12

        [pull_modes.parallel_pull_unpack.decompress_streams."gzip"]
        path = '/usr/bin/unpigz'
        args = ['-d', '-c']

        """

    /// containerd.service waits for the snapshotter (Type=notify: ready once its gRPC server is).
    public static let dropIn = """
        [Unit]
        Requires=soci-snapshotter.service
        After=soci-snapshotter.service

        """

    /// The lines containerd's config gains (either schema): the snapshotter in the CRI images
    /// table, and the proxy plugin.
    static func containerdKeys() -> String {
        """
        disable_snapshot_annotations = false
        snapshotter = 'soci'
        """
    }

    static let proxyPlugin = """

        [proxy_plugins.soci]
        address = '\(socket)'
        type = 'snapshot'

        [proxy_plugins.soci.exports]
        root = '\(root)'

        """

    /// The files it adds to the node (empty when it is not used).
    public static func files(_ context: RenderContext) -> [NodeFile] {
        guard decision(context).enabled else { return [] }
        return [
            NodeFile(configPath, config, units: [.containerd]),
            NodeFile(dropInPath, dropIn, units: [.containerd], reloadsSystemd: true),
        ]
    }
}
