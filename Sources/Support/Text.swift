extension Duration {
    /// Whole nanoseconds (NIO's `TimeAmount`, `timespec`).
    public var nanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// The duration in seconds, fractional.
    public var seconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// The duration in milliseconds, fractional (timelines, status.json, log fields).
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }

    /// `12.3`: seconds with one decimal, for messages.
    public var tenthsOfSeconds: String { seconds.oneDecimal }

    /// `90 s`, `2.5 s`: seconds with a decimal only when it is not zero, for limits in messages.
    public var secondsText: String {
        let tenths = Int64((Double(components.attoseconds) / 1e17).rounded()) + components.seconds * 10
        return tenths % 10 == 0 ? "\(tenths / 10) s" : "\(tenths / 10).\(tenths % 10) s"
    }
}

extension Double {
    /// `12.3`: one decimal, rounded (durations in messages, timelines and log fields).
    public var oneDecimal: String {
        let tenths = Int((self * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

extension String {
    /// Padded with spaces on the right to `width` characters (columns of a timeline).
    public func padded(to width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }

    /// Padded with spaces on the left to `width` characters (right-aligned numbers).
    public func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}

extension StringProtocol {
    /// Without leading and trailing whitespace and newlines (FoundationEssentials has no
    /// `trimmingCharacters`, and full Foundation costs the agent 6 MB of resident memory).
    public var trimmed: String {
        // Indices, not reversed views: `String(_:)` of a doubly reversed sequence appended one Character at a time
        // through unspecialized generics (3 M instructions for the user data at every boot).
        var start = startIndex
        while start < endIndex, self[start].isWhitespace { start = index(after: start) }
        var end = endIndex
        while end > start, self[index(before: end)].isWhitespace { end = index(before: end) }
        return String(self[start..<end])
    }
}
