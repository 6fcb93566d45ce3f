/// Unit names as `systemd-escape` makes them.
public enum UnitName {
    /// `systemd-escape --path --suffix=SUFFIX PATH`: the path without its outer and repeated `/`,
    /// each remaining `/` as `-`, every byte other than ASCII letters, digits, `:`, `_` and a
    /// non-leading `.` as `\xNN`; the root is `-`.
    public static func path(_ path: String, suffix: String) -> String {
        let components = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !components.isEmpty else { return "-." + suffix }
        var name = ""
        for (index, component) in components.enumerated() {
            if index > 0 { name += "-" }
            for (offset, byte) in component.utf8.enumerated() {
                let plain =
                    (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5a) || (byte >= 0x61 && byte <= 0x7a)
                    || byte == 0x3a || byte == 0x5f || (byte == 0x2e && !(index == 0 && offset == 0))
                if plain {
                    name.unicodeScalars.append(Unicode.Scalar(byte))
                } else {
                    let hex = String(byte, radix: 16)
                    name += "\\x" + (hex.count < 2 ? "0" + hex : hex)
                }
            }
        }
        return name + "." + suffix
    }
}
