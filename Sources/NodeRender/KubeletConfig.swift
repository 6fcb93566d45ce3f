import NodeConfig

/// The kubelet's files: `config.json` (nodeadm's defaults), the user drop-in, and the
/// environment file holding the flags.
public enum KubeletConfig {
    public static let configPath = "/etc/kubernetes/kubelet/config.json"
    public static let dropInDirectory = "/etc/kubernetes/kubelet/config.json.d"
    public static let dropInPath = dropInDirectory + "/40-nodeadm.conf"
    public static let environmentPath = "/etc/eks/kubelet/environment"
    public static let kubeconfigPath = "/var/lib/kubelet/kubeconfig"
    public static let bootstrapKubeconfigPath = "/var/lib/kubelet/bootstrap-kubeconfig"
    public static let caPath = "/etc/kubernetes/pki/ca.crt"
    public static let credentialProviderConfigPath = "/etc/eks/image-credential-provider/config.json"

    static let cipherSuites = [
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
        "TLS_RSA_WITH_AES_128_GCM_SHA256", "TLS_RSA_WITH_AES_256_GCM_SHA384",
    ]

    /// The cluster DNS address nodeadm derives from the service CIDR: the text up to the last
    /// `.` plus `.10` (IPv4), or the address plus `a` (IPv6).
    public static func clusterDNS(cidr: String) -> String {
        let address = cidr.split(separator: "/", maxSplits: 1).first.map(String.init) ?? cidr
        if let parsed = CIDR(cidr), !parsed.address.isIPv4 { return address + "a" }
        guard let dot = cidr.lastIndex(of: ".") else { return address }
        return String(cidr[..<dot]) + ".10"
    }

    /// `/etc/kubernetes/kubelet/config.json`, in nodeadm's field order, 4-space JSON, no
    /// trailing newline.
    public static func config(_ context: RenderContext) -> String {
        let version = context.kubeletVersion
        var gates: [(String, JSONText)] = [("RotateKubeletServerCertificate", .bool(true))]
        if version >= ComponentVersion(1, 33, 0) { gates.append(("DynamicResourceAllocation", .bool(true))) }
        if version >= ComponentVersion(1, 34, 0) { gates.append(("MutableCSINodeAllocatableCount", .bool(true))) }
        let memory = KubeReserved.memoryMebibytes(maxPods: context.maxPods)
        var members: [(String, JSONText)] = [
            ("kind", .string("KubeletConfiguration")),
            ("apiVersion", .string("kubelet.config.k8s.io/v1beta1")),
            ("address", .string("0.0.0.0")),
            (
                "authentication",
                .object([
                    ("x509", .object([("clientCAFile", .string(caPath))])),
                    ("webhook", .object([("enabled", .bool(true)), ("cacheTTL", .string("2m0s"))])),
                    ("anonymous", .object([("enabled", .bool(false))])),
                ])
            ),
            (
                "authorization",
                .object([
                    ("mode", .string("Webhook")),
                    (
                        "webhook",
                        .object([("cacheAuthorizedTTL", .string("5m0s")), ("cacheUnauthorizedTTL", .string("30s"))])
                    ),
                ])
            ),
            ("cgroupDriver", .string("systemd")),
            ("cgroupRoot", .string("/")),
            ("clusterDomain", .string("cluster.local")),
            ("containerRuntimeEndpoint", .string("unix:///run/containerd/containerd.sock")),
        ]
        if SOCISnapshotter.decision(context).enabled {
            members.append(("imageServiceEndpoint", .string("unix://" + SOCISnapshotter.socket)))
        }
        members += [
            ("featureGates", .object(gates)),
            ("hairpinMode", .string("hairpin-veth")),
            ("protectKernelDefaults", .bool(true)),
            ("readOnlyPort", .int(0)),
            ("logging", .object([("verbosity", .int(2))])),
            ("serializeImagePulls", .bool(false)),
            ("serverTLSBootstrap", .bool(true)),
            ("tlsCipherSuites", .array(cipherSuites.map(JSONText.string))),
            ("clusterDNS", .array([.string(clusterDNS(cidr: context.config.spec.cluster.cidr))])),
        ]
        if context.maxPods > 0 { members.append(("maxPods", .int(context.maxPods))) }
        members += [
            (
                "evictionHard",
                .object([
                    ("memory.available", .string("100Mi")), ("nodefs.available", .string("10%")),
                    ("nodefs.inodesFree", .string("5%")),
                ])
            ),
            (
                "kubeReserved",
                .object([
                    ("cpu", .string("\(KubeReserved.cpuMillicores(onlineCPUs: context.onlineCPUs))m")),
                    ("ephemeral-storage", .string(KubeReserved.ephemeralStorage)),
                    ("memory", .string("\(memory)Mi")),
                ])
            ),
            ("kubeReservedCgroup", .string("/runtime")),
        ]
        if version >= ComponentVersion(1, 34, 0) {
            members += [("shutdownGracePeriod", .string("2m30s")), ("shutdownGracePeriodCriticalPods", .string("30s"))]
        }
        members += [
            ("systemReservedCgroup", .string("/system")),
            ("providerID", .string("aws:///\(context.instance.availabilityZone)/\(context.instance.id)")),
        ]
        return JSONText.object(members).rendered(indent: 4)
    }

    /// The user's `kubelet.config` merged over kind/apiVersion (so theirs win), sorted keys;
    /// nil when the user gave none.
    public static func dropIn(_ context: RenderContext) -> String? {
        guard let user = context.config.spec.kubelet.config, case .object(let members) = user, !members.isEmpty
        else { return nil }
        let base = ConfigValue.object([
            "kind": .string("KubeletConfiguration"), "apiVersion": .string("kubelet.config.k8s.io/v1beta1"),
        ])
        return JSONText(base.merged(with: user)).rendered(indent: 4)
    }

    /// nodeadm's flags in a fixed order (nodeadm's map order is random), then the user's flags
    /// verbatim and in order, so that theirs win (pflag: last one wins).
    public static func flags(_ context: RenderContext) -> [String] {
        var flags = [
            "--node-ip=\(context.instance.nodeIP)",
            "--cloud-provider=external",
            "--hostname-override=\(context.nodeName)",
            "--runtime-cgroups=/runtime.slice/containerd.service",
        ]
        if context.kubeletVersion >= ComponentVersion(1, 35, 0) && context.nvidiaDevice {
            flags.append("--node-labels=nvidia.com/gpu.present=true")
        }
        flags.append("--config=\(configPath)")
        if dropIn(context) != nil { flags.append("--config-dir=\(dropInDirectory)") }
        flags.append("--kubeconfig=\(kubeconfigPath)")
        if context.isOutpost { flags.append("--bootstrap-kubeconfig=\(bootstrapKubeconfigPath)") }
        let binary = context.credentialProviderBinary
        let binDirectory = binary.lastIndex(of: "/").map { String(binary[..<$0]) } ?? "."
        flags += [
            "--image-credential-provider-bin-dir=\(binDirectory)",
            "--image-credential-provider-config=\(credentialProviderConfigPath)",
        ]
        return flags + context.config.spec.kubelet.flags
    }

    /// `/etc/eks/kubelet/environment`: `KEY=VALUE` lines sorted by key, joined by `\n`, no
    /// trailing newline (as nodeadm writes it; systemd's EnvironmentFile takes the rest of the line).
    public static func environment(_ context: RenderContext) -> String {
        var variables = ["NODEADM_KUBELET_ARGS": flags(context).joined(separator: " ")]
        if context.kubeletVersion < ComponentVersion(1, 30, 0) && dropIn(context) != nil {
            variables["KUBELET_CONFIG_DROPIN_DIR_ALPHA"] = "on"
        }
        return variables.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
    }

    /// The kubeconfig (nodeadm's template, byte for byte with `--token-helper aws`).
    public static func kubeconfig(_ context: RenderContext) -> String {
        let exec: String
        switch context.tokenHelper {
        case .aws:
            exec = """
                        command: aws
                        args:
                          - "eks"
                          - "get-token"
                          - "--cluster-name"
                          - "\(context.clusterNameForToken)"
                          - "--region"
                          - "\(context.instance.region)"
                """
        case .nodeboot:
            exec = """
                        command: \(context.nodebootPath)
                        args:
                          - "token"
                          - "--cluster-name"
                          - "\(context.clusterNameForToken)"
                          - "--region"
                          - "\(context.instance.region)"
                        interactiveMode: Never
                """
        }
        return """
            ---
            apiVersion: v1
            kind: Config
            clusters:
              - name: kubernetes
                cluster:
                  certificate-authority: \(caPath)
                  server: \(context.config.spec.cluster.apiServerEndpoint)
            current-context: kubelet
            contexts:
              - name: kubelet
                context:
                  cluster: kubernetes
                  user: kubelet
            users:
              - name: kubelet
                user:
                  exec:
                    apiVersion: client.authentication.k8s.io/v1beta1

            """ + exec + "\n"
    }

    /// The ECR credential provider's `CredentialProviderConfig`.
    public static func credentialProviderConfig(_ context: RenderContext) -> String {
        var images = [
            "*.dkr.ecr.*.amazonaws.com", "*.dkr-ecr.*.on.aws", "*.dkr.ecr.*.amazonaws.com.cn",
            "*.dkr-ecr.*.on.amazonwebservices.com.cn", "*.dkr.ecr-fips.*.amazonaws.com", "*.dkr-ecr-fips.*.on.aws",
            "*.dkr.ecr.*.c2s.ic.gov", "*.dkr.ecr.*.sc2s.sgov.gov", "*.dkr.ecr.*.cloud.adc-e.uk",
            "*.dkr.ecr.*.csp.hci.ic.gov", "*.dkr.ecr.*.amazonaws.eu", "public.ecr.aws",
        ]
        if context.kubeletVersion >= ComponentVersion(1, 32, 0) { images.append("ecr-public.aws.com") }
        let binary = context.credentialProviderBinary
        let name = binary.lastIndex(of: "/").map { String(binary[binary.index(after: $0)...]) } ?? binary
        let provider = JSONText.object([
            ("name", .string(name)),
            ("matchImages", .array(images.map(JSONText.string))),
            ("defaultCacheDuration", .string("12h0m0s")),
            ("apiVersion", .string("credentialprovider.kubelet.k8s.io/v1")),
        ])
        return JSONText.object([
            ("apiVersion", .string("kubelet.config.k8s.io/v1")),
            ("kind", .string("CredentialProviderConfig")),
            ("providers", .array([provider])),
        ]).rendered(indent: 2)
    }
}
