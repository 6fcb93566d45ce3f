import Foundation
import Support
import Testing

@Suite("UTC timestamps without Foundation's calendar: the same text and dates as Foundation")
struct UTCTimeTests {
    /// Leap days, century rules, month ends, the epoch, fractional seconds (rounded down), and a spread of instants.
    static let instants: [Double] =
        [
            0, 0.999, 59.5, 951_782_400, 951_868_799.75, 4_107_542_400, 1_709_164_800, 1_735_689_599, 1_735_689_600,
            2_147_483_647, 1_780_000_000.123, 253_402_300_799,
        ] + (0..<200).map { Double($0) * 1_234_567.891 + 946_684_800 }

    @Test("iso8601 is date.formatted(.iso8601); basic is SigV4's YYYYMMDDTHHMMSSZ")
    func formats() {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC")!
        for instant in Self.instants {
            let date = Date(timeIntervalSince1970: instant)
            #expect(UTCTime.iso8601(date) == date.formatted(.iso8601), "\(instant)")
            let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
            let expected = String(
                format: "%04d%02d%02dT%02d%02d%02dZ", c.year!, c.month!, c.day!, c.hour!, c.minute!, c.second!)
            #expect(UTCTime.basic(date) == expected, "\(instant)")
        }
    }

    @Test("parseISO8601Seconds reads what Foundation reads, and only YYYY-MM-DDTHH:MM:SSZ with fields in range")
    func parse() throws {
        for instant in Self.instants {
            let text = Date(timeIntervalSince1970: instant).formatted(.iso8601)
            let parsed = try #require(UTCTime.parseISO8601Seconds(text), "\(text)")
            #expect(parsed == (try Date(text, strategy: .iso8601)), "\(text)")
            #expect(parsed.timeIntervalSince1970 == instant.rounded(.down), "\(text)")
        }
        for text in [
            "2024-02-30T00:00:00Z", "2023-02-29T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z",
            "2024-01-01T00:60:00Z", "2024-01-01T00:00:60Z", "2024-01-01T00:00:00.5Z", "2024-01-01T00:00:00+00:00",
            "2024-01-01 00:00:00Z", "2024-1-01T00:00:00Z", "", "2024-01-01T00:00:0xZ",
        ] {
            #expect(UTCTime.parseISO8601Seconds(text) == nil, "\(text)")
        }
        #expect(UTCTime.parseISO8601Seconds("2024-02-29T23:59:59Z") == Date(timeIntervalSince1970: 1_709_251_199))
        #expect(UTCTime.parseISO8601Seconds("2000-02-29T00:00:00Z") == Date(timeIntervalSince1970: 951_782_400))
    }
}
