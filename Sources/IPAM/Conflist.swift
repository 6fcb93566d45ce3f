import IPAMProtocol
public import Support
public import WireJSON

/// The CNI network configuration ipamd writes once it serves addresses (docs/ipamd.md §8):
/// containerd's CRI plugin reports NetworkReady when a conflist appears in /etc/cni/net.d, so
/// writing it is ipamd's readiness signal to the kubelet.
public struct Conflist: Sendable, Equatable {
    public static let path = "/etc/cni/net.d/10-nodeboot.conflist"

    public var mtu: Int
    public var vethPrefix: String
    public var ipv6: Bool
    public var socket: String

    public init(mtu: Int, vethPrefix: String = "eni", ipv6: Bool = false, socket: String = "/run/nodeboot/ipamd.sock") {
        self.mtu = mtu
        self.vethPrefix = vethPrefix
        self.ipv6 = ipv6
        self.socket = socket
    }

    /// `cniVersion` 1.0.0 with `cniVersions` [1.0.0, 1.1.0]: libcni ≥ 1.2 (containerd 2) picks the
    /// highest it supports, older runtimes read `cniVersion` (vpc-cni.md §16's compatibility trap).
    public var json: JSON {
        [
            "cniVersion": "1.0.0", "cniVersions": ["1.0.0", "1.1.0"], "name": "nodeboot",
            "plugins": [
                [
                    "type": "nodeboot-cni", "socket": .string(socket), "mtu": .int(mtu), "vethPrefix": .string(vethPrefix),
                    "ipFamily": .string(ipv6 ? "ipv6" : "ipv4"),
                ],
                ["type": "portmap", "capabilities": ["portMappings": true], "snat": true],
            ],
        ]
    }

    public var bytes: [UInt8] { json.line }

    /// Writes the file when its bytes differ: a temporary file in the same directory, then a
    /// rename (go-cni ignores a file renamed in from elsewhere, vpc-cni.md §16). Returns whether
    /// it wrote.
    @discardableResult
    public func write(_ path: String = Conflist.path) throws(NodeFileSystem.Failure) -> Bool {
        if (try? NodeFileSystem.read(path)) == bytes { return false }
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try NodeFileSystem.makeDirectories(String(path[..<slash]))
        }
        try NodeFileSystem.writeAtomically(path, bytes, mode: 0o644)
        return true
    }
}
