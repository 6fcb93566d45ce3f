extension CanonicalWriter {
    /// A float as go-toml writes it: `nan`, `inf`, `-inf`; integral values as every digit plus `.0`
    /// (Go's `FormatFloat(f, 'f', 1, 64)`); others as the shortest round-tripping digits in plain decimal notation
    /// (`FormatFloat(f, 'f', -1, 64)`).
    static func formatFloat(_ value: Double) -> String {
        if value.isNaN { return "nan" }
        if value.isInfinite { return value < 0 ? "-inf" : "inf" }
        let sign = value.sign == .minus ? "-" : ""
        let magnitude = value.magnitude
        if magnitude.rounded(.towardZero) == magnitude {
            return sign + integralDigits(magnitude) + ".0"
        }
        return sign + shortestPlainDecimal(magnitude)
    }

    /// The exact decimal digits of a non-negative integral double.
    static func integralDigits(_ value: Double) -> String {
        if value < 0x1p63 {
            return String(UInt64(value))
        }
        // value = significand × 2^shift exactly, with a 53-bit significand. Multiply out in base 10^9 limbs
        // (least significant first).
        let significand = value.significandBitPattern | (1 << 52)
        let shift = Int(value.exponent) - 52
        let base: UInt64 = 1_000_000_000
        var limbs: [UInt64] = [significand % base, (significand / base) % base, significand / base / base]
        for _ in 0..<max(shift, 0) {
            var carry: UInt64 = 0
            for index in limbs.indices {
                let doubled = limbs[index] * 2 + carry
                limbs[index] = doubled % base
                carry = doubled / base
            }
            if carry > 0 { limbs.append(carry) }
        }
        while limbs.count > 1 && limbs.last == 0 { limbs.removeLast() }
        var text = String(limbs.last ?? 0)
        for limb in limbs.dropLast().reversed() {
            let digits = String(limb)
            text += String(repeating: "0", count: 9 - digits.count) + digits
        }
        return text
    }

    /// The shortest digits that read back as `value` (Swift's `description` gives them, in either plain or exponent
    /// notation), laid out in plain decimal notation.
    static func shortestPlainDecimal(_ value: Double) -> String {
        let description = value.description
        var digits: [UInt8] = []
        var pointPosition: Int?
        var exponent = 0
        var bytes = description.utf8[...]
        while let byte = bytes.first, byte != UInt8(ascii: "e"), byte != UInt8(ascii: "E") {
            if byte == .dot {
                pointPosition = digits.count
            } else if byte.isDigit {
                digits.append(byte)
            }
            bytes = bytes.dropFirst()
        }
        if !bytes.isEmpty {
            // "e-07", "e+16"
            exponent = Int(String(decoding: bytes.dropFirst(), as: UTF8.self)) ?? 0
        }
        // The decimal point sits `point` digits after the start of `digits`.
        var point = (pointPosition ?? digits.count) + exponent
        while digits.first == .zero && digits.count > 1 {
            digits.removeFirst()
            point -= 1
        }
        while digits.last == .zero && digits.count > 1 {
            digits.removeLast()
        }
        if point <= 0 {
            return "0." + String(repeating: "0", count: -point) + String(decoding: digits, as: UTF8.self)
        }
        if point >= digits.count {
            return String(decoding: digits, as: UTF8.self) + String(repeating: "0", count: point - digits.count)
        }
        return String(decoding: digits[..<point], as: UTF8.self) + "." + String(decoding: digits[point...], as: UTF8.self)
    }
}
