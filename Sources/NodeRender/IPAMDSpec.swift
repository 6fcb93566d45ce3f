import NodeConfig

/// `/etc/nodeboot/ipamd.json`: what `nodeboot ipamd` needs to know about the node and cannot
/// learn from IMDS (docs/ipamd.md §2, §9). One line of compact JSON in a fixed key order and a
/// trailing newline; `IPAM.NodeSpec` reads it. Rendered only when nodeboot-ipamd is among the
/// daemons `init` manages.
public enum IPAMDSpec {
    public static let path = "/etc/nodeboot/ipamd.json"
    public static let schema = "nodeboot.ipamd/v1"
    /// The host side of a pod's veth: aws-node's default `AWS_VPC_K8S_CNI_VETHPREFIX`.
    public static let vethPrefix = "eni"

    /// `{"schema":…,"cluster":…,"ipFamily":…,"maxPods":…,"instanceType":…,"limits":{…},"vethPrefix":…}`.
    /// `limits` is left out when discovery did not learn them (the daemon then asks EC2).
    public static func render(_ context: RenderContext) throws(RenderError) -> String {
        var members: [(String, JSONText)] = [
            ("schema", .string(schema)),
            ("cluster", .string(context.config.spec.cluster.name)),
            ("ipFamily", .string(context.isIPv6 ? "ipv6" : "ipv4")),
            ("maxPods", .int(try maxPods(context))),
            ("instanceType", .string(context.instance.type)),
        ]
        if let limits = context.networkLimits {
            members.append(
                (
                    "limits",
                    .object([
                        ("maxENIs", .int(limits.maxENIs)), ("ipv4PerENI", .int(limits.ipv4PerENI)),
                        ("source", .string(limits.source)),
                    ])
                ))
        }
        members.append(("vethPrefix", .string(vethPrefix)))
        return JSONText.object(members).rendered(indent: 0) + "\n"
    }

    /// The kubelet's effective max pods: the user's `kubelet.config.maxPods` (the drop-in wins
    /// over config.json), else the computed one.
    public static func maxPods(_ context: RenderContext) throws(RenderError) -> Int {
        guard case .object(let members)? = context.config.spec.kubelet.config, let value = members["maxPods"] else {
            return context.maxPods
        }
        switch value {
        case .int(let number) where number >= 1: return number
        case .double(let number) where number >= 1 && number < 1e9 && number == number.rounded(): return Int(number)
        default:
            throw RenderError(
                field: "spec.kubelet.config.maxPods", message: "is not a whole number of 1 or more",
                hint: "set a pod count such as 58, or leave it out to use the instance type's")
        }
    }
}
