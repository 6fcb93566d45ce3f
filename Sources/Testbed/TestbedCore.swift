import Foundation
import Logging
import SigV4
import Synchronization

/// The testbed's request handling and its mutable state (IMDS tokens, fault rules, the
/// request log, EC2's network model, the Kubernetes objects), shared by the listeners.
final class TestbedCore: Sendable {
    struct ActiveFault {
        var rule: FaultRule
        var remaining: Int?
    }

    struct State {
        var faults: [ActiveFault] = []
        /// IMDS token → expiry.
        var tokens: [String: Date] = [:]
        var records: [RecordedRequest] = []
        var network: NetworkModel
    }

    /// In-process hooks run on attach and detach, before EC2's answer.
    struct NetworkHooks {
        var onAttach: (@Sendable (ENIEvent) async -> Void)?
        var onDetach: (@Sendable (ENIEvent) async -> Void)?
    }

    let configuration: TestbedConfiguration
    let instance: InstanceModel
    let role: RoleCredentials
    let instanceTypes: [String: TestbedConfiguration.InstanceType]
    let staticKeys: [String: TestbedConfiguration.StaticKey]
    let logger: Logger
    let state: Mutex<State>
    let kubeStore = KubeStore()
    /// The kube API server's CA certificate (PEM).
    let kubeCAPEM: String
    /// The cluster whose tokens the kube API server accepts.
    let kubeClusterName: String
    /// `host:port` of the kube API server, known once it is bound.
    let kubeAddressBox = Mutex("127.0.0.1:0")
    /// Watch responses being written; shutdown lets them end cleanly first.
    let openWatches = Mutex(0)
    let networkHooks = Mutex(NetworkHooks())
    /// The instances besides `instance` (`fleet`), each with its own IMDS prefix and role keys.
    let fleet: Fleet
    /// AWS-like throttling of EC2, EKS and STS (`rateLimits`; off when empty).
    let rateLimiter: RateLimiter

    var kubeAddress: String { kubeAddressBox.withLock { $0 } }
    var kubeEndpoint: String { "https://" + kubeAddress }
    /// `host:port` clients are told to use: `kubeAPI.advertiseEndpoint`'s, else the listener's.
    var advertisedKubeAddress: String { configuration.kubeAPI.advertised?.address ?? kubeAddress }
    /// What DescribeCluster reports when the cluster names no endpoint.
    var advertisedKubeEndpoint: String { "https://" + advertisedKubeAddress }

    init(
        configuration: TestbedConfiguration, instance: InstanceModel, role: RoleCredentials, kubeCAPEM: String,
        network: NetworkModel, logger: Logger, fleet: Fleet = Fleet()
    ) {
        self.configuration = configuration
        self.instance = instance
        self.role = role
        self.instanceTypes = InstanceTypes.table(configuration.instanceTypes)
        var keys: [String: TestbedConfiguration.StaticKey] = [:]
        for key in configuration.staticKeys { keys[key.accessKeyId] = key }
        self.staticKeys = keys
        self.logger = logger
        self.fleet = fleet
        self.rateLimiter = RateLimiter(configuration.rateLimits)
        self.kubeCAPEM = kubeCAPEM
        self.kubeClusterName =
            configuration.kubeAPI.clusterName ?? configuration.clusters.first?.name ?? "my-cluster"
        self.state = Mutex(
            State(faults: configuration.faults.map { ActiveFault(rule: $0, remaining: $0.count) }, network: network))
    }

    // MARK: Faults

    func setFaults(_ rules: [FaultRule]) {
        state.withLock { $0.faults = rules.map { ActiveFault(rule: $0, remaining: $0.count) } }
    }

    func faults() -> [FaultRule] {
        state.withLock { $0.faults.map(\.rule) }
    }

    /// The first rule matching the request that still applies; uses up one of its `count`.
    func takeFault(_ endpoint: FaultRule.Endpoint, path: String, action: String?) -> FaultRule? {
        state.withLock { state in
            for index in state.faults.indices {
                let rule = state.faults[index].rule
                guard rule.matches(endpoint: endpoint, path: path, action: action) else { continue }
                if let remaining = state.faults[index].remaining {
                    guard remaining > 0 else { continue }
                }
                if let probability = rule.probability, Double.random(in: 0..<1) >= probability { continue }
                if let remaining = state.faults[index].remaining { state.faults[index].remaining = remaining - 1 }
                return rule
            }
            return nil
        }
    }

    /// Answers with the fault's effect, or with `normal()` when it has none (or only latency).
    func apply(
        _ fault: FaultRule?, errors: ServiceErrors, normal: () async -> HTTPResponse
    ) async -> HTTPReply {
        await applyReply(fault, errors: errors) { .response(await normal()) }
    }

    /// ``apply(_:errors:normal:)`` for handlers that may stream their answer.
    func applyReply(
        _ fault: FaultRule?, errors: ServiceErrors, normal: () async -> HTTPReply
    ) async -> HTTPReply {
        guard let fault else { return await normal() }
        if let latency = fault.latencyMs, latency > 0 {
            do {
                try await Task.sleep(for: .milliseconds(latency))
            } catch {
                return .blackhole  // cancelled: the testbed is shutting down, nobody waits for an answer
            }
        }
        switch fault.effect {
        case .none: return await normal()
        case .blackhole: return .blackhole
        case .throttle: return .response(errors.throttle())
        case .status(let status): return .response(errors.error(status, fault.code))
        case .garbage:
            return .response(
                HTTPResponse(
                    status: 200, contentType: errors.contentType,
                    text: "\u{1}garbage \u{7f}<<<< {{{ not xml, not json ]]]\n"))
        case .truncated:
            switch await normal() {
            case .response(var response):
                response.truncate = true
                return .response(response)
            case .stream(var stream):
                stream.truncate = true
                return .stream(stream)
            case .blackhole:
                return .blackhole
            }
        }
    }

    static func faultName(_ fault: FaultRule?) -> String? {
        guard let fault else { return nil }
        switch fault.effect {
        case .none: return fault.latencyMs != nil ? "latency" : nil
        case .blackhole: return "blackhole"
        case .throttle: return "throttle"
        case .status: return "status"
        case .garbage: return "garbage"
        case .truncated: return "truncated"
        }
    }

    // MARK: IMDS tokens

    func issueToken(ttl: Int, now: Date) -> String {
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<40).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let token = "AQAEA" + Data(bytes).base64EncodedString()
        state.withLock { state in
            state.tokens = state.tokens.filter { $0.value > now }
            state.tokens[token] = now.addingTimeInterval(TimeInterval(ttl))
        }
        return token
    }

    func isValidToken(_ token: String, now: Date) -> Bool {
        state.withLock { state in
            guard let expiry = state.tokens[token] else { return false }
            return expiry > now
        }
    }

    func expireTokens() {
        state.withLock { $0.tokens.removeAll() }
    }

    // MARK: Recording

    func record(_ entry: RecordedRequest) {
        state.withLock { $0.records.append(entry) }
        let status = entry.status.map(String.init) ?? "no-answer"
        let fault = entry.fault.map { " fault=\($0)" } ?? ""
        let operation = entry.action.map { " \($0)" } ?? ""
        let user = entry.username.map { " user=\($0)" } ?? ""
        let reason = entry.reason.map { " reason=\"\($0)\"" } ?? ""
        logger.info(
            "\(entry.endpoint) \(entry.method) \(entry.path)\(operation) \(status) \(String(format: "%.1f", entry.durationMs))ms\(fault)\(user)\(reason)"
        )
    }

    func records() -> [RecordedRequest] {
        state.withLock { $0.records }
    }

    func clearRecords() {
        state.withLock { $0.records.removeAll() }
    }

    /// Runs a handler, then records what it answered.
    func recorded(
        endpoint: @autoclosure () -> String, request: HTTPRequest, action: String?, fault: FaultRule?,
        accessKeyId: () -> String? = { nil }, username: () -> String? = { nil }, reason: () -> String? = { nil },
        _ body: () async -> HTTPReply
    ) async -> HTTPReply {
        let start = ContinuousClock.now
        let time = Date()
        let reply = await body()
        let elapsed = ContinuousClock.now - start
        let ms =
            Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        record(
            RecordedRequest(
                endpoint: endpoint(), method: request.method, path: request.path, action: action,
                status: reply.status, fault: TestbedCore.faultName(fault), accessKeyId: accessKeyId(),
                username: username(), reason: reason(), time: time, durationMs: ms))
        return reply
    }
}

/// How one service writes its errors.
struct ServiceErrors: Sendable {
    var contentType: String
    var throttle: @Sendable () -> HTTPResponse
    var error: @Sendable (_ status: Int, _ code: String?) -> HTTPResponse
}

enum RequestID {
    static func make() -> String { UUID().uuidString.lowercased() }
}

enum XML {
    static func escape(_ s: String) -> String {
        var out = ""
        for c in s {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            default: out.append(c)
            }
        }
        return out
    }

    /// `<name>escaped value</name>`
    static func element(_ name: String, _ value: String) -> String {
        "<\(name)>\(escape(value))</\(name)>"
    }
}
