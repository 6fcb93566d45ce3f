extension StringProtocol {
    /// Without leading and trailing whitespace and newlines (FoundationEssentials has no
    /// `trimmingCharacters`, and full Foundation costs the agent 6 MB of resident memory).
    var trimmed: String {
        String(drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed())
    }
}
