/// TOML 1.0 integers and floats: `+1_000`, `0xDEAD_BEEF`, `0o755`, `0b1010`, `-3.5e-2`.
enum NumberText {
    static func parse(_ token: ArraySlice<UInt8>) throws(ValueProblem) -> TOMLValue {
        let text = String(decoding: token, as: UTF8.self)
        func invalid(_ why: String) -> ValueProblem {
            ValueProblem(reason: "invalid number '\(text)': \(why)")
        }
        var index = token.startIndex
        var negative = false
        var signed = false
        if let first = token.first, first == .plus || first == .minus {
            signed = true
            negative = first == .minus
            index += 1
        }
        guard index < token.endIndex else { throw invalid("expected digits") }

        // 0x, 0o, 0b
        if token[index] == .zero, index + 1 < token.endIndex, let radix = radix(of: token[index + 1]) {
            guard !signed else { throw invalid("hexadecimal, octal and binary integers cannot have a sign") }
            index += 2
            let digitsStart = index
            try scanDigits(token, &index, radix: radix, invalid)
            guard index == token.endIndex else { throw invalid("unexpected \(describe(token[index]))") }
            var magnitude: UInt64 = 0
            for byte in token[digitsStart..<index] where byte != .underscore {
                let digit = UInt64(byte.hexValue ?? 0)
                let shifted = magnitude.multipliedReportingOverflow(by: UInt64(radix))
                let added = shifted.partialValue.addingReportingOverflow(digit)
                guard !shifted.overflow, !added.overflow, added.partialValue <= UInt64(Int64.max) else {
                    throw ValueProblem(reason: "integer \(text) is out of range for a 64-bit signed integer")
                }
                magnitude = added.partialValue
            }
            return .integer(Int64(magnitude))
        }

        let integerStart = index
        try scanDigits(token, &index, radix: 10, invalid)
        let integerDigits = token[integerStart..<index].filter { $0 != .underscore }
        if integerDigits.count > 1 && integerDigits.first == .zero {
            throw invalid("leading zeros are not allowed")
        }
        var isFloat = false
        if index < token.endIndex && token[index] == .dot {
            index += 1
            guard index < token.endIndex, token[index].isDigit else {
                throw invalid("a decimal point must be followed by digits")
            }
            try scanDigits(token, &index, radix: 10, invalid)
            isFloat = true
        }
        if index < token.endIndex && (token[index] == UInt8(ascii: "e") || token[index] == UInt8(ascii: "E")) {
            index += 1
            if index < token.endIndex && (token[index] == .plus || token[index] == .minus) { index += 1 }
            guard index < token.endIndex, token[index].isDigit else {
                throw invalid("an exponent must have digits")
            }
            try scanDigits(token, &index, radix: 10, invalid)
            isFloat = true
        }
        guard index == token.endIndex else { throw invalid("unexpected \(describe(token[index]))") }

        if isFloat {
            let cleaned = String(decoding: token.filter { $0 != .underscore }, as: UTF8.self)
            guard let value = Double(cleaned), value.isFinite else {
                throw ValueProblem(reason: "float \(text) is out of range for a 64-bit float")
            }
            return .float(value)
        }
        var magnitude: UInt64 = 0
        for byte in integerDigits {
            let shifted = magnitude.multipliedReportingOverflow(by: 10)
            let added = shifted.partialValue.addingReportingOverflow(UInt64(byte - .zero))
            guard !shifted.overflow, !added.overflow else {
                throw ValueProblem(reason: "integer \(text) is out of range for a 64-bit signed integer")
            }
            magnitude = added.partialValue
        }
        let limit = UInt64(Int64.max) + (negative ? 1 : 0)
        guard magnitude <= limit else {
            throw ValueProblem(reason: "integer \(text) is out of range for a 64-bit signed integer")
        }
        return .integer(negative ? Int64(bitPattern: 0 &- magnitude) : Int64(magnitude))
    }

    static func radix(of byte: UInt8) -> Int? {
        switch byte {
        case UInt8(ascii: "x"): 16
        case UInt8(ascii: "o"): 8
        case UInt8(ascii: "b"): 2
        default: nil
        }
    }

    /// Advances over digits of `radix`, with single underscores allowed between two digits. At least one digit.
    static func scanDigits(
        _ token: ArraySlice<UInt8>, _ index: inout Int, radix: Int, _ invalid: (String) -> ValueProblem
    ) throws(ValueProblem) {
        func isDigit(_ byte: UInt8) -> Bool {
            guard let value = byte.hexValue else { return false }
            return value < radix
        }
        guard index < token.endIndex, isDigit(token[index]) else {
            if index < token.endIndex && token[index] == .underscore {
                throw invalid("each underscore must be between two digits")
            }
            let name = radix == 16 ? "hexadecimal digits" : radix == 8 ? "octal digits" : radix == 2 ? "binary digits" : "digits"
            throw invalid("expected \(name)")
        }
        while index < token.endIndex {
            let byte = token[index]
            if isDigit(byte) {
                index += 1
            } else if byte == .underscore {
                guard index + 1 < token.endIndex, isDigit(token[index + 1]) else {
                    throw invalid("each underscore must be between two digits")
                }
                index += 1
            } else {
                return
            }
        }
    }

    static func describe(_ byte: UInt8) -> String {
        "'\(String(decoding: [byte], as: UTF8.self))'"
    }
}

/// A TOML date/time, checked against TOML 1.0 (RFC 3339): an offset date-time (`1979-05-27T07:32:00-07:00`),
/// a local date-time, a local date or a local time.
struct DateTimeText {
    var year = 0
    var month = 0
    var day = 0
    var hasDate = false
    var hour = 0
    var minute = 0
    var second = 0
    /// The digits after the decimal point of the seconds, as written.
    var fraction: [UInt8] = []
    var hasTime = false
    /// The time zone offset in minutes east of UTC (0 for `Z`), or nil for a local date/time.
    var offsetMinutes: Int?
    /// The offset as written (`Z`, `+05:30`).
    var offsetText = ""

    init(_ token: ArraySlice<UInt8>) throws(ValueProblem) {
        var index = token.startIndex
        func number(_ count: Int, _ what: String) throws(ValueProblem) -> Int {
            guard index + count <= token.endIndex else { throw ValueProblem(reason: "expected \(what)") }
            var value = 0
            for byte in token[index..<index + count] {
                guard byte.isDigit else { throw ValueProblem(reason: "expected \(what)") }
                value = value * 10 + Int(byte - .zero)
            }
            index += count
            return value
        }
        func expect(_ byte: UInt8, _ what: String) throws(ValueProblem) {
            guard index < token.endIndex, token[index] == byte else { throw ValueProblem(reason: "expected \(what)") }
            index += 1
        }

        let dateFormat = "a date as YYYY-MM-DD"
        let timeFormat = "a time as HH:MM:SS"
        let digits = token.prefix { $0.isDigit }.count
        if digits == 4 {
            year = try number(4, dateFormat)
            try expect(.minus, dateFormat)
            month = try number(2, dateFormat)
            try expect(.minus, dateFormat)
            day = try number(2, dateFormat)
            hasDate = true
            guard (1...12).contains(month) else { throw ValueProblem(reason: "the month must be 01 to 12") }
            let days = Self.daysIn(month: month, year: year)
            guard (1...days).contains(day) else {
                throw ValueProblem(reason: "the day must be 01 to \(days) in that month")
            }
            guard index < token.endIndex else { return }
            guard [UInt8(ascii: "T"), UInt8(ascii: "t"), .space].contains(token[index]) else {
                throw ValueProblem(reason: "expected 'T' or a space between the date and the time")
            }
            index += 1
        }
        hour = try number(2, timeFormat)
        try expect(.colon, timeFormat)
        minute = try number(2, timeFormat)
        try expect(.colon, timeFormat + " (seconds are required)")
        second = try number(2, timeFormat)
        hasTime = true
        guard hour <= 23 else { throw ValueProblem(reason: "the hour must be 00 to 23") }
        guard minute <= 59 else { throw ValueProblem(reason: "the minute must be 00 to 59") }
        guard second <= 60 else { throw ValueProblem(reason: "the second must be 00 to 60") }
        if index < token.endIndex && token[index] == .dot {
            index += 1
            let start = index
            while index < token.endIndex && token[index].isDigit { index += 1 }
            guard index > start else {
                throw ValueProblem(reason: "a decimal point in the seconds must be followed by digits")
            }
            fraction = Array(token[start..<index])
        }
        guard index < token.endIndex else { return }
        guard hasDate else { throw ValueProblem(reason: "a local time cannot have a time zone offset") }
        let offsetStart = index
        switch token[index] {
        case UInt8(ascii: "Z"), UInt8(ascii: "z"):
            index += 1
            offsetMinutes = 0
        case .plus, .minus:
            let sign = token[index] == .minus ? -1 : 1
            index += 1
            let offsetFormat = "a time zone offset as Z, +HH:MM or -HH:MM"
            let hours = try number(2, offsetFormat)
            try expect(.colon, offsetFormat)
            let minutes = try number(2, offsetFormat)
            guard hours <= 23, minutes <= 59 else {
                throw ValueProblem(reason: "the time zone offset must be -23:59 to +23:59")
            }
            offsetMinutes = sign * (hours * 60 + minutes)
        default:
            throw ValueProblem(reason: "expected a time zone offset as Z, +HH:MM or -HH:MM")
        }
        offsetText = String(decoding: token[offsetStart..<index], as: UTF8.self)
        guard index == token.endIndex else {
            throw ValueProblem(reason: "unexpected characters after the time zone offset")
        }
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// How go-toml v2 writes the value it decoded from this text.
    ///
    /// Local values (`LocalDate`, `LocalTime`, `LocalDateTime`) keep the digits as written, with 'T' between date and
    /// time and at most 9 fraction digits. An offset date-time becomes a Go `time.Time` written as RFC 3339: 'T',
    /// fraction trimmed of trailing zeros (none when zero), `Z` for a zero offset, a leap second carried into the
    /// next minute.
    var canonical: String {
        let fractionDigits = fraction.prefix(9)
        guard let offset = offsetMinutes else {
            let fractionText = fractionDigits.isEmpty ? "" : "." + String(decoding: fractionDigits, as: UTF8.self)
            let time = "\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))\(fractionText)"
            switch (hasDate, hasTime) {
            case (true, true): return "\(dateText(year, month, day))T\(time)"
            case (true, false): return dateText(year, month, day)
            default: return time
            }
        }
        var (year, month, day, hour, minute, second) = (year, month, day, hour, minute, second)
        if second == 60 {
            second = 0
            minute += 1
            if minute == 60 { (minute, hour) = (0, hour + 1) }
            if hour == 24 { (hour, day) = (0, day + 1) }
            if day > Self.daysIn(month: month, year: year) { (day, month) = (1, month + 1) }
            if month == 13 { (month, year) = (1, year + 1) }
        }
        var trimmed = Array(fractionDigits)
        while trimmed.last == .zero { trimmed.removeLast() }
        let fractionText = trimmed.isEmpty ? "" : "." + String(decoding: trimmed, as: UTF8.self)
        let zone = offset == 0 ? "Z" : offsetText
        return "\(dateText(year, month, day))T\(pad(hour, 2)):\(pad(minute, 2)):\(pad(second, 2))\(fractionText)\(zone)"
    }

    func dateText(_ year: Int, _ month: Int, _ day: Int) -> String {
        "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))"
    }

    func pad(_ value: Int, _ width: Int) -> String {
        let digits = String(value)
        return String(repeating: "0", count: max(0, width - digits.count)) + digits
    }
}
