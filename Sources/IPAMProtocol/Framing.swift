public import WireJSON

/// Splits a byte stream into newline-terminated messages of at most `IPAMWire.maxMessageBytes`.
public struct LineFramer: Sendable {
    private var buffer: [UInt8] = []

    public init() {}

    /// The complete lines `bytes` finishes (without their newline). A line that grows past the
    /// limit is a `badRequest`: the connection is then closed.
    public mutating func append(_ bytes: some Sequence<UInt8>) throws(ProtocolError) -> [[UInt8]] {
        buffer.append(contentsOf: bytes)
        var lines: [[UInt8]] = []
        while let end = buffer.firstIndex(of: 0x0A) {
            lines.append(Array(buffer[..<end]))
            buffer.removeSubrange(...end)
        }
        guard buffer.count <= IPAMWire.maxMessageBytes, lines.allSatisfy({ $0.count <= IPAMWire.maxMessageBytes })
        else {
            throw ProtocolError(.badRequest, "a message longer than \(IPAMWire.maxMessageBytes) bytes")
        }
        return lines
    }

    /// Bytes of an unfinished line.
    public var pending: Int { buffer.count }
}

extension JSON {
    /// The message as it goes on the socket: compact JSON and a newline.
    public var line: [UInt8] { Array(text.utf8) + [0x0A] }
}
