public import Netlink
import Support

/// ipamd's knobs, read from its environment with aws-node's names and defaults
/// (docs/ipamd.md §2). Operators set them the nodeadm way: `spec.instance.environment.nodeboot-ipamd`
/// in the NodeConfig becomes the unit's environment drop-in.
public struct Settings: Sendable, Equatable {
    public var warmENITarget = 1
    public var warmIPTarget = 0
    public var minimumIPTarget = 0
    public var warmPrefixTarget = 0
    public var prefixDelegation = false
    /// `MAX_ENI`: fewer ENIs than the instance allows.
    public var maxENI: Int?
    /// `IP_COOLDOWN_PERIOD`: a released address is not handed out again for this long.
    public var cooldown: Duration = .seconds(30)
    public var mtu = 9001
    public var externalSNAT = false
    public var excludeSNATCIDRs: [IPPrefix] = []
    public var leakedENICleanup = true

    public init() {}

    /// IP-granular targets (`WARM_IP_TARGET` or `MINIMUM_IP_TARGET`) override the ENI and prefix targets.
    public var usesIPTargets: Bool { warmIPTarget > 0 || minimumIPTarget > 0 }

    /// A refused variable: the line names it, its value, why, and where to set it.
    public struct Problem: Sendable, Equatable, CustomStringConvertible {
        public var variable: String
        public var value: String
        public var why: String

        public var description: String {
            "ipamd: refused setting: \(variable)=\(value): \(why); "
                + "set it in spec.instance.environment.nodeboot-ipamd of the NodeConfig"
        }
    }

    /// Every refused setting at once (the daemon exits with status 2 and prints each line).
    public struct Refused: Error, Sendable, Equatable, CustomStringConvertible {
        public var problems: [Problem]
        public var description: String { problems.map(\.description).joined(separator: "\n") }
    }

    static let unsupportedHint =
        "unset it, or run the aws-node daemonset on this node instead (nodeboot init --daemon containerd --daemon kubelet)"

    /// aws-node's other variables (vpc-cni.md §1 row 30 and the feature table): set, they are ignored with a warning.
    static let ignored: [String] = [
        "ENABLE_IPv6", "ENABLE_IPv4", "AWS_VPC_K8S_CNI_RANDOMIZESNAT", "ENABLE_SUBNET_DISCOVERY",
        "AWS_EXTERNAL_SERVICE_CIDRS", "DISABLE_NETWORK_RESOURCE_PROVISIONING", "ENABLE_IMDS_ONLY_MODE",
        "ANNOTATE_POD_IP", "ENABLE_V6_EGRESS", "ENABLE_V4_EGRESS", "DISABLE_POD_V6", "ENABLE_MULTI_NIC",
        "AWS_VPC_K8S_CNI_CONNMARK", "ADDITIONAL_ENI_TAGS", "POD_SECURITY_GROUP_ENFORCING_MODE", "AWS_VPC_K8S_CNI_VETHPREFIX",
        "POD_MTU", "DISABLE_INTROSPECTION", "DISABLE_METRICS", "AWS_MANAGE_ENIS_NON_SCHEDULABLE", "MANAGE_UNTAGGED_ENI",
    ]

    /// The settings `environment` gives, with warnings (settings that are read but have no effect
    /// as given), or every refused setting at once.
    public static func parse(_ environment: [String: String]) throws(Refused) -> (Settings, warnings: [String]) {
        var settings = Settings()
        var problems: [Problem] = []
        var warnings: [String] = []
        func value(_ name: String) -> String? {
            environment[name].map { $0.trimmed }.flatMap { $0.isEmpty ? nil : $0 }
        }
        func count(_ name: String, minimum: Int = 0, why: String = "not a whole number of 0 or more") -> Int? {
            guard let text = value(name) else { return nil }
            guard let number = Int(text), number >= minimum else {
                problems.append(Problem(variable: name, value: text, why: why))
                return nil
            }
            return number
        }
        func flag(_ name: String) -> Bool? {
            guard let text = value(name) else { return nil }
            // Go's strconv.ParseBool, which aws-node uses.
            switch text {
            case "1", "t", "T", "true", "TRUE", "True": return true
            case "0", "f", "F", "false", "FALSE", "False": return false
            default:
                problems.append(Problem(variable: name, value: text, why: "not true or false"))
                return nil
            }
        }

        settings.warmENITarget = count("WARM_ENI_TARGET") ?? 1
        settings.warmIPTarget = count("WARM_IP_TARGET") ?? 0
        settings.minimumIPTarget = count("MINIMUM_IP_TARGET") ?? 0
        settings.prefixDelegation = flag("ENABLE_PREFIX_DELEGATION") ?? false
        let warmPrefix = count("WARM_PREFIX_TARGET")
        // The EKS manifest sets WARM_PREFIX_TARGET=1; unset with PD on means that.
        settings.warmPrefixTarget = warmPrefix ?? (settings.prefixDelegation ? 1 : 0)
        settings.maxENI = count("MAX_ENI", minimum: 1, why: "must be 1 or more")
        if let seconds = count("IP_COOLDOWN_PERIOD", why: "not a number of seconds from 0 to 3600") {
            if seconds > 3600 {
                problems.append(
                    Problem(variable: "IP_COOLDOWN_PERIOD", value: String(seconds), why: "not a number of seconds from 0 to 3600")
                )
            } else {
                settings.cooldown = .seconds(seconds)
            }
        }
        if let text = value("AWS_VPC_ENI_MTU") {
            if let mtu = Int(text), (576...9001).contains(mtu) {
                settings.mtu = mtu
            } else {
                problems.append(Problem(variable: "AWS_VPC_ENI_MTU", value: text, why: "out of range: 576 to 9001"))
            }
        }
        settings.externalSNAT = flag("AWS_VPC_K8S_CNI_EXTERNALSNAT") ?? false
        settings.leakedENICleanup = !(flag("DISABLE_LEAKED_ENI_CLEANUP") ?? false)

        let exclude = value("EXCLUDE_SNAT_CIDRS")
        let legacy = value("AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS")
        if let exclude, let legacy, exclude != legacy {
            problems.append(
                Problem(
                    variable: "EXCLUDE_SNAT_CIDRS", value: exclude,
                    why: "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS=\(legacy) says otherwise; set one of them"))
        } else if let list = exclude ?? legacy {
            let name = exclude != nil ? "EXCLUDE_SNAT_CIDRS" : "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS"
            for item in list.split(separator: ",").map({ $0.trimmed }) where !item.isEmpty {
                // An IPv4 network: ADDRESS/LENGTH with the host bits clear (Netlink's IPPrefix, checked).
                if item.contains("/"), let cidr = IPPrefix(item), cidr.family == .inet, cidr.network == cidr.address {
                    settings.excludeSNATCIDRs.append(cidr)
                } else {
                    problems.append(Problem(variable: name, value: list, why: "'\(item)' is not an IPv4 CIDR"))
                }
            }
            if settings.externalSNAT && !settings.excludeSNATCIDRs.isEmpty {
                warnings.append("ipamd: \(name) is ignored: AWS_VPC_K8S_CNI_EXTERNALSNAT is on, so ipamd does no SNAT")
            }
        }

        if let text = value("ENABLE_POD_ENI"), flag("ENABLE_POD_ENI") == true {
            problems.append(
                Problem(
                    variable: "ENABLE_POD_ENI", value: text,
                    why: "security groups for pods are not supported by nodeboot ipamd; \(unsupportedHint)"))
        }
        if let text = value("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG"), flag("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG") == true {
            problems.append(
                Problem(
                    variable: "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG", value: text,
                    why: "custom networking (ENIConfig) is not supported by nodeboot ipamd; \(unsupportedHint)"))
        }
        if settings.prefixDelegation && settings.warmPrefixTarget == 0 && !settings.usesIPTargets {
            problems.append(
                Problem(
                    variable: "ENABLE_PREFIX_DELEGATION", value: value("ENABLE_PREFIX_DELEGATION") ?? "true",
                    why: "ENABLE_PREFIX_DELEGATION=true needs WARM_PREFIX_TARGET, WARM_IP_TARGET or MINIMUM_IP_TARGET above 0"))
        }
        if settings.minimumIPTarget > 0 && settings.warmIPTarget == 0 {
            warnings.append(
                "ipamd: MINIMUM_IP_TARGET=\(settings.minimumIPTarget) without WARM_IP_TARGET: the pool stops growing at "
                    + "\(settings.minimumIPTarget) addresses (no spare); set WARM_IP_TARGET too")
        }
        for name in ignored where value(name) != nil {
            warnings.append("ipamd: ignored setting \(name): not implemented by nodeboot")
        }
        guard problems.isEmpty else { throw Refused(problems: problems) }
        return (settings, warnings)
    }
}
