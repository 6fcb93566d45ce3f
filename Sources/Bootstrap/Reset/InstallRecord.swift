import Support
import WireJSON

#if canImport(Glibc)
    import Glibc
#endif

/// `/var/lib/nodeboot/installed.json`: every node path `init` has written on this node (files
/// and links, over all its runs), the directories it had to create for them, and, for a file
/// that existed before nodeboot first wrote it (Debian's `/etc/containerd/config.toml`,
/// `/etc/hosts` on an outpost), a copy of it under `/var/lib/nodeboot/original/`. It is noted
/// before apply writes anything, and it is what `nodeboot reset` undoes: it survives a reboot,
/// which `/run/nodeboot/status.json` does not.
struct InstallRecord: Equatable {
    struct Entry: Equatable {
        enum Kind: String { case file, link }
        var path: String
        var kind: Kind
        /// The file was there before nodeboot first wrote it: its copy is under `originalDirectory`.
        var original: Bool = false
        var originalMode: UInt16?
        /// A link that pointed elsewhere before nodeboot first made it.
        var originalTarget: String?
    }

    var schema = "nodeboot.installed/v1"
    /// The node name of the last init (for `reset --delete-node`).
    var nodeName = ""
    var entries: [Entry] = []
    /// Directories init created, parents first.
    var directories: [String] = []
    /// `--config-cache` paths (host paths, as given).
    var configCaches: [String] = []

    static let path = NodePaths.stateDirectory + "/installed.json"
    static let originalDirectory = NodePaths.stateDirectory + "/original"

    /// The record on the node; an empty one when there is none.
    static func load(_ paths: NodePaths) throws(NodeBootError) -> InstallRecord? {
        let file = paths.node(path)
        let bytes: [UInt8]?
        do {
            bytes = try NodeFileSystem.read(file, limit: 4 << 20)
        } catch {
            throw NodeBootError(.io, "cannot read \(file): \(error)", cause: error)
        }
        guard let bytes else { return nil }
        do {
            return try InstallRecord(json: JSONObject(parsing: bytes))
        } catch {
            throw NodeBootError(
                .io, "\(file) is not nodeboot's record of the files init wrote: \(error)",
                hint: "remove it; nodeboot init writes it again (nodeboot reset then removes only what later runs wrote)")
        }
    }

    /// Notes `files` and `links` (node paths) before apply writes them: a path seen for the first
    /// time gets its missing parent directories noted and, if it exists, a copy of what is there.
    static func note(
        files: [String], links: [String], configCache: String?, nodeName: String, paths: NodePaths
    ) throws(NodeBootError) {
        var record = try load(paths) ?? InstallRecord()
        let before = record
        record.nodeName = nodeName
        let known = Set(record.entries.map(\.path))
        for (path, kind) in files.map({ ($0, Entry.Kind.file) }) + links.map({ ($0, Entry.Kind.link) })
        where !known.contains(path) {
            var entry = Entry(path: path, kind: kind)
            let full = paths.node(path)
            if let target = NodeFileSystem.linkTarget(full) {
                entry.originalTarget = target
            } else if let status = NodeFileSystem.status(full), status.isRegular {
                let copy = paths.node(originalDirectory + path)
                do {
                    let bytes = try NodeFileSystem.read(full) ?? []
                    try NodeFileSystem.makeDirectories(
                        String(copy[..<(copy.lastIndex(of: "/") ?? copy.endIndex)]), mode: 0o700)
                    try NodeFileSystem.writeAtomically(copy, bytes, mode: 0o600)
                } catch {
                    throw NodeBootError(
                        .io, "cannot keep a copy of \(full) (nodeboot reset restores it) in \(copy): \(error)",
                        hint: "check free space on /var", cause: error)
                }
                entry.original = true
                entry.originalMode = status.mode
            }
            for directory in missingParents(of: path, paths: paths) where !record.directories.contains(directory) {
                record.directories.append(directory)
            }
            record.entries.append(entry)
        }
        if let configCache, !record.configCaches.contains(configCache) { record.configCaches.append(configCache) }
        guard record != before else { return }
        try record.save(paths)
    }

    /// `path`'s ancestors that do not exist yet, outermost first.
    static func missingParents(of path: String, paths: NodePaths) -> [String] {
        var missing: [String] = []
        var current = path
        while let slash = current.lastIndex(of: "/"), slash != current.startIndex {
            current = String(current[..<slash])
            if NodeFileSystem.exists(paths.node(current)) { break }
            missing.insert(current, at: 0)
        }
        return missing
    }

    func save(_ paths: NodePaths) throws(NodeBootError) {
        let file = paths.node(Self.path)
        do {
            try NodeFileSystem.makeDirectories(paths.node(NodePaths.stateDirectory), mode: 0o700)
            try NodeFileSystem.writeAtomically(file, Array(json.sortedKeys.prettyText.utf8) + [0x0A], mode: 0o600)
        } catch {
            throw NodeBootError(.io, "cannot write \(file): \(error)", hint: "check free space on /var", cause: error)
        }
    }
}

extension InstallRecord {
    init(json: JSONObject) throws(JSONShapeError) {
        schema = try json.string("schema")
        nodeName = try json.string("nodeName")
        entries = try json.objects("entries") { (entry) throws(JSONShapeError) in
            Entry(
                path: try entry.string("path"), kind: try entry.value("kind"),
                original: try entry.optionalBool("original") ?? false,
                originalMode: try entry.optionalInt("originalMode").map { UInt16(truncatingIfNeeded: $0) },
                originalTarget: try entry.optionalString("originalTarget"))
        }
        directories = try json.strings("directories")
        configCaches = try json.strings("configCaches", required: false)
    }

    var json: JSON {
        let entries = entries.map { entry in
            JSON.object(
                [
                    .init("path", .string(entry.path)), .init("kind", .string(entry.kind.rawValue)),
                    .init("original", .bool(entry.original)),
                ]
                    + JSON.member("originalMode", entry.originalMode.map { JSON.int(Int($0)) })
                    + JSON.member("originalTarget", entry.originalTarget.map(JSON.string)))
        }
        return [
            "schema": .string(schema), "nodeName": .string(nodeName), "entries": .array(entries),
            "directories": .array(directories.map(JSON.string)), "configCaches": .array(configCaches.map(JSON.string)),
        ]
    }
}
