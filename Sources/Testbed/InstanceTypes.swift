/// The embedded DescribeInstanceTypes table: a few rows of nodeadm's `instance-info.jsonl`
/// (interfaces on the default card, IPv4 addresses per interface), and one multi-card type.
enum InstanceTypes {
    typealias Row = TestbedConfiguration.InstanceType

    static let embedded: [Row] = [
        Row(
            instanceType: "m4.xlarge", maximumNetworkInterfaces: 4, ipv4AddressesPerInterface: 15,
            ipv6AddressesPerInterface: 15, vcpus: 4, memoryMiB: 16384, hypervisor: "xen"),
        Row(
            instanceType: "m5.large", maximumNetworkInterfaces: 3, ipv4AddressesPerInterface: 10,
            ipv6AddressesPerInterface: 10, vcpus: 2, memoryMiB: 8192),
        Row(
            instanceType: "m5.xlarge", maximumNetworkInterfaces: 4, ipv4AddressesPerInterface: 15,
            ipv6AddressesPerInterface: 15, vcpus: 4, memoryMiB: 16384),
        Row(
            instanceType: "c5.large", maximumNetworkInterfaces: 3, ipv4AddressesPerInterface: 10,
            ipv6AddressesPerInterface: 10, vcpus: 2, memoryMiB: 4096),
        Row(
            instanceType: "t3.medium", maximumNetworkInterfaces: 3, ipv4AddressesPerInterface: 6,
            ipv6AddressesPerInterface: 6, vcpus: 2, memoryMiB: 4096),
        Row(
            instanceType: "t3.micro", maximumNetworkInterfaces: 2, ipv4AddressesPerInterface: 2,
            ipv6AddressesPerInterface: 2, vcpus: 2, memoryMiB: 1024),
        Row(
            instanceType: "a1.large", maximumNetworkInterfaces: 3, ipv4AddressesPerInterface: 10,
            ipv6AddressesPerInterface: 10, vcpus: 2, memoryMiB: 4096, architecture: "arm64"),
        // 32 network cards; the default card (0) takes 2 interfaces (instance-info.jsonl: 2 × 50).
        Row(
            instanceType: "p5.48xlarge", maximumNetworkInterfaces: 2, ipv4AddressesPerInterface: 50,
            ipv6AddressesPerInterface: 50,
            networkCards: (0..<32).map { Row.NetworkCard(networkCardIndex: $0, maximumNetworkInterfaces: 2) },
            defaultNetworkCardIndex: 0, vcpus: 192, memoryMiB: 2_097_152),
    ]

    /// The embedded rows with the configured ones laid over them (same name replaces).
    static func table(_ configured: [Row]) -> [String: Row] {
        var table: [String: Row] = [:]
        for row in embedded + configured { table[row.instanceType] = row }
        return table
    }
}
