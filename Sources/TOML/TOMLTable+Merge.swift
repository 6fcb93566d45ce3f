extension TOMLTable {
    /// nodeadm's merge of a user's containerd TOML over its generated config (mergo `WithOverride` on the decoded
    /// maps): where both sides hold a table the tables merge key by key, recursively; any other value in `patch`
    /// (a scalar, an array, an array of tables, or a table over a non-table) replaces the base value whole.
    /// Keys only in `self` are kept.
    public func merged(with patch: TOMLTable) -> TOMLTable {
        var result = self
        for (key, value) in patch.values {
            if case .table(let patchTable) = value, case .table(let baseTable) = result[key] {
                result[key] = .table(baseTable.merged(with: patchTable))
            } else {
                result[key] = value
            }
        }
        return result
    }
}
