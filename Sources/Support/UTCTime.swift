public import FoundationEssentials

/// UTC calendar arithmetic (proleptic Gregorian, Howard Hinnant's civil-from-days), for the
/// timestamps every run writes and signs: SigV4's `X-Amz-Date`, status.json's times, IMDS's
/// credential expiry. Foundation's Calendar and ISO8601FormatStyle give the same answers, but
/// their first use in a process loads time zone and calendar machinery and its run-time
/// conformance lookups, a cost every boot unit paid for a handful of timestamps.
public enum UTCTime {
    public struct Components: Sendable, Equatable {
        public var year: Int
        public var month: Int
        public var day: Int
        public var hour: Int
        public var minute: Int
        public var second: Int

        public init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int) {
            self.year = year
            self.month = month
            self.day = day
            self.hour = hour
            self.minute = minute
            self.second = second
        }
    }

    /// The date's fields in UTC, seconds rounded down (as `Calendar.dateComponents` gives them).
    public static func components(_ date: Date) -> Components {
        let seconds = Int64(date.timeIntervalSince1970.rounded(.down))
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - days * 86400
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return Components(
            year: Int(year), month: Int(month), day: Int(day), hour: Int(secondOfDay / 3600),
            minute: Int(secondOfDay % 3600 / 60), second: Int(secondOfDay % 60))
    }

    /// The date of UTC fields; nil when one is out of its range (a day the month does not have, second 60).
    public static func date(_ c: Components) -> Date? {
        guard (1...12).contains(c.month), (1...daysIn(month: c.month, year: c.year)).contains(c.day),
            (0...23).contains(c.hour), (0...59).contains(c.minute), (0...59).contains(c.second)
        else { return nil }
        let year = Int64(c.month <= 2 ? c.year - 1 : c.year)
        let era = (year >= 0 ? year : year - 399) / 400
        let yearOfEra = year - era * 400
        let monthIndex = Int64(c.month > 2 ? c.month - 3 : c.month + 9)
        let dayOfYear = (153 * monthIndex + 2) / 5 + Int64(c.day) - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        let days = era * 146_097 + dayOfEra - 719_468
        let seconds = days * 86400 + Int64(c.hour * 3600 + c.minute * 60 + c.second)
        return Date(timeIntervalSince1970: Double(seconds))
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// `2026-12-05T07:00:00Z`: what `date.formatted(.iso8601)` prints (UTC, whole seconds).
    public static func iso8601(_ date: Date) -> String {
        let c = components(date)
        return "\(digits(c.year, 4))-\(digits(c.month, 2))-\(digits(c.day, 2))T\(digits(c.hour, 2)):"
            + "\(digits(c.minute, 2)):\(digits(c.second, 2))Z"
    }

    /// `20261205T070000Z`: SigV4's `X-Amz-Date`.
    public static func basic(_ date: Date) -> String {
        let c = components(date)
        return "\(digits(c.year, 4))\(digits(c.month, 2))\(digits(c.day, 2))T\(digits(c.hour, 2))"
            + "\(digits(c.minute, 2))\(digits(c.second, 2))Z"
    }

    /// Exactly `YYYY-MM-DDTHH:MM:SSZ` (IMDS's credential `Expiration`), fields in range; nil for any other form
    /// (fractional seconds, an offset), which the caller hands to Foundation's parser.
    public static func parseISO8601Seconds(_ text: String) -> Date? {
        let b = Array(text.utf8)
        guard b.count == 20, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"), b[10] == UInt8(ascii: "T"),
            b[13] == UInt8(ascii: ":"), b[16] == UInt8(ascii: ":"), b[19] == UInt8(ascii: "Z")
        else { return nil }
        func number(_ range: Range<Int>) -> Int? {
            var value = 0
            for index in range {
                guard b[index] >= UInt8(ascii: "0"), b[index] <= UInt8(ascii: "9") else { return nil }
                value = value * 10 + Int(b[index] - UInt8(ascii: "0"))
            }
            return value
        }
        guard let year = number(0..<4), let month = number(5..<7), let day = number(8..<10),
            let hour = number(11..<13), let minute = number(14..<16), let second = number(17..<19)
        else { return nil }
        return date(Components(year: year, month: month, day: day, hour: hour, minute: minute, second: second))
    }

    /// `value` in decimal, zero-padded on the left to `width` digits (not negative: years before 1 AD are not dates
    /// this agent writes).
    static func digits(_ value: Int, _ width: Int) -> String {
        let text = String(value)
        return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
    }
}
