import Bootstrap
import Foundation
import NodeConfig
import TestSupport
import Testing

/// AL2-era user data (Tests/BootstrapSh/*.sh) run by bash with `/etc/eks/bootstrap.sh` replaced
/// by a stub that records its arguments, so quoting, variables and line continuations are bash's;
/// each translation is compared with its `.yaml` byte for byte and read back by init's decoder.
/// The VPC of the DNS fallback is `10.0.0.0/16` (so 172.20.0.0/16 where the user data gives no
/// service CIDR with its endpoint and CA).
@Suite("bootstrap.sh: AL2-era user data → NodeConfig")
struct BootstrapShFixtureTests {
    static let directory = Paths.packageRoot.appendingPathComponent("Tests/BootstrapSh")
    static let vpc = ["10.0.0.0/16"]

    static var fixtures: [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []).filter { $0.hasSuffix(".sh") }
            .map { String($0.dropLast(3)) }.sorted()
    }

    /// The arguments bash passes to bootstrap.sh when it runs `script`.
    static func arguments(of script: String) async throws -> [String] {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("bootstrap-sh-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: work) }
        let stub = work + "/bootstrap.sh"
        try Data("#!/bin/bash\nfor a in \"$@\"; do printf '%s\\0' \"$a\"; done > \"\(work)/arguments\"\n".utf8)
            .write(to: URL(fileURLWithPath: stub))
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: stub)
        let text = try String(contentsOf: directory.appendingPathComponent(script + ".sh"), encoding: .utf8)
        let user = work + "/user-data.sh"
        try Data(text.replacingOccurrences(of: "/etc/eks/bootstrap.sh", with: stub).utf8)
            .write(to: URL(fileURLWithPath: user))
        let result = try await ChildProcess.run(["/bin/bash", user], environment: ChildProcess.cleanEnvironment())
        #expect(result.status == 0, "\(script): \(result.stderr)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: work + "/arguments"))
        return bytes.split(separator: 0, omittingEmptySubsequences: false).dropLast().map {
            String(decoding: $0, as: UTF8.self)
        }
    }

    @Test("each example translates to its .yaml, which init's decoder reads without a warning", arguments: fixtures)
    func translates(_ name: String) async throws {
        let arguments = try await Self.arguments(of: name)
        let flags = BootstrapScript.parse(arguments)
        let translation = try BootstrapScript.translate(
            flags, containerdConfig: nil, vpcCIDRs: BootstrapScript.needsVPCCIDRs(flags) ? Self.vpc : nil)
        let golden = Self.directory.appendingPathComponent(name + ".yaml")
        if ProcessInfo.processInfo.environment["NODEBOOT_WRITE_GOLDEN"] == "1" {
            try Data(translation.document.utf8).write(to: golden)
        }
        let expected = try String(contentsOf: golden, encoding: .utf8)
        #expect(translation.document == expected)
        let documents = try UserData.documents(Array(translation.document.utf8), source: name)
        let decoded = NodeConfigDecoder.decode(try #require(documents.first))
        #expect(decoded.diagnostics.isEmpty, "\(decoded.diagnostics)")
        #expect(decoded.config?.spec.cluster.name.isEmpty == false)
    }

    @Test("there are examples to test")
    func present() {
        #expect(Self.fixtures.count >= 7)
    }
}
