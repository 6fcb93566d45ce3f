// swift-tools-version: 6.1
// libFuzzer targets for the decoders of untrusted input (issue 15). A package of its own: a fuzz
// target cannot be part of the agent's normal build. SwiftPM links an executable on Linux with
// `--defsym main=<module>_main`, a symbol `-parse-as-library` never emits; so each target defines
// `<module>_main` itself and hands its callback to libFuzzer's LLVMFuzzerRunDriver (FuzzSupport.fuzzMain),
// and libFuzzer's own main is never linked in.
// Built and run by scripts/fuzz.py:
//   swift build --package-path Fuzz -c debug -Xswiftc -sanitize=fuzzer,address -Xswiftc -parse-as-library \
//     -Xswiftc -use-ld=lld
// Seed corpora: Fuzz/corpus/<target>/ (committed; regenerated from the conformance data and the
// bad-input corpus with `scripts/fuzz.py --seed`).
import PackageDescription

let package = Package(
    name: "nodeboot-fuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(name: "nodeboot", path: "..")],
    targets: [
        // libFuzzer's LLVMFuzzerRunDriver, declared for Swift.
        .target(name: "CFuzzDriver"),
        .target(
            name: "FuzzSupport",
            dependencies: [
                "CFuzzDriver", .product(name: "AWS", package: "nodeboot"), .product(name: "Support", package: "nodeboot"),
            ]),
        .executableTarget(
            name: "fuzz-userdata", dependencies: ["FuzzSupport", .product(name: "NodeConfig", package: "nodeboot")]),
        .executableTarget(name: "fuzz-yaml", dependencies: ["FuzzSupport", .product(name: "YAML", package: "nodeboot")]),
        .executableTarget(name: "fuzz-toml", dependencies: ["FuzzSupport", .product(name: "TOML", package: "nodeboot")]),
        .executableTarget(
            name: "fuzz-maxpods", dependencies: ["FuzzSupport", .product(name: "NodeRender", package: "nodeboot")]),
        .executableTarget(
            name: "fuzz-aws",
            dependencies: ["FuzzSupport", .product(name: "AWS", package: "nodeboot")]),
        .executableTarget(
            name: "fuzz-execinfo", dependencies: ["FuzzSupport", .product(name: "ExecCredential", package: "nodeboot")]),
    ]
)
