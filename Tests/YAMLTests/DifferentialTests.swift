import Foundation
import TestSupport
import Testing
import YAML

/// The shared conformance data, `<project root>/../shared/conformance`, read in place and never modified.
enum Conformance {
    /// nil when the data is not there (the tests that need it say so).
    static let directory: URL? =
        FileManager.default.fileExists(atPath: Paths.conformance.appendingPathComponent("nodeadm").path)
        ? Paths.conformance : nil

    /// Every `.yaml`, `.yml` and `.json` file under `nodeadm/`, as paths relative to it, sorted.
    static func yamlFiles() -> [String] {
        guard let root = directory?.appendingPathComponent("nodeadm"),
            let enumerator = FileManager.default.enumerator(atPath: root.path)
        else { return [] }
        var files: [String] = []
        while let path = enumerator.nextObject() as? String {
            if path.hasSuffix(".yaml") || path.hasSuffix(".yml") || path.hasSuffix(".json") { files.append(path) }
        }
        return files.sorted()
    }

    /// The text of `nodeadm/<relativePath>`.
    static func text(_ relativePath: String) throws -> String {
        let directory = try #require(directory, "shared/conformance not found next to the project root")
        return try String(
            contentsOf: directory.appendingPathComponent("nodeadm").appendingPathComponent(relativePath), encoding: .utf8)
    }

    /// The documents a file holds: the file itself, or for a MIME multipart message (`MIME-Version:` first) the
    /// bodies of its `application/node.eks.aws` parts, split on the boundary.
    static func documents(in text: String) -> [String] {
        guard text.hasPrefix("MIME-Version:") else { return [text] }
        guard let range = text.range(of: "boundary=\"") else { return [] }
        let afterBoundary = text[range.upperBound...]
        let boundary = "--" + afterBoundary.prefix { $0 != "\"" }
        var bodies: [String] = []
        for part in text.components(separatedBy: boundary).dropFirst() {
            guard let split = part.range(of: "\n\n") else { continue }
            let headers = part[..<split.lowerBound]
            if headers.contains("application/node.eks.aws") { bodies.append(String(part[split.upperBound...])) }
        }
        return bodies
    }
}

@Suite("YAML.compose agrees with Yams")
struct DifferentialTests {
    @Test("the conformance data has YAML and JSON files to read")
    func conformanceFilesExist() throws {
        let files = Conformance.yamlFiles()
        #expect(files.count >= 40, "found \(files.count) files under \(String(describing: Conformance.directory))")
        let mime = try Conformance.documents(in: Conformance.text("mime-userdata-merge/config.yaml"))
        #expect(mime.count == 2, "the MIME user data has two NodeConfig parts")
    }

    @Test("every conformance YAML/JSON file (and every NodeConfig part of MIME files) reads the same")
    func conformanceFiles() throws {
        var documents = 0
        for file in Conformance.yamlFiles() {
            for (index, text) in Conformance.documents(in: try Conformance.text(file)).enumerated() {
                documents += 1
                let disagreement = Reference.disagreement(text)
                #expect(disagreement == nil, "\(file) part \(index): \(disagreement ?? "")")
                if case .failure(let mark, let message) = Reference.ours(text) {
                    Issue.record("\(file) part \(index) should read: \(mark): \(message)")
                }
            }
        }
        #expect(documents >= 40)
    }

    @Test("hand-written documents read the same", arguments: Documents.all.map(\.name))
    func handWritten(name: String) throws {
        let text = try #require(Documents.all.first { $0.name == name }?.text)
        let disagreement = Reference.disagreement(text)
        #expect(disagreement == nil, "\(disagreement ?? "")\n--- text:\n\(text)")
    }

    @Test("there are at least 40 hand-written documents and all are valid YAML")
    func handWrittenCount() {
        #expect(Documents.all.count >= 40)
        for (name, text) in Documents.all where Reference.ours(text).isFailure {
            Issue.record("\(name): \(Reference.ours(text))")
        }
    }
}
