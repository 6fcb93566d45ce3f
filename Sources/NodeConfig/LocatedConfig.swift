/// Where a field's value came from: the document (source, MIME part) and line.
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
    public var origin: DocumentOrigin
    public var line: Int?

    public init(origin: DocumentOrigin, line: Int?) {
        self.origin = origin
        self.line = line
    }

    public var description: String { line.map { "\(origin): line \($0)" } ?? "\(origin)" }
}

/// A NodeConfig with the place each field was set (dotted path → location), kept through
/// merging so that validation after the merge can name the document and line at fault.
public struct LocatedConfig: Sendable, Equatable {
    public var config: NodeConfig
    public var locations: [String: SourceLocation]
    /// The documents merged into this config, in order.
    public var documents: [DocumentOrigin]

    public init(config: NodeConfig, locations: [String: SourceLocation] = [:], documents: [DocumentOrigin] = []) {
        self.config = config
        self.locations = locations
        self.documents = documents
    }

    /// Merges `later` over this config with nodeadm's rules (`NodeConfig.merged(with:)`);
    /// locations of `later` win, list items appended keep their own locations.
    public func merged(with later: LocatedConfig) throws(ConfigDiagnostic) -> LocatedConfig {
        var locations = self.locations
        let flagOffset = config.spec.kubelet.flags.count
        for (field, location) in later.locations {
            if field.hasPrefix("spec.kubelet.flags["), let index = Int(field.dropFirst(19).dropLast()) {
                locations["spec.kubelet.flags[\(index + flagOffset)]"] = location
            } else if field != "spec.kubelet.flags" || self.locations[field] == nil {
                locations[field] = location
            }
        }
        let merged: NodeConfig
        do {
            merged = try config.merged(with: later.config)
        } catch {
            var diagnostic = error
            if let location = later.locations["spec.containerd.config"] {
                diagnostic.origin = location.origin
                diagnostic.line = location.line.map { $0 + (diagnostic.line ?? 1) }
            }
            throw diagnostic
        }
        return LocatedConfig(config: merged, locations: locations, documents: documents + later.documents)
    }

    /// The place to report a problem with `field`: where it was set, else where its nearest parent
    /// was (`spec.cluster` for a missing `spec.cluster.name`), else the last document.
    public func location(of field: String) -> SourceLocation {
        if let location = locations[field] { return location }
        // A parent that was set (e.g. `spec.cluster` given, `name` missing).
        var parent = field
        while let dot = parent.lastIndex(of: ".") {
            parent = String(parent[..<dot])
            if let location = locations[parent] { return location }
        }
        return SourceLocation(origin: documents.last ?? DocumentOrigin(source: "config"), line: nil)
    }
}
