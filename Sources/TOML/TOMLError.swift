/// Why a TOML document could not be read, and where.
///
/// `description` reads like `line 3, column 9: expected '=' after key "address", found ':'`. Errors about a whole
/// statement (a key or table defined twice) have `column` 0 and read like `line 5: table [grpc] defined twice`.
public struct TOMLError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The 1-based line of the problem.
    public var line: Int
    /// The 1-based column (in Unicode scalars) of the problem, or 0 when the error concerns the whole line.
    public var column: Int
    /// What is wrong, in words a person can act on.
    public var message: String

    /// An error at this line and column (0: the whole line).
    public init(line: Int, column: Int, message: String) {
        self.line = line
        self.column = column
        self.message = message
    }

    /// `line L, column C: message`, or `line L: message` when the column is 0.
    public var description: String {
        column > 0 ? "line \(line), column \(column): \(message)" : "line \(line): \(message)"
    }

    /// An error at a UTF-8 byte offset of a document, with its line and column computed from the bytes.
    init(in bytes: [UInt8], at offset: Int, wholeLine: Bool = false, _ message: String) {
        let end = min(max(offset, 0), bytes.count)
        var line = 1
        var lineStart = 0
        for index in 0..<end where bytes[index] == UInt8(ascii: "\n") {
            line += 1
            lineStart = index + 1
        }
        // Count Unicode scalars, not bytes: skip UTF-8 continuation bytes (0b10xxxxxx).
        var column = 1
        for index in lineStart..<end where bytes[index] & 0xC0 != 0x80 {
            column += 1
        }
        self.init(line: line, column: wholeLine ? 0 : column, message: message)
    }
}
