import KubeAPI

/// The kubelet's flags as systemd passes `$NODEADM_KUBELET_ARGS`: split at whitespace;
/// `--flag=value` or `--flag value`.
struct KubeletFlags: Sendable {
    var words: [String]

    init(_ flags: [String]) {
        words = flags.flatMap { $0.split(whereSeparator: \.isWhitespace).map(String.init) }
    }

    /// Every value given to `name`, in order.
    func values(_ name: String) -> [String] {
        var result: [String] = []
        var index = 0
        while index < words.count {
            let word = words[index]
            if word == name, index + 1 < words.count {
                result.append(words[index + 1])
                index += 2
                continue
            }
            if word.hasPrefix(name + "=") { result.append(String(word.dropFirst(name.count + 1))) }
            index += 1
        }
        return result
    }

    func last(_ name: String) -> String? { values(name).last }

    /// `--node-labels=k=v,k2=v2`: every occurrence, later keys winning (the kubelet's map flag
    /// accumulates).
    func nodeLabels() throws(NodeBootError) -> [String: String] {
        var labels: [String: String] = [:]
        for value in values("--node-labels") {
            for pair in value.split(separator: ",") where !pair.isEmpty {
                guard let equals = pair.firstIndex(of: "="), equals != pair.startIndex else {
                    throw NodeBootError(
                        .input, "kubelet flag --node-labels: '\(pair)' is not key=value",
                        hint: "write --node-labels=key=value,key2=value2 (spec.kubelet.flags)")
                }
                labels[String(pair[..<equals])] = String(pair[pair.index(after: equals)...])
            }
        }
        return labels
    }

    /// `--register-with-taints=key=value:Effect,key2:Effect`: the last occurrence (the flag is
    /// set, not appended).
    func taints() throws(NodeBootError) -> [Node.Taint] {
        guard let value = last("--register-with-taints") else { return [] }
        var taints: [Node.Taint] = []
        for spec in value.split(separator: ",") where !spec.isEmpty {
            guard let colon = spec.lastIndex(of: ":") else {
                throw Self.badTaint(spec, "has no :Effect")
            }
            let effect = String(spec[spec.index(after: colon)...])
            guard ["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(effect) else {
                throw Self.badTaint(spec, "effect '\(effect)' is not NoSchedule, PreferNoSchedule or NoExecute")
            }
            let keyValue = spec[..<colon]
            let parts = keyValue.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let key = String(parts[0])
            guard !key.isEmpty else { throw Self.badTaint(spec, "has no key") }
            let taint = Node.Taint(key: key, value: parts.count > 1 ? String(parts[1]) : nil, effect: effect)
            taints.removeAll { $0.key == taint.key && $0.effect == taint.effect }
            taints.append(taint)
        }
        return taints
    }

    static func badTaint(_ spec: Substring, _ problem: String) -> NodeBootError {
        NodeBootError(
            .input, "kubelet flag --register-with-taints: '\(spec)' \(problem)",
            hint: "write --register-with-taints=key=value:NoSchedule,key2:NoExecute (spec.kubelet.flags)")
    }
}
