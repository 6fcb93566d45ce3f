/// Just enough PEM to tell a certificate bundle from something else.
enum PEM {
    enum Problem: Equatable {
        /// No PEM armor at all.
        case notPEM
        case malformed(String)
    }

    /// nil when `bytes` is one or more well-formed `CERTIFICATE` blocks.
    static func certificateProblem(_ bytes: [UInt8]) -> Problem? {
        let text = String(decoding: bytes, as: UTF8.self)
        guard text.contains("-----BEGIN ") else { return .notPEM }
        var blocks = 0
        var body: [UInt8]?
        var label = ""
        for rawLine in text.split(omittingEmptySubsequences: true, whereSeparator: { $0 == "\n" || $0 == "\r\n" }) {
            let line = rawLine.trimmingCharacters(in: " \t\r")
            if line.isEmpty { continue }
            if line.hasPrefix("-----BEGIN ") && line.hasSuffix("-----") {
                if body != nil { return .malformed("block \(blocks + 1) (\(label)) has no END line") }
                label = String(line.dropFirst(11).dropLast(5))
                guard label == "CERTIFICATE" else { return .malformed("it holds a '\(label)' block, not a CERTIFICATE") }
                body = []
            } else if line.hasPrefix("-----END ") {
                guard let content = body else { return .malformed("an END line without BEGIN") }
                guard Base64.decode(content, ignoringWhitespace: true).map({ !$0.isEmpty && $0[0] == 0x30 }) == true
                else { return .malformed("the body of block \(blocks + 1) is not base64 DER") }
                blocks += 1
                body = nil
            } else if body != nil {
                body! += Array(line.utf8)
            }  // Text between blocks (comments) is ignored, as OpenSSL does.
        }
        if body != nil { return .malformed("block \(blocks + 1) (\(label)) has no END line") }
        return blocks == 0 ? .malformed("no CERTIFICATE block") : nil
    }
}

extension Substring {
    fileprivate func trimmingCharacters(in set: String) -> String {
        var view = self[...]
        while let first = view.first, set.contains(first) { view = view.dropFirst() }
        while let last = view.last, set.contains(last) { view = view.dropLast() }
        return String(view)
    }
}
