import Foundation
import Testing

/// The shared conformance data, `<project root>/../shared/conformance`, read in place and never modified.
enum Conformance {
    /// Found by walking up from this file (`<root>/Tests/TOMLTests/` → `<root>/../shared/conformance`), with
    /// `/work/shared/conformance` as the last resort for a package checked out elsewhere.
    static let directory: URL? = {
        var candidates: [URL] = []
        var folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while folder.path != "/" && !folder.path.isEmpty {
            candidates.append(folder.appendingPathComponent("shared/conformance"))
            folder = folder.deletingLastPathComponent()
        }
        candidates.append(URL(fileURLWithPath: "/work/shared/conformance"))
        return candidates.first { FileManager.default.fileExists(atPath: $0.appendingPathComponent("nodeadm").path) }
    }()

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
