public import NodeConfig

/// systemd environment drop-ins from `spec.instance.environment`: `default` sets the manager's
/// `DefaultEnvironment` (every daemon's environment), any other key a unit's `Environment`.
public enum SystemdEnvironment {
    public static let defaultPath = "/etc/systemd/system.conf.d/environment.conf"

    public static func unitPath(_ unit: String) -> String { "/etc/systemd/system/\(unit).service.d/environment.conf" }

    /// The drop-ins to write (maps that are empty write nothing, as in nodeadm).
    public static func files(_ environment: [String: [String: String]]) -> [NodeFile] {
        environment.keys.sorted().compactMap { unit in
            guard let variables = environment[unit], !variables.isEmpty else { return nil }
            let isDefault = unit == "default"
            let directive = isDefault ? "DefaultEnvironment" : "Environment"
            var text = isDefault ? "[Manager]\n" : "[Service]\n"
            for (key, value) in variables.sorted(by: { $0.key < $1.key }) {
                text += "\(directive)=\"\(key)=\(escape(value))\"\n"
            }
            // The manager's environment reaches every daemon; a unit's drop-in its own daemon (a
            // drop-in for a unit nodeboot does not run only needs the reload).
            let units = isDefault ? Daemon.allCases.map(\.unit) : Daemon(rawValue: unit).map { [$0.unit] } ?? []
            return NodeFile(isDefault ? defaultPath : unitPath(unit), text, units: units, reloadsSystemd: true)
        }
    }

    /// Go's `strconv.Quote` without the outer quotes, then `%` → `%%` (no specifier expansion).
    /// Unlike nodeadm, an escaped quote at either end of the value is kept (nodeadm trims every
    /// leading and trailing `"` after quoting, which turns `a"` into `a\`).
    public static func escape(_ value: String) -> String {
        var out = ""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{07}": out += "\\a"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            case "\u{0B}": out += "\\v"
            case "%": out += "%%"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7f {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\x" + (hex.count < 2 ? "0" + hex : hex)
                } else if scalar.properties.generalCategory == .control || scalar.properties.generalCategory == .format
                    || scalar.value == 0x2028 || scalar.value == 0x2029
                {
                    let hex = String(scalar.value, radix: 16)
                    out +=
                        scalar.value > 0xffff
                        ? "\\U" + String(repeating: "0", count: 8 - hex.count) + hex
                        : "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}

/// `/run/systemd/resolved.conf.d/40-eks.conf`, only when nameservers or domains are set.
public enum ResolvedConfig {
    public static let path = "/run/systemd/resolved.conf.d/40-eks.conf"

    public static func render(_ network: NodeConfig.Network) -> String? {
        guard !network.nameservers.isEmpty || !network.domains.isEmpty else { return nil }
        var text = "[Resolve]\n"
        if !network.nameservers.isEmpty { text += "DNS=" + network.nameservers.joined(separator: " ") }
        text += "\n"
        if !network.domains.isEmpty { text += "Domains=" + network.domains.joined(separator: " ") }
        return text + "\n"
    }
}

/// An outpost's API server addresses in `/etc/hosts`: appended once (nodeadm appends on every
/// run, so a re-run duplicates them).
public enum HostsFile {
    public static let path = "/etc/hosts"

    /// The new content, or nil when every `address\thost` line is already there.
    public static func appending(addresses: [String], host: String, to current: [UInt8]?) -> [UInt8]? {
        let text = String(decoding: current ?? [], as: UTF8.self)
        let present = Set(text.split(separator: "\n").map { Self.fields($0) })
        var added = ""
        for address in addresses where !present.contains([address, host]) {
            added += "\(address)\t\(host)\n"
        }
        guard !added.isEmpty else { return nil }
        let separator = text.isEmpty || text.hasSuffix("\n") ? "" : "\n"
        return Array((text + separator + added).utf8)
    }

    static func fields(_ line: Substring) -> [String] {
        line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
    }
}
