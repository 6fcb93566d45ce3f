import FoundationEssentials
import NodeConfig
import TOML

/// `/etc/containerd/config.toml`: nodeadm's template for the containerd major version (schema 2
/// for containerd 1.x, 3 for 2.x), with the user's TOML deep-merged over it and written in the
/// canonical form (go-toml v2's) nodeadm's golden files show.
public enum ContainerdConfig {
    public static let path = "/etc/containerd/config.toml"
    public static let sandboxImage = "localhost/kubernetes/pause:latest"
    public static let nvidiaRuntimePath = "/usr/bin/nvidia-container-runtime"

    /// nodeadm's test: a user TOML naming a containerd 2 CRI plugin is "v3-style".
    public static func isV3Style(_ toml: String) -> Bool {
        toml.contains("io.containerd.cri.v1.images") || toml.contains("io.containerd.cri.v1.runtime")
    }

    public static func render(_ context: RenderContext) throws(RenderError) -> String {
        let user = context.config.spec.containerd.config
        let containerd2 = context.containerdVersion.major >= 2
        let v3 = containerd2 && (user.isEmpty || isV3Style(user))
        if !containerd2 && isV3Style(user) {
            throw RenderError(
                field: "spec.containerd.config",
                message:
                    "uses containerd 2 plugin names (io.containerd.cri.v1.*) but this node runs containerd \(context.containerdVersion)",
                hint: "write the fragment for config version 2 (plugins.\"io.containerd.grpc.v1.cri\")")
        }
        if containerd2 && !user.isEmpty && !v3 {
            throw RenderError(
                field: "spec.containerd.config",
                message:
                    "is a version 2 fragment (io.containerd.grpc.v1.cri) but this node runs containerd \(context.containerdVersion)",
                hint:
                    "write it for config version 3 (plugins.'io.containerd.cri.v1.runtime' / 'io.containerd.cri.v1.images'); nodeadm would run `containerd config migrate`, which nodeboot does not"
            )
        }
        let (name, binary) =
            context.nvidiaRuntime ? ("nvidia", nvidiaRuntimePath) : ("runc", "/usr/sbin/runc")
        let cdi = context.kubeletVersion >= ComponentVersion(1, 32, 0)
        let soci = SOCISnapshotter.decision(context).enabled
        let template =
            v3
            ? templateV3(runtime: name, binary: binary, cdi: cdi, soci: soci)
            : templateV2(runtime: name, binary: binary, cdi: cdi, soci: soci)
        do {
            let base = try TOML.parse(template)
            guard !user.isEmpty else { return TOML.canonical(base) }
            return TOML.canonical(base.merged(with: try TOML.parse(user)))
        } catch {
            throw RenderError(
                field: "spec.containerd.config", message: "line \(error.line): \(error.message)",
                hint: "the value is a containerd config.toml fragment")
        }
    }

    /// nodeadm's schema 2 template (keys in the canonical order; `render` sorts them anyway).
    static func templateV2(runtime: String, binary: String, cdi: Bool, soci: Bool = false) -> String {
        let cri = "plugins.'io.containerd.grpc.v1.cri'"
        let snapshotter = soci ? "\n" + SOCISnapshotter.containerdKeys() : ""
        return """
            root = '/var/lib/containerd'
            state = '/run/containerd'
            version = 2

            [grpc]
            address = '/run/containerd/containerd.sock'

            [\(cri)]
            enable_cdi = \(cdi)
            sandbox_image = '\(sandboxImage)'

            [\(cri).cni]
            bin_dir = '/opt/cni/bin'
            conf_dir = '/etc/cni/net.d'

            [\(cri).containerd]
            default_runtime_name = '\(runtime)'
            discard_unpacked_layers = true\(snapshotter)

            [\(cri).containerd.runtimes.\(runtime)]
            base_runtime_spec = '/etc/containerd/base-runtime-spec.json'
            runtime_type = 'io.containerd.runc.v2'

            [\(cri).containerd.runtimes.\(runtime).options]
            BinaryName = '\(binary)'
            SystemdCgroup = true

            [\(cri).registry]
            config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'

            """ + (soci ? SOCISnapshotter.proxyPlugin : "")
    }

    /// nodeadm's schema 3 template, for containerd 2.
    static func templateV3(runtime: String, binary: String, cdi: Bool, soci: Bool = false) -> String {
        let images = "plugins.'io.containerd.cri.v1.images'"
        let cri = "plugins.'io.containerd.cri.v1.runtime'"
        let snapshotter = soci ? "\n" + SOCISnapshotter.containerdKeys() : ""
        return """
            root = '/var/lib/containerd'
            state = '/run/containerd'
            version = 3

            [grpc]
            address = '/run/containerd/containerd.sock'

            [\(images)]
            discard_unpacked_layers = true\(snapshotter)

            [\(images).pinned_images]
            sandbox = '\(sandboxImage)'

            [\(images).registry]
            config_path = '/etc/containerd/certs.d:/etc/docker/certs.d'

            [\(cri)]
            enable_cdi = \(cdi)

            [\(cri).cni]
            bin_dir = '/opt/cni/bin'
            conf_dir = '/etc/cni/net.d'

            [\(cri).containerd]
            default_runtime_name = '\(runtime)'

            [\(cri).containerd.runtimes.\(runtime)]
            base_runtime_spec = '/etc/containerd/base-runtime-spec.json'
            runtime_type = 'io.containerd.runc.v2'

            [\(cri).containerd.runtimes.\(runtime).options]
            BinaryName = '\(binary)'
            SystemdCgroup = true

            """ + (soci ? SOCISnapshotter.proxyPlugin : "")
    }
}

/// `/etc/containerd/base-runtime-spec.json`: nodeadm's default verbatim, or the user's
/// `baseRuntimeSpec` deep-merged over it (lists replaced) as sorted 4-space JSON.
public enum BaseRuntimeSpec {
    public static let path = "/etc/containerd/base-runtime-spec.json"

    /// The default spec's bytes, as nodeadm embeds them (2-space JSON, trailing newline).
    public static var defaultText: String { embeddedDefault + "\n" }

    public static func render(_ context: RenderContext) throws(RenderError) -> String {
        guard let user = context.config.spec.containerd.baseRuntimeSpec else { return defaultText }
        guard let base = ConfigValue(json: defaultText) else {
            throw RenderError(field: "spec.containerd.baseRuntimeSpec", message: "the embedded default spec is unreadable")
        }
        return JSONText(base.merged(with: user)).rendered(indent: 4)
    }
}

extension ConfigValue {
    /// Parses JSON text (nil when it is not JSON).
    init?(json: String) {
        guard let value = try? JSONDecoder().decode(ConfigValue.self, from: Data(json.utf8)) else { return nil }
        self = value
    }
}
