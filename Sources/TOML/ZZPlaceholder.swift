// Temporary until the TOML target lands.
public indirect enum TOMLValue: Sendable, Equatable {
    case string(String)
    case table(TOMLTable)
}
public struct TOMLTable: Sendable, Equatable {
    public var values: [String: TOMLValue] = [:]
    public func merged(with patch: TOMLTable) -> TOMLTable { patch }
}
public struct TOMLError: Error, Sendable, Equatable {
    public var line: Int
    public var column: Int
    public var message: String
}
public enum TOML {
    public static func parse(_ text: String) throws(TOMLError) -> TOMLTable { TOMLTable() }
    public static func canonical(_ table: TOMLTable) -> String { "" }
}
