/// JSON as block YAML (strings always double-quoted, so nothing is re-typed).
extension JSONText {
    /// The value as block YAML, without a trailing newline.
    public func yaml() -> String {
        var out = ""
        Self.writeYAML(self, indent: 0, into: &out)
        return out.hasSuffix("\n") ? String(out.dropLast()) : out
    }

    static func writeYAML(_ value: JSONText, indent: Int, into out: inout String) {
        let pad = String(repeating: "  ", count: indent)
        switch value {
        case .object(let members):
            for (key, member) in members {
                switch member {
                case .object(let inner) where !inner.isEmpty:
                    out += "\(pad)\(key):\n"
                    writeYAML(member, indent: indent + 1, into: &out)
                case .array(let items) where !items.isEmpty:
                    out += "\(pad)\(key):\n"
                    writeYAML(member, indent: indent + 1, into: &out)
                default:
                    out += "\(pad)\(key): \(member.rendered(indent: 0))\n"
                }
            }
        case .array(let items):
            for item in items {
                switch item {
                case .object(let inner) where !inner.isEmpty:
                    var nested = ""
                    writeYAML(item, indent: indent + 1, into: &nested)
                    out += "\(pad)- " + nested.dropFirst(pad.count + 2)
                default:
                    out += "\(pad)- \(item.rendered(indent: 0))\n"
                }
            }
        default:
            out += "\(pad)\(value.rendered(indent: 0))\n"
        }
    }
}
