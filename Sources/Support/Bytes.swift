#if canImport(Glibc)
    import Glibc
#endif

extension Array where Element == UInt8 {
    /// The first index at or after `start` where `needle` begins. A plain byte search: String's
    /// `contains`/`split` go through _StringProcessing and cost milliseconds on a 100 KB text.
    /// Candidates are found with `memchr` (the embedded instance table is searched at every boot:
    /// a loop over its 110 KB cost 0.45 M instructions).
    public func firstIndex(of needle: [UInt8], from start: Int = 0) -> Int? {
        guard let first = needle.first, count >= needle.count else { return nil }
        let last = count - needle.count
        var index = Swift.max(start, 0)
        guard index <= last else { return nil }
        return withUnsafeBufferPointer { haystack -> Int? in
            needle.withUnsafeBufferPointer { pattern -> Int? in
                guard let base = haystack.baseAddress, let patternBase = pattern.baseAddress else { return nil }
                while index <= last {
                    guard let hit = memchr(base + index, Int32(first), last - index + 1) else { return nil }
                    let at = UnsafeRawPointer(base).distance(to: UnsafeRawPointer(hit))
                    if memcmp(base + at, patternBase, pattern.count) == 0 { return at }
                    index = at + 1
                }
                return nil
            }
        }
    }
}
