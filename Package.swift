// swift-tools-version: 6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("MemberImportVisibility"),
]

let package = Package(
    name: "nodeboot",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "nodeboot", targets: ["nodeboot"]),
        .executable(name: "nodeboot-testbed", targets: ["nodeboot-testbed"]),
        .executable(name: "nodeboot-cni", targets: ["nodeboot-cni"]),
        // The decoders of untrusted input, for the libFuzzer targets in Fuzz/ (a package of its own).
        .library(name: "NodeConfig", targets: ["NodeConfig"]),
        .library(name: "YAML", targets: ["YAML"]),
        .library(name: "TOML", targets: ["TOML"]),
        .library(name: "NodeRender", targets: ["NodeRender"]),
        .library(name: "AWS", targets: ["AWS"]),
        .library(name: "ExecCredential", targets: ["ExecCredential"]),
        .library(name: "Support", targets: ["Support"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
    ],
    targets: [
        // The agent's small cross-cutting helpers, written once: the retry policy, duration text,
        // hex and SHA-256, the process runner, stdout/stderr writers. A leaf: no project imports.
        .target(
            name: "Support",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // Pure AWS Signature Version 4: signing and verification, no I/O.
        // Shared by the AWS client (signing) and the testbed (verifying).
        .target(
            name: "SigV4",
            dependencies: ["Support", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        // zlib, for gzip-compressed user data (Debian zlib1g-dev). Only NodeConfig imports it.
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // TOML 1.0 reader, deep merge and go-toml-v2-style canonical writer (containerd config).
        // Own code: TOMLKit needs a package this machine does not have (swift-checkit) and C++.
        .target(name: "TOML", swiftSettings: swiftSettings),
        // YAML reader (libyaml's scanner and parser in plain Swift): no Foundation, so the agent
        // stays small (Yams pulls in full Foundation: +46 MB binary, +6 MB RSS). Yams remains a
        // test dependency, the reference for differential tests.
        .target(name: "YAML", swiftSettings: swiftSettings),
        // The NodeConfig API, user-data decoding (base64, gzip, MIME), merge and validation. No I/O.
        .target(name: "NodeConfig", dependencies: ["CZlib", "TOML", "YAML"], swiftSettings: swiftSettings),
        // Pure renderers of the node's files, max pods and kubeReserved. No I/O.
        .target(name: "NodeRender", dependencies: ["NodeConfig", "Support", "TOML", "WireJSON"], swiftSettings: swiftSettings),
        // IMDSv2, credentials, retry policy, EC2/EKS/STS calls.
        .target(
            name: "AWS",
            dependencies: [
                "SigV4",
                "Support",
                "WireJSON",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                // Its CNIOBoringSSL module: TLSSession's https for PlainHTTPTransport.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings
        ),
        // The EKS bearer token (k8s-aws-v1) and the ExecCredential document.
        .target(name: "ExecCredential", dependencies: ["AWS", "SigV4", "Support", "WireJSON"], swiftSettings: swiftSettings),
        // libsystemd (Debian libsystemd-dev): sd-bus, sd-journal, sd-daemon. Only Systemd imports it.
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        // Unit control over sd-bus, sd_notify and the journal; the ServiceManager seam.
        .target(
            name: "Systemd",
            dependencies: ["CSystemd", "Support", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings
        ),
        // The few Kubernetes API calls the agent makes (version, get/create/patch Node) over TLS
        // with the cluster CA and a bearer token.
        .target(
            name: "KubeAPI",
            dependencies: ["AWS", "Support", "WireJSON"],
            swiftSettings: swiftSettings
        ),
        // The phases of the agent, wired together.
        .target(
            name: "Bootstrap",
            dependencies: [
                "AWS",
                "ExecCredential",
                "IPAMProtocol",
                "KubeAPI",
                "NodeConfig",
                "NodeRender",
                "SigV4",
                "Support",
                "Systemd",
                "TOML",
                "WireJSON",
                "YAML",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Loopback simulation of an EC2 instance and the AWS APIs, with fault injection.
        .target(
            name: "Testbed",
            dependencies: [
                "SigV4",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
            ],
            resources: [.copy("Resources")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "nodeboot",
            dependencies: [
                "AWS",
                "Bootstrap",
                "IPAM",
                "NodeRender",
                "Support",
                "Systemd",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings,
            // The toolchain links executables with --export-dynamic: the agent's 36,700 symbols in .dynsym, which the
            // Swift runtime's start-up (the backtracer's dladdr) scans linearly in every process, 1.4 M instructions,
            // and 4 MB of binary. Nothing looks the agent's own symbols up (dlsym is only for libc's).
            linkerSettings: [.unsafeFlags(["-Xlinker", "--no-export-dynamic"])]
        ),
        .executableTarget(
            name: "nodeboot-testbed",
            dependencies: [
                "Testbed",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Helpers shared by the test targets: child processes, free ports, moto.
        // JSON for the wire (the ipamd socket, the CNI plugin's stdin/stdout): no Foundation,
        // members in order, numbers as written. A leaf.
        .target(name: "WireJSON", swiftSettings: swiftSettings),
        // The ipamd socket protocol: messages, framing, the version rule, a blocking client,
        // the host veth name. Foundation-free, shared by the daemon and the per-pod plugin.
        .target(name: "IPAMProtocol", dependencies: ["WireJSON"], swiftSettings: swiftSettings),
        // rtnetlink over an AF_NETLINK socket: links, veths, addresses, routes, rules, neighbours,
        // network namespaces. Foundation-free (the per-pod CNI plugin links it). A leaf.
        .target(name: "Netlink", swiftSettings: swiftSettings),
        // The IPAM daemon (`nodeboot ipamd`, docs/ipamd.md): settings, the warm-pool decision, …
        .target(
            name: "IPAM",
            dependencies: [
                "AWS", "IPAMProtocol", "Netlink", "Support", "WireJSON",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),
        // The CNI plugin (docs/cni.md): the spec's environment, configuration, results and errors,
        // and the pod's wiring over rtnetlink. Foundation-free: it runs once per pod sandbox.
        .target(name: "CNIPlugin", dependencies: ["IPAMProtocol", "Netlink", "WireJSON"], swiftSettings: swiftSettings),
        // The plugin executable the container runtime runs (no argument parser: env and stdin).
        .executableTarget(name: "nodeboot-cni", dependencies: ["CNIPlugin"], swiftSettings: swiftSettings),
        .target(
            name: "TestSupport", dependencies: ["Support", "Systemd"], path: "Tests/TestSupport",
            swiftSettings: swiftSettings),
        .testTarget(name: "SystemdTests", dependencies: ["Systemd", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "KubeAPITests", dependencies: ["ExecCredential", "KubeAPI", "SigV4", "Testbed", "TestSupport", "WireJSON"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "IPAMTests",
            dependencies: [
                "AWS", "IPAM", "IPAMProtocol", "Netlink", "Support", "Testbed", "TestSupport", "WireJSON",
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "CNIPluginTests",
            dependencies: [
                "CNIPlugin", "IPAM", "IPAMProtocol", "Netlink", "TestSupport", "WireJSON",
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(name: "NetlinkTests", dependencies: ["Netlink"], swiftSettings: swiftSettings),
        .testTarget(name: "SupportTests", dependencies: ["Support", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "SigV4Tests", dependencies: ["SigV4", "Support"], swiftSettings: swiftSettings),
        .testTarget(name: "TOMLTests", dependencies: ["TOML", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "ExecCredentialTests", dependencies: ["AWS", "ExecCredential", "SigV4", "Support", "TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "YAMLTests", dependencies: ["YAML", "TestSupport", .product(name: "Yams", package: "Yams")],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "BootstrapTests",
            dependencies: [
                "AWS", "Bootstrap", "CNIPlugin", "ExecCredential", "IPAM", "IPAMProtocol", "KubeAPI", "Netlink", "NodeConfig",
                "NodeRender", "SigV4", "Support", "Systemd", "Testbed", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),
        // The executables as a user runs them: exit status, stdout, stderr.
        .testTarget(
            name: "CommandTests", dependencies: ["Bootstrap", "IPAMProtocol", "SigV4", "Testbed", "TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(name: "NodeRenderTests", dependencies: ["NodeRender", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "NodeConfigTests", dependencies: ["NodeConfig", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "AWSTests",
            dependencies: ["AWS", "SigV4", "Support", "Testbed", "TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "TestbedTests", dependencies: ["AWS", "SigV4", "Support", "Testbed", "TestSupport"],
            swiftSettings: swiftSettings),
    ]
)
