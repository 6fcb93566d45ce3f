/// Reading and writing TOML the way nodeadm does: a strict TOML 1.0 reader, and a writer that reproduces byte for byte
/// how Go's pelletier/go-toml v2 marshals a `map[string]interface{}` (nodeadm's containerd `config.toml`).
public enum TOML {
    /// The deepest nesting of tables and arrays a document may have; deeper documents are rejected with an error
    /// rather than risking the stack.
    public static let maximumDepth = 128

    /// Reads a TOML 1.0 document.
    ///
    /// - Throws: `TOMLError` with the line, column and a message for the first problem found: invalid syntax,
    ///   a key or table defined twice, a bad escape or number, a control character, nesting beyond `maximumDepth`.
    public static func parse(_ text: String) throws(TOMLError) -> TOMLTable {
        var parser = Parser(text)
        return try parser.parseDocument()
    }

    /// The document go-toml v2 (`toml.Marshal`) writes for the same table, byte for byte.
    ///
    /// Within each table: key/value lines sorted by key bytes, then each sub-table (and array of tables) in key order
    /// as its own `[dotted.header]` (`[[header]]`) section. A blank line separates the sections, except before the
    /// first section of a table that has no key/value lines of its own. Strings are literal (`'…'`) unless they hold
    /// `'`, a newline or a control character, in which case they are basic strings (`"…"`) with escapes. See
    /// `CanonicalWriter` for every rule. An empty table gives an empty document.
    public static func canonical(_ table: TOMLTable) -> String {
        var writer = CanonicalWriter()
        writer.writeTable(table, path: [], header: false)
        return writer.output
    }
}
