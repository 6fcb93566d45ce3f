extension Array where Element == UInt8 {
    /// The first index at or after `start` where `needle` begins. A plain byte search: String's
    /// `contains`/`split` go through _StringProcessing and cost milliseconds on a 100 KB text.
    public func firstIndex(of needle: [UInt8], from start: Int = 0) -> Int? {
        guard let first = needle.first, count >= needle.count else { return nil }
        var index = Swift.max(start, 0)
        while index <= count - needle.count {
            if self[index] == first && self[index..<index + needle.count].elementsEqual(needle) {
                return index
            }
            index += 1
        }
        return nil
    }
}
