import Testing
import YAML

@Suite("YAML.compose never crashes and stays fast")
struct RobustnessTests {
    @Test("20 000 mutated documents: no crash, about two seconds, and Yams agrees on a sample", arguments: [0x0F22])
    func mutations(seed: UInt64) {
        var mutator = Mutator(seed: seed)
        let documents = Documents.all.map(\.text).filter { $0.utf8.count < 4096 }
        var texts: [String] = []
        for index in 0..<20_000 { texts.append(mutator.mutate(documents[index % documents.count])) }

        let clock = ContinuousClock()
        var failures = 0
        let elapsed = clock.measure {
            for text in texts {
                do throws(YAMLError) {
                    _ = try YAML.compose(text)
                } catch {
                    failures += 1
                    #expect(error.mark.line >= 1 && error.mark.column >= 1 && !error.message.isEmpty)
                }
            }
        }
        // Debug builds are several times slower than release; the bound catches quadratic behaviour, not noise.
        #expect(elapsed < .seconds(5), "20 000 mutated documents took \(elapsed)")
        #expect(failures > 2_000 && failures < 18_000, "\(failures) of 20 000 mutated documents were rejected")

        for (index, text) in texts.enumerated() where index % 10 == 0 {
            if let disagreement = Reference.disagreement(text), !disagreement.contains("duplicate key") {
                Issue.record("mutation \(index): \(disagreement)\n--- text:\n\(text)")
            }
        }
    }

    @Test("mutated generated documents: Yams agrees", arguments: [0xF0_0001 as UInt64])
    func mutatedGenerated(seed: UInt64) {
        var generator = DocumentGenerator(seed: seed)
        var mutator = Mutator(seed: seed + 1)
        for index in 0..<1_000 {
            let text = mutator.mutate(generator.document(generator.tree()))
            if let disagreement = Reference.disagreement(text), !disagreement.contains("duplicate key") {
                Issue.record("mutation \(index): \(disagreement)\n--- text:\n\(text)")
            }
        }
    }

    /// A NodeConfig-like document of at least `size` bytes: many nodes, every scalar style.
    static func largeDocument(size: Int) -> String {
        var text = "apiVersion: node.eks.aws/v1alpha1\nkind: NodeConfig\nspec:\n  kubelet:\n    config:\n"
        var index = 0
        while text.utf8.count < size {
            text += """
                      entry\(index):
                        name: "node-\(index)"
                        labels: {a: '1', b: two, c: [x, y, z]}
                        flags:
                        - --v=2
                        - --node-ip=10.0.\(index % 256).\(index % 100)
                        script: |
                          #!/bin/sh
                          echo \(index)
                        note: >-
                          folded text
                          over two lines

                """
            index += 1
        }
        return text
    }

    @Test("a 1 MiB document reads in well under a second, even in a debug build")
    func largeDocumentIsFast() throws {
        let text = Self.largeDocument(size: 1 << 20)
        let clock = ContinuousClock()
        var root: YAMLNode?
        // The best of three runs: other tests share the machine's cores.
        var best = Duration.seconds(60)
        for _ in 0..<3 {
            best = min(best, try clock.measure { root = try YAML.compose(text) })
        }
        #expect(best < .seconds(1), "1 MiB took \(best)")
        guard case .mapping(let pairs, _) = try #require(root) else {
            Issue.record("not a mapping")
            return
        }
        #expect(pairs.count == 3)
    }

    @Test(
        "1 MiB pathological inputs finish quickly",
        arguments: [
            "long plain line", "long quoted line", "one-line flow list", "deep flow nesting", "deep block nesting",
            "many keys on one line", "many empty lines", "long comment", "many aliases", "unclosed flow",
        ])
    func pathological(name: String) {
        let size = 1 << 20
        let text: String
        switch name {
        case "long plain line": text = "key: " + String(repeating: "word ", count: size / 5)
        case "long quoted line": text = "key: \"" + String(repeating: "a\\n", count: size / 3) + "\""
        case "one-line flow list": text = "[" + String(repeating: "a, ", count: size / 3) + "]"
        case "deep flow nesting": text = String(repeating: "[", count: size)
        case "deep block nesting": text = String(repeating: "- ", count: size / 2)
        case "many keys on one line": text = "{" + String(repeating: "k: v, ", count: size / 6) + "}"
        case "many empty lines": text = "a: |\n" + String(repeating: "\n", count: size) + "  x\n"
        case "long comment": text = "# " + String(repeating: "c", count: size) + "\na: 1\n"
        case "many aliases":
            text = "a: &a [x, y, z]\nb: [" + String(repeating: "*a, ", count: size / 4) + "]\n"
        default: text = "{a: [" + String(repeating: "{b: [", count: 400) + String(repeating: "x, ", count: size / 3)
        }
        let clock = ContinuousClock()
        let elapsed = clock.measure { _ = try? YAML.compose(text) }  // Only the time matters here.
        #expect(elapsed < .seconds(2), "\(name): \(elapsed)")
    }
}
