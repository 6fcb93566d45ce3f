/// nodeadm's (and AL2 bootstrap.sh's) resource reservations and standard max pods.
public enum KubeReserved {
    /// Millicores reserved for the kubelet: 6% of the first core, 1% of the second, 0.5% of the
    /// next two, 0.25% of the rest, integer division per range.
    public static func cpuMillicores(onlineCPUs: Int) -> Int {
        let total = onlineCPUs * 1000
        let ranges = [(0, 1000, 600), (1000, 2000, 100), (2000, 4000, 50), (4000, Int.max, 25)]
        return ranges.reduce(0) { sum, range in
            guard total > range.0 else { return sum }
            return sum + (min(total, range.1) - range.0) * range.2 / 10000
        }
    }

    /// MiB reserved for the kubelet: `11 × maxPods + 255`.
    public static func memoryMebibytes(maxPods: Int) -> Int { 11 * maxPods + 255 }

    /// Always `1Gi`.
    public static let ephemeralStorage = "1Gi"

    /// `ENIs × (IPv4 addresses per ENI − 1) + 2`: the pods the VPC CNI can address.
    public static func standardMaxPods(maxENIs: Int, ipv4PerENI: Int) -> Int { maxENIs * (ipv4PerENI - 1) + 2 }
}
