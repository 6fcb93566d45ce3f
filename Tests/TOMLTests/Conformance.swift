import Foundation
import TestSupport
import Testing

/// The shared conformance data, `<project root>/../shared/conformance`, read in place and never modified.
enum Conformance {
    /// nil when the data is not there (the tests that need it say so).
    static let directory: URL? =
        FileManager.default.fileExists(atPath: Paths.conformance.appendingPathComponent("nodeadm").path)
        ? Paths.conformance : nil

    /// The text of `nodeadm/<relativePath>`.
    static func nodeadm(_ relativePath: String) throws -> String {
        let directory = try #require(directory, "shared/conformance not found next to the project root")
        let url = directory.appendingPathComponent("nodeadm").appendingPathComponent(relativePath)
        return try String(contentsOf: url, encoding: .utf8)
    }

    /// Whether `nodeadm/<relativePath>` exists.
    static func exists(_ relativePath: String) -> Bool {
        guard let directory else { return false }
        return FileManager.default.fileExists(atPath: directory.appendingPathComponent("nodeadm/\(relativePath)").path)
    }

    /// The block under `config: |` in a NodeConfig YAML, dedented: the user's containerd TOML.
    static func containerdConfigBlock(in yaml: String) -> String? {
        let lines = yaml.split(separator: "\n", omittingEmptySubsequences: false)
        guard let start = lines.firstIndex(where: { $0.trimmingCharacters(in: .whitespaces) == "config: |" }) else {
            return nil
        }
        var block: [Substring] = []
        var indent: Int?
        for line in lines[(start + 1)...] {
            if line.trimmingCharacters(in: .whitespaces).isEmpty {
                block.append("")
                continue
            }
            let leading = line.prefix { $0 == " " }.count
            if indent == nil { indent = leading }
            guard let indent, leading >= indent else { break }
            block.append(line.dropFirst(indent))
        }
        while block.last == "" { block.removeLast() }
        return block.joined(separator: "\n") + "\n"
    }
}
