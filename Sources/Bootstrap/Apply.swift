public import NodeRender
import Support

/// What apply did (or, with `--dry-run`, would do) to one file.
public struct FileChange: Sendable, Equatable {
    public enum Action: String, Sendable, Codable {
        case created, updated, unchanged
    }

    public var path: String
    public var action: Action
    public var mode: UInt16
    public var size: Int
    /// A unified diff from the old content (dry run only).
    public var diff: String?
}

/// The apply phase: the changed files written all or nothing (`NodeFileSystem.writeAll`: staged,
/// flushed, then renamed) with their modes; unchanged files (same bytes and mode) are not
/// touched, so their inode and mtime stay.
public struct Applier: Sendable {
    public var paths: NodePaths

    public init(paths: NodePaths) { self.paths = paths }

    /// Compares every file with the node; nothing is written.
    public func plan(_ files: [NodeFile], withDiffs: Bool) throws(NodeBootError) -> [FileChange] {
        var changes: [FileChange] = []
        for file in files {
            let path = paths.node(file.path)
            let current: [UInt8]?
            do {
                current = try NodeFileSystem.read(path)
            } catch {
                throw NodeBootError(.io, "cannot read \(path): \(error)", cause: error)
            }
            let mode = NodeFileSystem.status(path)?.mode
            let action: FileChange.Action =
                current == nil ? .created : (current == file.bytes && mode == file.mode ? .unchanged : .updated)
            var diff: String?
            if withDiffs && action != .unchanged {
                diff = UnifiedDiff.render(
                    old: current.map { String(decoding: $0, as: UTF8.self) } ?? "",
                    new: String(decoding: file.bytes, as: UTF8.self), oldName: current == nil ? "/dev/null" : "a\(file.path)",
                    newName: "b\(file.path)")
                if current == file.bytes, let mode {
                    diff = "mode \(String(mode, radix: 8)) → \(String(file.mode, radix: 8)) \(file.path)\n"
                }
            }
            changes.append(FileChange(path: file.path, action: action, mode: file.mode, size: file.bytes.count, diff: diff))
        }
        return changes
    }

    /// Writes the files `plan` marks as created or updated, and makes each of `links` (node
    /// path, target) a symbolic link to its target, in one all-or-nothing batch (links after
    /// the files).
    public func apply(_ files: [NodeFile], links: [(path: String, target: String)] = []) throws(NodeBootError)
        -> [FileChange]
    {
        var changes = try plan(files, withDiffs: false)
        let writes = zip(files, changes).filter { $0.1.action != .unchanged }.map {
            (path: paths.node($0.0.path), bytes: $0.0.bytes, mode: $0.0.mode)
        }
        var linkWrites: [(path: String, target: String)] = []
        for link in links {
            let change = linkChange(link.path, target: link.target, dryRun: false)
            if change.action != .unchanged { linkWrites.append((paths.node(link.path), link.target)) }
            changes.append(change)
        }
        do {
            try NodeFileSystem.writeAll(writes, links: linkWrites)
        } catch {
            throw NodeBootError(
                .io, "cannot write \(error.path): \(error)",
                hint: error.changedTargets
                    ? "the filesystem refused a rename midway: the files before it are new, the rest old; check `dmesg` for a read-only remount, then run nodeboot init again"
                    : "check free space and permissions; no file was changed (every file is staged before any is replaced)",
                cause: error)
        }
        return changes
    }
}

extension Applier {
    /// `path` is a symbolic link to `target` (replaced atomically when it points elsewhere).
    public func ensureLink(_ path: String, target: String, dryRun: Bool) throws(NodeBootError) -> FileChange {
        let change = linkChange(path, target: target, dryRun: dryRun)
        if change.action != .unchanged && !dryRun {
            let full = paths.node(path)
            do {
                try NodeFileSystem.linkAtomically(full, target: target)
            } catch {
                throw NodeBootError(.io, "cannot link \(full) to \(target): \(error)", cause: error)
            }
        }
        return change
    }

    /// What making `path` a link to `target` changes (with a diff line in a dry run).
    func linkChange(_ path: String, target: String, dryRun: Bool) -> FileChange {
        let current = NodeFileSystem.linkTarget(paths.node(path))
        let action: FileChange.Action = current == nil ? .created : (current == target ? .unchanged : .updated)
        return FileChange(
            path: path, action: action, mode: 0o777, size: target.utf8.count,
            diff: dryRun && action != .unchanged ? "link \(path) -> \(target)\n" : nil)
    }
}

/// A line-based unified diff (LCS), enough for configuration files.
public enum UnifiedDiff {
    public static func render(old: String, new: String, oldName: String, newName: String, context: Int = 3) -> String {
        let a = lines(old)
        let b = lines(new)
        // Longest common subsequence table, from the end.
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in stride(from: a.count - 1, through: 0, by: -1) {
            for j in stride(from: b.count - 1, through: 0, by: -1) {
                table[i][j] = a[i] == b[j] ? table[i + 1][j + 1] + 1 : max(table[i + 1][j], table[i][j + 1])
            }
        }
        enum Edit { case same(String), removed(String), added(String) }
        var edits: [Edit] = []
        var i = 0
        var j = 0
        while i < a.count || j < b.count {
            if i < a.count && j < b.count && a[i] == b[j] {
                edits.append(.same(a[i]))
                i += 1
                j += 1
            } else if i < a.count && (j == b.count || table[i + 1][j] >= table[i][j + 1]) {
                edits.append(.removed(a[i]))
                i += 1
            } else {
                edits.append(.added(b[j]))
                j += 1
            }
        }
        var out = "--- \(oldName)\n+++ \(newName)\n"
        var index = 0
        var oldLine = 1
        var newLine = 1
        while index < edits.count {
            guard let firstChange = edits[index...].firstIndex(where: { if case .same = $0 { false } else { true } })
            else { break }
            let start = max(index, firstChange - context)
            // Everything before the first change is unchanged context.
            oldLine += start - index
            newLine += start - index
            var end = firstChange
            var sameRun = 0
            while end < edits.count {
                if case .same = edits[end] {
                    sameRun += 1
                    if sameRun > context * 2 { break }
                } else {
                    sameRun = 0
                }
                end += 1
            }
            end = min(edits.count, end - max(0, sameRun - context))
            var body = ""
            var oldCount = 0
            var newCount = 0
            for edit in edits[start..<end] {
                switch edit {
                case .same(let line):
                    body += " \(line)\n"
                    oldCount += 1
                    newCount += 1
                case .removed(let line):
                    body += "-\(line)\n"
                    oldCount += 1
                case .added(let line):
                    body += "+\(line)\n"
                    newCount += 1
                }
            }
            out +=
                "@@ -\(oldCount == 0 ? oldLine - 1 : oldLine),\(oldCount) +\(newCount == 0 ? newLine - 1 : newLine),\(newCount) @@\n"
                + body
            oldLine += oldCount
            newLine += newCount
            index = end
        }
        return out
    }

    static func lines(_ text: String) -> [String] {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        if lines.last == "" { lines.removeLast() }
        return lines
    }
}
