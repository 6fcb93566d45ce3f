/// The built-in defaults of amazon-ec2-metadata-mock (aemm) that matter for a node agent:
/// for each aemm key, the path it is served at and its default value. A config file in aemm's
/// format overrides paths and values by key; keys it does not set keep these defaults.
/// (Facts from aemm's `pkg/config/defaults/aemm-metadata-default-values.json`.)
enum AEMMDefaults {
    /// The MAC address aemm's default paths are written with.
    static let mac = "0e:49:61:0f:c3:11"

    static let metadataPaths: [String: String] = {
        let m = "/latest/meta-data/"
        let macs = m + "network/interfaces/macs/" + mac + "/"
        return [
            "ami-id": m + "ami-id",
            "ami-launch-index": m + "ami-launch-index",
            "ami-manifest-path": m + "ami-manifest-path",
            "block-device-mapping-ami": m + "block-device-mapping/ami",
            "block-device-mapping-root": m + "block-device-mapping/root",
            "hostname": m + "hostname",
            "iam-info": m + "iam/info",
            "iam-security-credentials-role": m + "iam/security-credentials",
            "iam-security-credentials": m + "iam/security-credentials/baskinc-role",
            "instance-action": m + "instance-action",
            "instance-id": m + "instance-id",
            "instance-life-cycle": m + "instance-life-cycle",
            "instance-type": m + "instance-type",
            "local-hostname": m + "local-hostname",
            "local-ipv4": m + "local-ipv4",
            "mac": m + "mac",
            "mac-device-number": macs + "device-number",
            "mac-ipv6-associations": macs + "ipv6s",
            "mac-local-hostname": macs + "local-hostname",
            "mac-local-ipv4s": macs + "local-ipv4s",
            "mac-mac": macs + "mac",
            "mac-network-interface-id": macs + "interface-id",
            "mac-network-interface-card-index": macs + "network-card-index",
            "mac-owner-id": macs + "owner-id",
            "mac-security-group-ids": macs + "security-group-ids",
            "mac-security-groups": macs + "security-groups",
            "mac-subnet-id": macs + "subnet-id",
            "mac-subnet-ipv4-cidr-block": macs + "subnet-ipv4-cidr-block",
            "mac-subnet-ipv6-cidr-blocks": macs + "subnet-ipv6-cidr-blocks",
            "mac-vpc-id": macs + "vpc-id",
            "mac-vpc-ipv4-cidr-block": macs + "vpc-ipv4-cidr-block",
            "mac-vpc-ipv4-cidr-blocks": macs + "vpc-ipv4-cidr-blocks",
            "mac-vpc-ipv6-cidr-blocks": macs + "vpc-ipv6-cidr-blocks",
            "placement-availability-zone": m + "placement/availability-zone",
            "placement-availability-zone-id": m + "placement/availability-zone-id",
            "placement-region": m + "placement/region",
            "public-hostname": m + "public-hostname",
            "public-ipv4": m + "public-ipv4",
            "reservation-id": m + "reservation-id",
            "security-groups": m + "security-groups",
            "services-domain": m + "services/domain",
            "services-partition": m + "services/partition",
        ]
    }()

    static let metadataValues: [String: JSONValue] = [
        "ami-id": .string("ami-0a887e401f7654935"),
        "ami-launch-index": .string("0"),
        "ami-manifest-path": .string("(unknown)"),
        "block-device-mapping-ami": .string("/dev/xvda"),
        "block-device-mapping-root": .string("/dev/xvda"),
        "hostname": .string("ip-172-16-34-43.ec2.internal"),
        "iam-security-credentials-role": .string("baskinc-role"),
        "instance-action": .string("none"),
        "instance-id": .string("i-1234567890abcdef0"),
        "instance-life-cycle": .string("on-demand"),
        "instance-type": .string("m4.xlarge"),
        "local-hostname": .string("ip-172-16-34-43.ec2.internal"),
        "local-ipv4": .string("172.16.34.43"),
        "mac": .string(mac),
        "mac-device-number": .string("0"),
        "mac-ipv6-associations": .string("2001:db8:8:4::2"),
        "mac-local-hostname": .string("ip-172-16-34-43.ec2.internal"),
        "mac-local-ipv4s": .string("172.16.34.43"),
        "mac-mac": .string(mac),
        "mac-network-interface-id": .string("eni-0f95d3625f5c521cc"),
        "mac-network-interface-card-index": .string("0"),
        "mac-owner-id": .string("515336597381"),
        "mac-security-group-ids": .string("sg-0b07f8f6cb485d4df"),
        "mac-security-groups": .string("ura-launch-wizard-harry-1"),
        "mac-subnet-id": .string("subnet-0ac62554"),
        "mac-subnet-ipv4-cidr-block": .string("192.0.2.0/24"),
        "mac-subnet-ipv6-cidr-blocks": .string("2001:db8::/32"),
        "mac-vpc-id": .string("vpc-d295a6a7"),
        "mac-vpc-ipv4-cidr-block": .string("192.0.2.0/24"),
        "mac-vpc-ipv4-cidr-blocks": .string("192.0.2.0/24"),
        "mac-vpc-ipv6-cidr-blocks": .string("2001:db8::/32"),
        "placement-availability-zone": .string("us-east-1a"),
        "placement-availability-zone-id": .string("use1-az4"),
        "placement-region": .string("us-east-1"),
        "public-hostname": .string("ec2-192-0-2-54.compute-1.amazonaws.com"),
        "public-ipv4": .string("192.0.2.54"),
        "reservation-id": .string("r-046cb3eca3e201d2f"),
        "security-groups": .string("ura-launch-wizard-harry-1"),
        "services-domain": .string("amazonaws.com"),
        "services-partition": .string("aws"),
    ]

    /// aemm's `iam-info` InstanceProfileId.
    static let instanceProfileID = "AIPA5BOGHHXZELSK34VU4"

    static let identityDocumentPath = "/latest/dynamic/instance-identity/document"

    static let identityDocument: JSONValue = .object([
        ("accountId", .string("0123456789")),
        ("architecture", .string("x86_64")),
        ("availabilityZone", .string("us-east-1f")),
        ("billingProducts", .null),
        ("devpayProductCodes", .null),
        ("imageId", .string("ami-0b69ea66ff7391e80")),
        ("instanceId", .string("i-1234567890abcdef0")),
        ("instanceType", .string("m4.xlarge")),
        ("kernelId", .null),
        ("marketplaceProductCodes", .null),
        ("pendingTime", .string("2019-10-31T07:02:24Z")),
        ("privateIp", .string("10.0.7.10")),
        ("ramdiskId", .null),
        ("region", .string("us-east-1")),
        ("version", .string("2017-09-30")),
    ])

    static let userDataPath = "/latest/user-data"
    /// aemm's default user data (base64 of a CSV line), served as the string it is.
    static let userData = "MTIzNCxqb2huLHJlYm9vdCx0cnVlCg=="
}
