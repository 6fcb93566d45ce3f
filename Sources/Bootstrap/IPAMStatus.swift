import FoundationEssentials
import IPAMProtocol
import Support
public import WireJSON

/// The `ipamd:` section of `nodeboot status` (docs/ipamd.md §8, §9): a live `status` request on
/// ipamd's socket, else the state the daemon last wrote to `/run/nodeboot/ipamd/status.json`
/// (marked stale; it also holds a refusal or a start error the daemon exited with), else "not
/// running".
public struct IPAMStatus: Sendable, Equatable {
    public static let statusFile = "/run/nodeboot/ipamd/status.json"
    /// The whole wait for the daemon's answer (docs/ipamd.md §7: `nodeboot status` uses 500 ms).
    public static let deadline: Duration = .milliseconds(500)

    public enum Source: Sendable, Equatable {
        /// The daemon answered on `socket`.
        case live(socket: String)
        /// No answer (`reason` says why); the body is the file at `file`.
        case stale(reason: String, file: String)
        /// No answer (`reason`), and no file (`file` says why).
        case notRunning(reason: String, file: String)
    }

    public var source: Source
    /// The status object (the reply's `status`, or the file's content); nil when not running.
    public var body: JSON?
    /// A live reply that refused the request (`notReady`, `version`, …).
    public var refusal: String?
    /// What containerd needs besides ipamd for pods to get addresses: the conflist ipamd writes
    /// once it serves, and the plugin in its bin dir (nil: not looked at).
    public var podNetwork: PodNetwork?

    public struct PodNetwork: Sendable, Equatable {
        public var conflist: Bool
        public var plugin: Bool
    }

    /// The conflist ipamd writes and the plugin `init` links (docs/ipamd.md §8, docs/cni.md).
    public static let conflist = "/etc/cni/net.d/10-nodeboot.conflist"
    public static let plugin = "/opt/cni/bin/nodeboot-cni"

    public init(source: Source, body: JSON?, refusal: String? = nil) {
        self.source = source
        self.body = body
        self.refusal = refusal
    }

    /// One `status` request on the socket under `paths`' root, bounded by `deadline`.
    public static func live(_ paths: NodePaths, deadline: Duration = Self.deadline) throws(NodeBootError) -> JSON {
        let socket = paths.node(IPAMWire.socketPath)
        let client = IPAMClient(socketPath: socket, connectTimeout: deadline, answerTimeout: deadline)
        let reply: Reply
        do {
            reply = try client.send(.status)
        } catch {
            throw NodeBootError(
                .io, "ipamd did not answer a status request: \(error.message)",
                hint:
                    "systemctl status nodeboot-ipamd; the state it last wrote is in \(paths.node(statusFile)) (nodeboot status shows it)"
            )
        }
        switch reply {
        case .status(let body): return body
        case .failed(let error):
            throw NodeBootError(.io, "ipamd at \(socket) refused the status request: \(error)")
        default:
            throw NodeBootError(.internal, "ipamd at \(socket) answered a status request with another reply")
        }
    }

    /// `nodeboot status --ipamd -o json`: the live status as one line of compact JSON.
    public static func liveJSON(_ paths: NodePaths, deadline: Duration = Self.deadline) throws(NodeBootError) -> String {
        try live(paths, deadline: deadline).text + "\n"
    }

    /// The live state if the daemon answers, else its last file, else "not running".
    public static func read(_ paths: NodePaths, deadline: Duration = Self.deadline) -> IPAMStatus {
        var status = readDaemon(paths, deadline: deadline)
        // Not for a daemon that stopped on a refusal or a failure: its lines say what matters.
        if let body = status.body, body["state"] == nil {
            status.podNetwork = PodNetwork(
                conflist: NodeFileSystem.exists(paths.node(conflist)), plugin: NodeFileSystem.exists(paths.node(plugin)))
        }
        return status
    }

    static func readDaemon(_ paths: NodePaths, deadline: Duration) -> IPAMStatus {
        let socket = paths.node(IPAMWire.socketPath)
        let file = paths.node(statusFile)
        let client = IPAMClient(socketPath: socket, connectTimeout: deadline, answerTimeout: deadline)
        let reason: String
        do {
            switch try client.send(.status) {
            case .status(let body): return IPAMStatus(source: .live(socket: socket), body: body)
            case .failed(let error): return IPAMStatus(source: .live(socket: socket), body: nil, refusal: "\(error)")
            default: reason = "an answer that is not a status reply"
            }
        } catch {
            reason = NodeFileSystem.exists(socket) ? error.message : "no \(socket)"
        }
        let bytes: [UInt8]?
        do {
            bytes = try NodeFileSystem.read(file, limit: 1 << 20)
        } catch {
            return IPAMStatus(source: .notRunning(reason: reason, file: "\(error)"), body: nil)
        }
        guard let bytes else {
            return IPAMStatus(source: .notRunning(reason: reason, file: "no \(file)"), body: nil)
        }
        let stale = Source.stale(reason: reason, file: file)
        do {
            let json = try JSON(parsing: bytes)
            // A whole reply line written as the file is read as its status.
            if json["ok"]?.bool == true, let body = json["status"] { return IPAMStatus(source: stale, body: body) }
            return IPAMStatus(source: stale, body: json)
        } catch {
            return IPAMStatus(source: stale, body: nil, refusal: "\(file) is not JSON: \(error)")
        }
    }

    /// For a person: where the state comes from, then one line per fact, ENI and error.
    public func text() -> String {
        var out = "ipamd: "
        switch source {
        case .live(let socket):
            out += "live (\(socket))\n"
        case .stale(let reason, let file):
            out += "STALE (\(reason)); last state from \(file)\n"
        case .notRunning(let reason, let file):
            return out + "not running (\(reason); \(file))\n"
        }
        if let refusal { out += "  error: \(refusal)\n" }
        if let podNetwork {
            let missing =
                (podNetwork.conflist ? [] : ["no \(Self.conflist) yet (ipamd writes it once it has an address to give)"])
                + (podNetwork.plugin ? [] : ["no \(Self.plugin) (nodeboot init --daemon nodeboot-ipamd links it)"])
            out +=
                "  pod network: "
                + (missing.isEmpty
                    ? "ready (\(Self.conflist), \(Self.plugin))"
                    : "not ready: "
                        + missing.joined(separator: "; ")) + "\n"
        }
        guard let body else { return out }
        guard body.members != nil else { return out + "  error: the status is not a JSON object: \(body.text)\n" }
        return out + Self.lines(body).map { "  \($0)\n" }.joined()
    }

    /// The members the status reply carries (docs/ipamd.md §7), each rendered when present, in a
    /// fixed order; then any other scalar member as `name: value`.
    static func lines(_ body: JSON) -> [String] {
        var lines: [String] = []
        var shown: Set<String> = []
        func value(_ key: String) -> JSON? {
            shown.insert(key)
            guard let value = body[key], !value.isNull else { return nil }
            return value
        }
        // `state` (a refusal, a start error) says more than `ready`.
        let ready = value("ready")?.bool
        if let state = value("state") {
            lines.append("state: \(scalar(state))")
        } else if let ready {
            lines.append("state: \(ready ? "ready" : "not ready")")
        }
        if let mode = value("mode") { lines.append("mode: \(scalar(mode))") }
        let instance = value("instance").map(scalar)
        let type = value("instanceType").map(scalar)
        switch (instance, type) {
        case (let instance?, let type?): lines.append("instance: \(instance) (\(type))")
        case (let instance?, nil): lines.append("instance: \(instance)")
        case (nil, let type?): lines.append("instance type: \(type)")
        case (nil, nil): break
        }
        if let limits = value("limits") { lines.append("limits: \(scalar(limits))") }
        if let maxPods = value("maxPods") { lines.append("max pods: \(scalar(maxPods))") }
        var pool: [String] = []
        for key in ["assigned", "cooling", "free"] {
            if let count = value(key) { pool.append("\(scalar(count)) \(key)") }
        }
        if let total = value("total") {
            lines.append("pool: \(scalar(total)) addresses" + (pool.isEmpty ? "" : ": " + pool.joined(separator: ", ")))
        } else if !pool.isEmpty {
            lines.append("pool: " + pool.joined(separator: ", "))
        }
        if let target = value("target") { lines.append("target: \(scalar(target))") }
        for eni in value("enis")?.array ?? [] { lines.append(Self.eni(eni)) }
        if let at = value("lastReconcile") { lines.append("last reconcile: \(time(at))") }
        let adds = value("adds").map { "\(scalar($0)) adds" }
        let deletes = value("deletes").map { "\(scalar($0)) deletes" }
        let requests = [adds, deletes].compactMap { $0 }
        if !requests.isEmpty { lines.append("requests: " + requests.joined(separator: ", ")) }
        for error in value("errors")?.array ?? [] { lines += Self.error(error) }
        for member in body.members ?? [] where !shown.contains(member.key) {
            switch member.value {
            case .string, .number, .bool: lines.append("\(member.key): \(scalar(member.value))")
            default: break
            }
        }
        return lines
    }

    /// `eni eni-0a1: device 0 (primary), 10 addresses, 5 assigned`.
    static func eni(_ eni: JSON) -> String {
        var parts: [String] = []
        if let device = eni["device"], !device.isNull {
            parts.append("device \(scalar(device))" + (eni["primary"]?.bool == true ? " (primary)" : ""))
        } else if eni["primary"]?.bool == true {
            parts.append("primary")
        }
        if let addresses = eni["addresses"], !addresses.isNull { parts.append("\(scalar(addresses)) addresses") }
        if let assigned = eni["assigned"], !assigned.isNull { parts.append("\(scalar(assigned)) assigned") }
        let id = eni["id"]?.string ?? "(no id)"
        return "eni \(id)" + (parts.isEmpty ? "" : ": " + parts.joined(separator: ", "))
    }

    /// `error: 2026-12-05T01:02:03Z (3 times) message` and its hint; a plain string (a refused
    /// setting's line) as it is.
    static func error(_ error: JSON) -> [String] {
        guard error.members != nil else { return ["error: \(scalar(error))"] }
        var line = "error: "
        if let at = error["at"], !at.isNull { line += time(at) + " " }
        if let count = error["count"]?.int, count > 1 { line += "(\(count) times) " }
        line += error["message"].map(scalar) ?? "(no message)"
        var lines = [line]
        if let hint = error["hint"], !hint.isNull { lines.append("  hint: \(scalar(hint))") }
        return lines
    }

    /// Unix milliseconds as UTC ISO 8601 (anything else as written).
    static func time(_ value: JSON) -> String {
        guard let milliseconds = value.int else { return scalar(value) }
        return Date(timeIntervalSince1970: Double(milliseconds) / 1000).formatted(.iso8601)
    }

    /// A string without quotes, a number or boolean as written, anything else as compact JSON.
    static func scalar(_ value: JSON) -> String {
        switch value {
        case .string(let text): text
        case .number(let text): text
        case .bool(let flag): flag ? "true" : "false"
        default: value.text
        }
    }
}
