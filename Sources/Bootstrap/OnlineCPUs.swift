import FoundationEssentials

/// Online logical CPUs from sysfs, as nodeadm counts them for kubeReserved: CPUs under each
/// NUMA node (`node*[0-9]/cpu*[0-9]`), or the CPU directories when there are no nodes, filtered
/// by `cpu/online` (all online when that file is missing). Both roots are parameters so a test or
/// `--root` can point them at a copied tree.
public enum OnlineCPUs {
    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var description: String
    }

    public static func count(cpuDirectory: String, nodeDirectory: String) throws(Failure) -> Int {
        let online = try onlineSet(path: cpuDirectory + "/online")
        func isOnline(_ id: Int) -> Bool { online?.contains(id) ?? true }
        let nodes = entries(nodeDirectory, prefix: "node")
        if nodes.isEmpty {
            return entries(cpuDirectory, prefix: "cpu").map(\.id).filter(isOnline).count
        }
        var cpus = Set<Int>()
        for node in nodes {
            for cpu in entries(nodeDirectory + "/" + node.name, prefix: "cpu") where isOnline(cpu.id) {
                cpus.insert(cpu.id)
            }
        }
        return cpus.count
    }

    /// Names `PREFIX<digits>` in a directory (the glob `PREFIX*[0-9]` as sysfs uses it).
    static func entries(_ directory: String, prefix: String) -> [(name: String, id: Int)] {
        // A missing directory has no entries (a machine without NUMA nodes has no node directory).
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        return names.compactMap { name in
            guard name.hasPrefix(prefix), let id = Int(name.dropFirst(prefix.count)) else { return nil }
            return (name, id)
        }.sorted { $0.id < $1.id }
    }

    /// The CPU list format `0,2-4,6`; `nil` when the file does not exist.
    static func onlineSet(path: String) throws(Failure) -> Set<Int>? {
        guard let data = FileManager.default.contents(atPath: path) else { return nil }
        return try parseList(String(decoding: data, as: UTF8.self), path: path)
    }

    static func parseList(_ text: String, path: String) throws(Failure) -> Set<Int> {
        var result = Set<Int>()
        let trimmed = text.filter { !$0.isWhitespace }
        guard !trimmed.isEmpty else { return result }
        for item in trimmed.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = item.split(separator: "-", omittingEmptySubsequences: false).map { Int($0) }
            switch bounds.count {
            case 1:
                guard let single = bounds[0] else { throw Failure(description: "\(path): '\(item)' is not a CPU number") }
                result.insert(single)
            case 2:
                guard let low = bounds[0], let high = bounds[1], low <= high else {
                    throw Failure(description: "\(path): '\(item)' is not a CPU range")
                }
                result.formUnion(low...high)
            default:
                throw Failure(description: "\(path): '\(item)' has more than two parts")
            }
        }
        return result
    }
}
