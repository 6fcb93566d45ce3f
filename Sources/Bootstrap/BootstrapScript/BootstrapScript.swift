import NodeConfig
public import NodeRender

/// AL2's `/etc/eks/bootstrap.sh` command line (reference/nodeadm.md §12.1) translated into a
/// NodeConfig: `compat/bootstrap.sh` runs `nodeboot bootstrap-sh "$@"`, which writes the result
/// to `/etc/eks/nodeadm.d/` and runs `nodeboot init`. Parsing and translation are pure; every
/// problem is reported at once, naming the flag and the fix (exit 2, nothing written).
public enum BootstrapScript {
    /// The NodeConfig drop-in the translation writes (init reads `/etc/eks/nodeadm.d/`).
    public static let dropInPath = "/etc/eks/nodeadm.d/10-bootstrap-sh.yaml"

    /// The flags as given; nil: not given.
    public struct Flags: Sendable, Equatable {
        public var clusterName: String?
        public var apiServerEndpoint: String?
        public var b64ClusterCA: String?
        public var awsAPIRetryAttempts: Int?
        public var kubeletExtraArgs: String?
        public var useMaxPods: Bool?
        public var dnsClusterIP: String?
        public var ipFamily: String?
        public var serviceIPv4CIDR: String?
        public var serviceIPv6CIDR: String?
        public var containerRuntime: String?
        public var containerdConfigFile: String?
        public var pauseContainerAccount: String?
        public var pauseContainerVersion: String?
        public var dockerConfigJSON: String?
        public var enableDockerBridge: Bool?
        public var enableLocalOutpost: Bool?
        public var clusterID: String?
        public var mountBPFFS: Bool?
        public var localDisks: String?
        /// nodeboot's own: print the NodeConfig and the init command line, write nothing, run nothing.
        public var dryRun = false
        /// nodeboot's own: the node root (tests, image builds), passed on to init.
        public var root: String?
        public var help = false
        /// What does not parse (unknown options, a missing value or cluster name).
        public var problems: [String] = []

        /// The kubelet flags `--kubelet-extra-args` holds, split as systemd split bootstrap.sh's
        /// `$KUBELET_EXTRA_ARGS` in kubelet.service's ExecStart: at whitespace, with quotes removed
        /// (`--node-labels="a=b,c=d"` is `--node-labels=a=b,c=d`); nil for an unbalanced quote.
        public var kubeletFlags: [String]? { BootstrapScript.words(kubeletExtraArgs ?? "") }

        public init() {}
    }

    /// bootstrap.sh's options: each takes the next argument as its value, whatever it looks like
    /// (`--kubelet-extra-args '--max-pods=20'`); `--flag=value` is accepted too.
    static let valueOptions: [String] = [
        "apiserver-endpoint", "b64-cluster-ca", "aws-api-retry-attempts", "kubelet-extra-args", "use-max-pods",
        "dns-cluster-ip", "ip-family", "service-ipv4-cidr", "service-ipv6-cidr", "container-runtime",
        "containerd-config-file", "pause-container-account", "pause-container-version", "docker-config-json",
        "enable-docker-bridge", "enable-local-outpost", "cluster-id", "mount-bpf-fs", "local-disks", "root",
    ]

    /// The options bootstrap.sh takes (with nodeboot's `--root`), for tests and messages.
    public static var valueOptionNames: [String] { valueOptions }

    /// Parses the command line; its problems are kept in `problems` and reported by `translate`
    /// with the translation's own, all at once.
    public static func parse(_ arguments: [String]) -> Flags {
        var flags = Flags()
        var problems: [String] = []
        var positional: [String] = []
        var rest = arguments[...]
        func boolean(_ name: String, _ value: String) -> Bool? {
            switch value {
            case "true": return true
            case "false": return false
            default:
                problems.append("bootstrap.sh --\(name) '\(value)': not true or false — use --\(name) true or --\(name) false")
                return nil
            }
        }
        while let word = rest.popFirst() {
            if word == "-h" || word == "--help" {
                flags.help = true
                continue
            }
            if word == "--dry-run" {
                flags.dryRun = true
                continue
            }
            guard word.hasPrefix("--") else {
                positional.append(word)
                continue
            }
            var name = String(word.dropFirst(2))
            var value: String?
            if let equals = name.firstIndex(of: "=") {
                value = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard valueOptions.contains(name) else {
                let close = valueOptions.first { $0.hasPrefix(name) || name.hasPrefix($0) }
                problems.append(
                    "bootstrap.sh: unknown option '\(word)'"
                        + (close.map { " — did you mean --\($0)?" } ?? " — see /etc/eks/bootstrap.sh --help"))
                continue
            }
            if value == nil {
                guard let next = rest.popFirst() else {
                    problems.append("bootstrap.sh --\(name): the value is missing — give it as the next argument")
                    continue
                }
                value = next
            }
            guard let value else { continue }
            switch name {
            case "apiserver-endpoint": flags.apiServerEndpoint = value
            case "b64-cluster-ca": flags.b64ClusterCA = value
            case "aws-api-retry-attempts":
                if let count = Int(value), count >= 0 {
                    flags.awsAPIRetryAttempts = count
                } else {
                    problems.append(
                        "bootstrap.sh --aws-api-retry-attempts '\(value)': not a number of attempts — give a whole number such as 3"
                    )
                }
            case "kubelet-extra-args": flags.kubeletExtraArgs = value
            case "use-max-pods": flags.useMaxPods = boolean(name, value)
            case "dns-cluster-ip": flags.dnsClusterIP = value
            case "ip-family": flags.ipFamily = value
            case "service-ipv4-cidr": flags.serviceIPv4CIDR = value
            case "service-ipv6-cidr": flags.serviceIPv6CIDR = value
            case "container-runtime": flags.containerRuntime = value
            case "containerd-config-file": flags.containerdConfigFile = value
            case "pause-container-account": flags.pauseContainerAccount = value
            case "pause-container-version": flags.pauseContainerVersion = value
            case "docker-config-json": flags.dockerConfigJSON = value
            case "enable-docker-bridge": flags.enableDockerBridge = boolean(name, value)
            case "enable-local-outpost": flags.enableLocalOutpost = boolean(name, value)
            case "cluster-id": flags.clusterID = value
            case "mount-bpf-fs": flags.mountBPFFS = boolean(name, value)
            case "local-disks": flags.localDisks = value
            case "root": flags.root = value
            default: break
            }
        }
        if positional.count > 1 {
            problems.append(
                "bootstrap.sh: more than one cluster name (\(positional.map { "'\($0)'" }.joined(separator: ", "))) — give the cluster name once, after the options"
            )
        }
        flags.clusterName = positional.first
        if flags.clusterName == nil && !flags.help {
            problems.append("bootstrap.sh: the cluster name is missing — usage: /etc/eks/bootstrap.sh [options] <cluster-name>")
        }
        flags.problems = problems
        return flags
    }

    /// The translation: the NodeConfig document and what a person should know about it.
    public struct Translation: Sendable, Equatable {
        /// The NodeConfig as YAML, with a comment naming the flags it came from.
        public var document: String
        /// `note:` lines: flags accepted with nothing to do, choices made.
        public var notes: [String]
    }

    /// Whether the translation needs the VPC's IPv4 CIDR blocks (IMDS): bootstrap.sh's DNS
    /// fallback when the endpoint and CA are given (no DescribeCluster) and no service CIDR is.
    public static func needsVPCCIDRs(_ flags: Flags) -> Bool {
        flags.apiServerEndpoint != nil && flags.b64ClusterCA != nil && flags.serviceIPv4CIDR == nil
            && flags.serviceIPv6CIDR == nil && flags.ipFamily != "ipv6"
    }

    /// The NodeConfig for `flags`. `containerdConfig`: the text of `--containerd-config-file`;
    /// `vpcCIDRs`: the primary interface's `vpc-ipv4-cidr-blocks` when `needsVPCCIDRs`.
    public static func translate(_ flags: Flags, containerdConfig: String?, vpcCIDRs: [String]?)
        throws(NodeBootError) -> Translation
    {
        var problems = flags.problems
        var notes: [String] = []
        var cluster: [(String, JSONText)] = [("name", .string(flags.clusterName ?? ""))]
        if let endpoint = flags.apiServerEndpoint { cluster.append(("apiServerEndpoint", .string(endpoint))) }
        if let ca = flags.b64ClusterCA { cluster.append(("certificateAuthority", .string(ca))) }
        // IP family and service CIDR (nodeadm takes the family from the CIDR).
        switch flags.ipFamily {
        case nil, "ipv4", "ipv6": break
        case let other?:
            problems.append("bootstrap.sh --ip-family '\(other)': not an IP family — use ipv4 or ipv6")
        }
        if let v6 = flags.serviceIPv6CIDR {
            if flags.ipFamily == "ipv4" {
                problems.append(
                    "bootstrap.sh --service-ipv6-cidr \(v6) with --ip-family ipv4: an IPv6 service CIDR makes an IPv6 node — drop --ip-family ipv4, or give --service-ipv4-cidr instead"
                )
            }
            cluster.append(("cidr", .string(v6)))
            if flags.serviceIPv4CIDR != nil {
                notes.append("--service-ipv4-cidr is not used: --service-ipv6-cidr makes this an IPv6 node")
            }
        } else if flags.ipFamily == "ipv6" {
            if flags.apiServerEndpoint != nil && flags.b64ClusterCA != nil {
                problems.append(
                    "bootstrap.sh --ip-family ipv6 without --service-ipv6-cidr: with --apiserver-endpoint and --b64-cluster-ca there is no DescribeCluster to read the cluster's IPv6 service CIDR from — add --service-ipv6-cidr (aws eks describe-cluster --query cluster.kubernetesNetworkConfig.serviceIpv6Cidr)"
                )
            } else {
                notes.append("the IPv6 service CIDR is read with DescribeCluster (--ip-family ipv6 without --service-ipv6-cidr)")
            }
            if let v4 = flags.serviceIPv4CIDR {
                problems.append(
                    "bootstrap.sh --service-ipv4-cidr \(v4) with --ip-family ipv6: an IPv6 node needs the IPv6 service CIDR — give --service-ipv6-cidr instead"
                )
            }
        } else if let v4 = flags.serviceIPv4CIDR {
            cluster.append(("cidr", .string(v4)))
        } else if needsVPCCIDRs(flags), let vpcCIDRs {
            // bootstrap.sh's fallback without DescribeCluster: EKS's default service range for the VPC.
            let cidr = vpcCIDRs.contains { $0.hasPrefix("10.") } ? "172.20.0.0/16" : "10.100.0.0/16"
            cluster.append(("cidr", .string(cidr)))
            notes.append(
                "service CIDR \(cidr) (DNS \(cidr == "172.20.0.0/16" ? "172.20.0.10" : "10.100.0.10")): bootstrap.sh's default for a VPC \(cidr == "172.20.0.0/16" ? "with" : "without") a 10.x CIDR (\(vpcCIDRs.joined(separator: ", "))); give --service-ipv4-cidr if the cluster's differs"
            )
        }
        if let enable = flags.enableLocalOutpost { cluster.append(("enableOutpost", .bool(enable))) }
        if let id = flags.clusterID { cluster.append(("id", .string(id))) }
        if flags.enableLocalOutpost == true && flags.clusterID == nil && flags.apiServerEndpoint != nil
            && flags.b64ClusterCA != nil
        {
            problems.append(
                "bootstrap.sh --enable-local-outpost true without --cluster-id: a local cluster on Outposts is named by its id — add --cluster-id (aws eks describe-cluster --query cluster.id)"
            )
        }

        // Runtime: containerd only.
        switch flags.containerRuntime {
        case nil, "containerd": break
        case "dockerd":
            problems.append(
                "bootstrap.sh --container-runtime dockerd: Kubernetes 1.24 removed dockershim and nodeboot runs containerd — drop the flag (containerd is the default)"
            )
        case let other?:
            problems.append("bootstrap.sh --container-runtime '\(other)': not a runtime — use containerd")
        }
        if let json = flags.dockerConfigJSON, !json.isEmpty {
            problems.append(
                "bootstrap.sh --docker-config-json: dockerd's daemon.json has no meaning with containerd — drop the flag; registry settings go into containerd's config (spec.containerd.config, or --containerd-config-file)"
            )
        }
        if flags.enableDockerBridge == true {
            problems.append(
                "bootstrap.sh --enable-docker-bridge true: there is no docker0 bridge with containerd — drop the flag"
            )
        }
        var containerd: [(String, JSONText)] = []
        if let text = containerdConfig {
            // bootstrap.sh substituted its pause image for SANDBOX_IMAGE; nodeboot's is pre-cached.
            containerd.append(
                ("config", .string(text.replacing("SANDBOX_IMAGE", with: ContainerdConfig.sandboxImage))))
            notes.append(
                "--containerd-config-file is merged into nodeboot's containerd config (bootstrap.sh replaced the whole file)")
        }
        if flags.pauseContainerAccount != nil || flags.pauseContainerVersion != nil {
            notes.append(
                "--pause-container-account/--pause-container-version are ignored: the image's pre-cached \(ContainerdConfig.sandboxImage) is the sandbox image (no pull from ECR at boot)"
            )
        }

        // Kubelet.
        var kubeletConfig: [(String, JSONText)] = []
        let kubeletFlags = flags.kubeletFlags ?? []
        if flags.kubeletFlags == nil {
            problems.append(
                "bootstrap.sh --kubelet-extra-args: a quote is not closed — close it, or escape it with a backslash")
        }
        if let dns = flags.dnsClusterIP {
            let servers = dns.split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            if servers.contains(where: { $0.isEmpty }) {
                problems.append(
                    "bootstrap.sh --dns-cluster-ip '\(dns)': an empty address — give one address or two separated by a comma")
            }
            kubeletConfig.append(("clusterDNS", .array(servers.map { .string($0) })))
        }
        if flags.useMaxPods == false && !kubeletFlags.contains(where: { $0 == "--max-pods" || $0.hasPrefix("--max-pods=") }) {
            // bootstrap.sh left maxPods out of the kubelet config: the kubelet's default.
            kubeletConfig.append(("maxPods", .int(110)))
            notes.append(
                "--use-max-pods false: maxPods 110 (the kubelet's default); kubeReserved still follows the instance type's ENI limit, as with bootstrap.sh"
            )
        }
        if kubeletFlags.contains(where: { $0 == "--reserved-cpus" || $0.hasPrefix("--reserved-cpus=") }) {
            // As bootstrap.sh: no reserved cgroups with --reserved-cpus.
            kubeletConfig += [("kubeReservedCgroup", .string("")), ("systemReservedCgroup", .string(""))]
            notes.append(
                "--reserved-cpus in --kubelet-extra-args: kubeReservedCgroup and systemReservedCgroup are not set, as with bootstrap.sh"
            )
        }
        var kubelet: [(String, JSONText)] = []
        if !kubeletConfig.isEmpty { kubelet.append(("config", .object(kubeletConfig))) }
        if !kubeletFlags.isEmpty { kubelet.append(("flags", .array(kubeletFlags.map { .string($0) }))) }

        // Instance.
        var instance: [(String, JSONText)] = []
        if let disks = flags.localDisks {
            let strategies = ["mount": "Mount", "raid0": "RAID0", "raid10": "RAID10"]
            if let strategy = strategies[disks] {
                instance.append(("localStorage", .object([("strategy", .string(strategy))])))
            } else {
                problems.append("bootstrap.sh --local-disks '\(disks)': not a strategy — use mount, raid0 or raid10")
            }
        }
        if flags.mountBPFFS == false {
            notes.append("--mount-bpf-fs false has no effect: systemd mounts /sys/fs/bpf on every boot")
        }
        if flags.awsAPIRetryAttempts != nil {
            notes.append(
                "--aws-api-retry-attempts is not used: nodeboot retries AWS calls with jittered backoff within 120 s (docs/compat.md)"
            )
        }

        if !problems.isEmpty { throw failure(problems) }
        var spec: [(String, JSONText)] = [("cluster", .object(cluster))]
        if !containerd.isEmpty { spec.append(("containerd", .object(containerd))) }
        if !instance.isEmpty { spec.append(("instance", .object(instance))) }
        if !kubelet.isEmpty { spec.append(("kubelet", .object(kubelet))) }
        let document = JSONText.object([
            ("apiVersion", .string(NodeConfig.apiVersion)), ("kind", .string(NodeConfig.kind)), ("spec", .object(spec)),
        ])
        let header = "# Written by /etc/eks/bootstrap.sh (nodeboot bootstrap-sh) from its command line; nodeboot init reads it.\n"
        return Translation(document: header + document.yaml() + "\n", notes: notes)
    }

    /// `text` split into words as systemd splits an unquoted `$VAR` (EXTRACT_UNQUOTE): whitespace
    /// separates, '…' and "…" quote, a backslash escapes the next character; nil when a quote is
    /// not closed.
    static func words(_ text: String) -> [String]? {
        var words: [String] = []
        var current = ""
        var inWord = false
        var quote: Character?
        var escaped = false
        for character in text {
            if escaped {
                current.append(character)
                escaped = false
                continue
            }
            if let open = quote {
                if character == open {
                    quote = nil
                } else if character == "\\" && open == "\"" {
                    escaped = true
                } else {
                    current.append(character)
                }
                continue
            }
            switch character {
            case " ", "\t", "\n", "\r", "\r\n":
                if inWord { words.append(current) }
                current = ""
                inWord = false
            case "'", "\"":
                quote = character
                inWord = true
            case "\\":
                escaped = true
                inWord = true
            default:
                current.append(character)
                inWord = true
            }
        }
        guard quote == nil else { return nil }
        if inWord { words.append(current) }
        return words
    }

    static func failure(_ problems: [String]) -> NodeBootError {
        NodeBootError(
            .input, problems.joined(separator: "\n"),
            hint: "nothing was written; fix the flags in the user data (the table of flags: docs/compat.md, bootstrap.sh)")
    }

    /// `bootstrap.sh --help`.
    public static let usage = """
        usage: /etc/eks/bootstrap.sh [options] <cluster-name>
        AL2's bootstrap.sh, translated into a NodeConfig (/etc/eks/nodeadm.d/10-bootstrap-sh.yaml) and run by nodeboot init.

        options:
          --apiserver-endpoint URL           the cluster's API server (with --b64-cluster-ca: no DescribeCluster)
          --b64-cluster-ca B64               the cluster CA, base64
          --service-ipv4-cidr CIDR           the cluster's service CIDR (DNS: its .10)
          --service-ipv6-cidr CIDR           the IPv6 service CIDR (an IPv6 node)
          --ip-family ipv4|ipv6              the node's IP family
          --dns-cluster-ip IP[,IP]           the kubelet's clusterDNS
          --kubelet-extra-args "ARGS"        kubelet flags (split at spaces)
          --use-max-pods true|false          false: the kubelet's default 110 pods, unless ARGS set --max-pods
          --local-disks mount|raid0|raid10   instance store volumes (setup-local-disks)
          --enable-local-outpost true|false  a local cluster on Outposts
          --cluster-id ID                    the local cluster's id
          --containerd-config-file FILE      TOML merged into containerd's config
          --container-runtime containerd     (dockerd is refused)
          --aws-api-retry-attempts N, --pause-container-account A, --pause-container-version V, --mount-bpf-fs B:
                                             accepted, no effect (docs/compat.md)
          --docker-config-json, --enable-docker-bridge true: refused (no dockerd)
          --dry-run                          print the NodeConfig and the init command; write nothing, run nothing
          --root DIR                         node root (tests, image builds)
          -h, --help                         this text

        """
}
