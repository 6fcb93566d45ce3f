import Netlink

/// Bytes from hex text: white space is ignored and `#` starts a comment to the end of the line,
/// so an expected message can be written field by field.
func hex(_ text: String) -> [UInt8] {
    var digits: [UInt8] = []
    for line in text.split(separator: "\n", omittingEmptySubsequences: false) {
        let code = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        digits += code.utf8.filter { !($0 == 0x20 || $0 == 0x09) }
    }
    precondition(digits.count % 2 == 0, "odd number of hex digits in \(text)")
    return stride(from: 0, to: digits.count, by: 2).map { index in
        UInt8(String(decoding: digits[index..<index + 2], as: UTF8.self), radix: 16)!
    }
}

/// A little-endian u32 as hex text, for values only known at run time (a descriptor).
func le32(_ value: UInt32) -> String {
    (0..<4).map { byte in
        let part = String(value >> (8 * byte) & 0xFF, radix: 16)
        return part.count == 1 ? "0" + part : part
    }.joined()
}

/// The datagrams `body` sent through a RouteNetlink over a fake socket that acknowledges
/// everything.
func sentBytes(_ body: (RouteNetlink) throws -> Void) throws -> [[UInt8]] {
    let socket = RecordingNetlinkSocket()
    try body(RouteNetlink(socket: socket))
    return socket.sent
}

/// The one datagram `body` sent.
func sentOne(_ body: (RouteNetlink) throws -> Void) throws -> [UInt8] {
    let sent = try sentBytes(body)
    precondition(sent.count == 1, "expected one datagram, sent \(sent.count)")
    return sent[0]
}

/// A RouteNetlink whose fake socket answers each request with captured datagrams (their sequence
/// numbers changed to the request's).
func replaying(_ captured: [String]) -> RouteNetlink {
    let datagrams = captured.map(hex)
    return RouteNetlink(socket: RecordingNetlinkSocket { RecordingNetlinkSocket.answering($0, with: datagrams) })
}

/// Readable hex of bytes, 16 to a line, for failure messages.
func dumpHex(_ bytes: [UInt8]) -> String {
    stride(from: 0, to: bytes.count, by: 16).map { start in
        bytes[start..<min(start + 16, bytes.count)].map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }
            .joined(separator: " ")
    }.joined(separator: "\n")
}

extension IPPrefix {
    /// Test shorthand: `p("10.0.97.30/32")`.
    static func p(_ text: String) -> IPPrefix { IPPrefix(text)! }
}

extension IPAddress {
    static func a(_ text: String) -> IPAddress { IPAddress(text)! }
}
