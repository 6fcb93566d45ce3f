import Crypto

/// Lowercase hexadecimal text of bytes, and the SHA-256 digest in that form (SigV4's hashes,
/// the run phase's configuration digests, CA fingerprints, journal ids).
public enum Hex {
    /// `00ff…`: two lowercase digits a byte.
    public static func encode<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The SHA-256 digest of `bytes` as 64 lowercase hex digits.
    public static func sha256<Bytes: Sequence>(_ bytes: Bytes) -> String where Bytes.Element == UInt8 {
        encode(SHA256.hash(data: Array(bytes)))
    }
}
