import IPAM
import Testing

@Suite("ipamd settings (aws-node's environment variables)")
struct SettingsTests {
    @Test("defaults are aws-node's")
    func defaults() throws {
        let (settings, warnings) = try Settings.parse([:])
        #expect(settings == Settings())
        #expect(settings.warmENITarget == 1 && settings.warmIPTarget == 0 && settings.minimumIPTarget == 0)
        #expect(settings.cooldown == .seconds(30) && settings.mtu == 9001 && settings.leakedENICleanup)
        #expect(!settings.prefixDelegation && !settings.externalSNAT && settings.maxENI == nil)
        #expect(warnings.isEmpty)
    }

    @Test("every knob is read; Go's bool spellings are accepted")
    func values() throws {
        let (settings, _) = try Settings.parse([
            "WARM_ENI_TARGET": "0", "WARM_IP_TARGET": " 5 ", "MINIMUM_IP_TARGET": "10", "ENABLE_PREFIX_DELEGATION": "F",
            "WARM_PREFIX_TARGET": "2", "MAX_ENI": "2", "IP_COOLDOWN_PERIOD": "0", "AWS_VPC_ENI_MTU": "1500",
            "AWS_VPC_K8S_CNI_EXTERNALSNAT": "False", "EXCLUDE_SNAT_CIDRS": "10.1.0.0/16, 192.168.0.0/24",
            "DISABLE_LEAKED_ENI_CLEANUP": "1", "ENABLE_POD_ENI": "false",
        ])
        #expect(settings.warmENITarget == 0 && settings.warmIPTarget == 5 && settings.minimumIPTarget == 10)
        #expect(!settings.prefixDelegation && settings.warmPrefixTarget == 2 && settings.maxENI == 2)
        #expect(settings.cooldown == .zero && settings.mtu == 1500 && !settings.externalSNAT)
        #expect(settings.excludeSNATCIDRs.map(\.description) == ["10.1.0.0/16", "192.168.0.0/24"])
        #expect(!settings.leakedENICleanup)
        #expect(settings.usesIPTargets)

    }

    @Test("every refused setting at once, each line naming the variable, the value, why and where to set it")
    func refusals() {
        let environment = [
            "WARM_ENI_TARGET": "-1", "WARM_IP_TARGET": "many", "MAX_ENI": "0", "IP_COOLDOWN_PERIOD": "3601",
            "AWS_VPC_ENI_MTU": "9002", "AWS_VPC_K8S_CNI_EXTERNALSNAT": "yes", "EXCLUDE_SNAT_CIDRS": "10.0.0.0/8,10.1.2.3/16",
            "ENABLE_POD_ENI": "true", "AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG": "true",
        ]
        let refused = #expect(throws: Settings.Refused.self) { try Settings.parse(environment) }
        let lines = refused?.description.split(separator: "\n").map(String.init) ?? []
        let suffix = "; set it in spec.instance.environment.nodeboot-ipamd of the NodeConfig"
        let expected = [
            "ipamd: refused setting: WARM_ENI_TARGET=-1: not a whole number of 0 or more",
            "ipamd: refused setting: WARM_IP_TARGET=many: not a whole number of 0 or more",
            "ipamd: refused setting: MAX_ENI=0: must be 1 or more",
            "ipamd: refused setting: IP_COOLDOWN_PERIOD=3601: not a number of seconds from 0 to 3600",
            "ipamd: refused setting: AWS_VPC_ENI_MTU=9002: out of range: 576 to 9001",
            "ipamd: refused setting: AWS_VPC_K8S_CNI_EXTERNALSNAT=yes: not true or false",
            "ipamd: refused setting: EXCLUDE_SNAT_CIDRS=10.0.0.0/8,10.1.2.3/16: '10.1.2.3/16' is not an IPv4 CIDR",
            "ipamd: refused setting: ENABLE_POD_ENI=true: security groups for pods are not supported by nodeboot ipamd; "
                + "unset it, or run the aws-node daemonset on this node instead (nodeboot init --daemon containerd --daemon kubelet)",
            "ipamd: refused setting: AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG=true: custom networking (ENIConfig) is not supported "
                + "by nodeboot ipamd; unset it, or run the aws-node daemonset on this node instead (nodeboot init --daemon "
                + "containerd --daemon kubelet)",
        ].map { $0 + suffix }
        #expect(lines == expected)
    }

    @Test(
        "prefix delegation: WARM_PREFIX_TARGET 1 by default, refused with every target 0; MIN without WARM and ignored variables warn"
    )
    func combinations() throws {
        let (pd, _) = try Settings.parse(["ENABLE_PREFIX_DELEGATION": "true"])
        #expect(pd.prefixDelegation && pd.warmPrefixTarget == 1)
        let refused = #expect(throws: Settings.Refused.self) {
            try Settings.parse(["ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "0"])
        }
        #expect(refused?.problems.map(\.variable) == ["ENABLE_PREFIX_DELEGATION"])
        #expect(
            refused?.description.contains(
                "ENABLE_PREFIX_DELEGATION=true needs WARM_PREFIX_TARGET, WARM_IP_TARGET or MINIMUM_IP_TARGET above 0") == true)
        #expect(throws: Never.self) {
            try Settings.parse(["ENABLE_PREFIX_DELEGATION": "true", "WARM_PREFIX_TARGET": "0", "WARM_IP_TARGET": "3"])
        }
        let (_, warnings) = try Settings.parse([
            "MINIMUM_IP_TARGET": "10", "ENABLE_IPv6": "true", "AWS_VPC_K8S_CNI_EXTERNALSNAT": "true",
            "EXCLUDE_SNAT_CIDRS": "10.1.0.0/16",
        ])
        #expect(warnings.contains { $0.contains("MINIMUM_IP_TARGET=10 without WARM_IP_TARGET") })
        #expect(warnings.contains("ipamd: ignored setting ENABLE_IPv6: not implemented by nodeboot"))
        #expect(warnings.contains { $0.contains("EXCLUDE_SNAT_CIDRS is ignored: AWS_VPC_K8S_CNI_EXTERNALSNAT is on") })
        let conflict = #expect(throws: Settings.Refused.self) {
            try Settings.parse(["EXCLUDE_SNAT_CIDRS": "10.1.0.0/16", "AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": "10.2.0.0/16"])
        }
        #expect(conflict?.problems.first?.why.contains("says otherwise") == true)
        let (legacy, _) = try Settings.parse(["AWS_VPC_K8S_CNI_EXCLUDE_SNAT_CIDRS": "10.2.0.0/16"])
        #expect(legacy.excludeSNATCIDRs.map(\.description) == ["10.2.0.0/16"])
    }

    @Test("EXCLUDE_SNAT_CIDRS: IPv4 networks only (host bits clear, a prefix length), as Go's strictness")
    func excludeCIDRs() throws {
        let (settings, _) = try Settings.parse(["EXCLUDE_SNAT_CIDRS": "10.1.0.0/16,192.168.0.0/24,0.0.0.0/0"])
        #expect(settings.excludeSNATCIDRs.map(\.description) == ["10.1.0.0/16", "192.168.0.0/24", "0.0.0.0/0"])
        for bad in ["10.1.2.3/16", "10.0.0.0/33", "10.0.0.0", "10.0.0.0/x", "fd00::/8", "10.0.097.0/24"] {
            let refused = #expect(throws: Settings.Refused.self, "\(bad)") { try Settings.parse(["EXCLUDE_SNAT_CIDRS": bad]) }
            #expect(refused?.problems.first?.why == "'\(bad)' is not an IPv4 CIDR")
        }
    }
}
