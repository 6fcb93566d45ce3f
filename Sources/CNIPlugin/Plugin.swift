public import IPAMProtocol
public import Netlink
import WireJSON

/// Where the plugin gets its addresses: ipamd over its socket (`IPAMClient`), or a fake.
public protocol IPAMService: Sendable {
    func send(_ request: Request) throws(IPAMClient.Failure) -> Reply
}

extension IPAMClient: IPAMService {}

/// Where the plugin gets its rtnetlink sockets: the host's (the namespace the runtime runs the
/// plugin in) and one inside a pod's namespace.
public protocol KernelAccess: Sendable {
    func hostNetlink() throws(NetlinkError) -> RouteNetlink
    func pod(_ path: String) throws(NetlinkError) -> (NetworkNamespace, RouteNetlink)
}

/// The kernel itself: sockets opened in this process's namespace and, for a pod, on a short-lived
/// thread that entered the pod's namespace (the socket stays there; the thread ends).
public struct SystemKernel: KernelAccess {
    public init() {}

    public func hostNetlink() throws(NetlinkError) -> RouteNetlink { try RouteNetlink() }

    public func pod(_ path: String) throws(NetlinkError) -> (NetworkNamespace, RouteNetlink) {
        let namespace = try NetworkNamespace(path: path)
        do {
            return (namespace, try namespace.runOnDedicatedThread { try RouteNetlink() })
        } catch let error as NetlinkError {
            throw error
        } catch {
            throw NetlinkError(.namespace, "open rtnetlink socket in netns \(path)", detail: "\(error)")
        }
    }
}

/// One run of `nodeboot-cni`: the environment and stdin in, the result or error JSON and the
/// exit status out (docs/cni.md). Nothing is touched before the environment and the
/// configuration have been read in full.
public struct Plugin: Sendable {
    public struct Outcome: Sendable, Equatable {
        /// What goes to stdout: the result, the VERSION answer or the error object, with a newline
        /// (empty for a DEL, GC or STATUS that succeeded).
        public var stdout: String
        public var status: Int32

        public init(stdout: String, status: Int32) {
            self.stdout = stdout
            self.status = status
        }
    }

    public var environment: [String: String]
    /// ipamd at a socket path, with a bound on each request.
    public var ipam: @Sendable (_ socket: String, _ deadline: Duration) -> any IPAMService
    public var kernel: any KernelAccess
    /// One line to stderr (the runtime keeps it in its log).
    public var log: @Sendable (String) -> Void

    public init(
        environment: [String: String],
        ipam: @escaping @Sendable (_ socket: String, _ deadline: Duration) -> any IPAMService = { socket, deadline in
            IPAMClient(socketPath: socket, connectTimeout: min(deadline, .seconds(1)), answerTimeout: deadline)
        },
        kernel: any KernelAccess = SystemKernel(), log: @escaping @Sendable (String) -> Void = { _ in }
    ) {
        self.environment = environment
        self.ipam = ipam
        self.kernel = kernel
        self.log = log
    }

    /// Runs the command `CNI_COMMAND` names.
    public func run(stdin: [UInt8]) -> Outcome {
        let requested = NetworkConfig.version(in: stdin)
        let replyVersion = requested.flatMap { CNIVersion.supported.contains($0) ? $0 : nil } ?? CNIVersion.latest
        if environment["CNI_COMMAND"] == CNICommand.version.rawValue {
            // VERSION needs nothing else: other variables are not looked at.
            let answer: JSON = [
                "cniVersion": .string(replyVersion),
                "supportedVersions": .array(CNIVersion.supported.map { .string($0) }),
            ]
            return Outcome(stdout: answer.text + "\n", status: 0)
        }
        do {
            let invocation = try Invocation.parse(environment)
            let config = try NetworkConfig.parse(stdin)
            switch invocation.command {
            case .add:
                let result = try add(invocation, config)
                return Outcome(stdout: result.json(cniVersion: config.cniVersion).text + "\n", status: 0)
            case .del:
                try del(invocation, config)
            case .check:
                try require(config, "0.4.0", for: .check)
                try check(invocation, config)
            case .status:
                try require(config, "1.1.0", for: .status)
                try status(config)
            case .gc:
                try require(config, "1.1.0", for: .gc)
                try gc(config)
            case .version:
                break
            }
            return Outcome(stdout: "", status: 0)
        } catch {
            log("\(environment["CNI_COMMAND"] ?? "?") failed: \(error)")
            return Outcome(stdout: error.json(cniVersion: replyVersion).text + "\n", status: 1)
        }
    }

    func require(_ config: NetworkConfig, _ minimum: String, for command: CNICommand) throws(CNIError) {
        guard CNIVersion.atLeast(config.cniVersion, minimum) else {
            throw CNIError(
                .incompatibleVersion,
                "\(command.rawValue) needs cniVersion \(minimum) or later; the configuration says \(config.cniVersion)")
        }
    }

    static func key(_ invocation: Invocation, _ config: NetworkConfig) -> AttachmentKey {
        AttachmentKey(container: invocation.containerID, ifname: invocation.ifname, network: config.name)
    }

    static func hostVeth(_ invocation: Invocation, _ config: NetworkConfig) -> String {
        let pod = invocation.pod
        return hostVethName(namespace: pod.namespace, name: pod.name, prefix: config.vethPrefix)
    }

    /// An ipamd request; a daemon that cannot be reached or answers late is code 11 (the
    /// runtime retries), a refusal passes ipamd's message on verbatim.
    func ask(_ request: Request, _ config: NetworkConfig, deadline: Duration = .seconds(5)) throws(CNIError) -> Reply {
        let reply: Reply
        do {
            reply = try ipam(config.socket, deadline).send(request)
        } catch {
            switch error.kind {
            case .unreachable where error.message.hasPrefix("cannot reach ipamd at "):
                // The client names the socket already: "cannot reach ipamd at PATH: CAUSE".
                let prefix = "cannot reach ipamd at \(config.socket): "
                let cause = error.message.hasPrefix(prefix) ? String(error.message.dropFirst(prefix.count)) : error.message
                throw CNIError(.tryAgainLater, "ipamd is not running: \(config.socket): \(cause)")
            case .unreachable:
                // Connected, then the connection ended without an answer: ipamd exited or was killed mid-request
                // (it may have assigned an address; its reconcile or CNI GC frees what no pod holds).
                throw CNIError(.tryAgainLater, "ipamd stopped answering: \(error.message)")
            case .timeout:
                throw CNIError(.tryAgainLater, "ipamd did not answer in time: \(error.message)")
            case .badReply:
                throw CNIError(.ipamdRefused, "ipamd's answer cannot be read: \(error.message)")
            }
        }
        if case .failed(let failure) = reply {
            throw CNIError(
                failure.retry ? .tryAgainLater : failure.code == .unknown ? .unknownContainer : .ipamdRefused,
                failure.message, details: "ipamd answered \(failure.code.rawValue) to \(request.op)")
        }
        return reply
    }

    static func prefixes(_ texts: [String]) throws(CNIError) -> [IPPrefix] {
        var prefixes: [IPPrefix] = []
        for text in texts {
            guard let prefix = IPPrefix(text) else {
                throw CNIError(.ipamdRefused, "ipamd assigned '\(text)', which is not an address")
            }
            prefixes.append(IPPrefix(host: prefix.address))
        }
        return prefixes
    }

    func openHost() throws(CNIError) -> RouteNetlink {
        do {
            return try kernel.hostNetlink()
        } catch {
            throw CNIError(.podNetwork, error.description, details: "nodeboot-cni runs as root in the host's namespace")
        }
    }

    func openPod(_ path: String) throws(CNIError) -> (NetworkNamespace, RouteNetlink) {
        do {
            return try kernel.pod(path)
        } catch {
            throw CNIError(.invalidEnvironment, "CNI_NETNS: \(error)", details: "the runtime's pod namespace is gone")
        }
    }

    func attachment(_ assignment: Assignment, _ invocation: Invocation, _ config: NetworkConfig) throws(CNIError)
        -> PodAttachment
    {
        let addresses = try Self.prefixes(assignment.ips)
        guard !addresses.isEmpty else { throw CNIError(.ipamdRefused, "ipamd assigned no address") }
        let mtu = assignment.mtu > 0 ? assignment.mtu : config.mtu ?? 9001
        return PodAttachment(
            hostVeth: Self.hostVeth(invocation, config), ifname: invocation.ifname, addresses: addresses,
            table: UInt32(clamping: assignment.table), mtu: UInt32(clamping: mtu))
    }

    // MARK: - ADD

    func add(_ invocation: Invocation, _ config: NetworkConfig) throws(CNIError) -> CNIResult {
        let started = ContinuousClock.now
        let host = try openHost()
        let (namespace, pod) = try openPod(invocation.netns)
        let key = Self.key(invocation, config)
        guard case .added(let assignment) = try ask(.add(key, netns: invocation.netns, pod: invocation.pod), config)
        else { throw CNIError(.ipamdRefused, "ipamd answered add with another kind of reply") }
        let attachment: PodAttachment
        let wired: WiredPod
        do {
            attachment = try self.attachment(assignment, invocation, config)
            wired = try PodNetwork(host: host).add(attachment, namespace: namespace, pod: pod)
        } catch {
            let undone = giveBack(key, invocation, config, reason: "add failed")
            switch error {
            case let error as CNIError: throw error
            case let error as NetlinkError:
                throw CNIError(.podNetwork, error.description, details: "the pod's network was undone; \(undone)")
            default: throw CNIError(.podNetwork, "\(error)", details: undone)
            }
        }
        let families = Set(attachment.addresses.map(\.family)).sorted { $0.rawValue < $1.rawValue }
        let result = CNIResult(
            interfaces: [
                .init(name: attachment.hostVeth, mac: wired.hostMAC.map { "\($0)" } ?? ""),
                .init(
                    name: attachment.ifname, mac: wired.podMAC.map { "\($0)" } ?? "", sandbox: invocation.netns,
                    mtu: Int(attachment.mtu)),
            ],
            ips: attachment.addresses.map {
                .init(address: $0.description, gateway: "\(PodNetwork.gateway($0.family))", interface: 1)
            },
            routes: families.map { .init(destination: IPPrefix.any($0).description, gateway: "\(PodNetwork.gateway($0))") })
        log(
            "ADD \(key): \(attachment.addresses.map(\.description).joined(separator: ", ")) via \(attachment.hostVeth) "
                + "(ENI \(assignment.eni), table \(attachment.table), mtu \(attachment.mtu)) in "
                + Self.milliseconds(ContinuousClock.now - started))
        return result
    }

    /// `1.8 ms`.
    static func milliseconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        let tenths = seconds * 10_000 + attoseconds / 100_000_000_000_000
        return "\(tenths / 10).\(tenths % 10) ms"
    }

    /// The address back to ipamd after a failed ADD; what happened, for the error's details.
    func giveBack(_ key: AttachmentKey, _ invocation: Invocation, _ config: NetworkConfig, reason: String) -> String {
        do {
            _ = try ask(.del(key, pod: invocation.pod, reason: reason), config)
            return "the address was given back to ipamd"
        } catch {
            return "giving the address back to ipamd failed (\(error.message)); its reconciler frees it"
        }
    }

    // MARK: - DEL

    /// Best effort and idempotent: the host side first (from prevResult; else from the pod's own
    /// interface; else from ipamd's del reply), then ipamd's del. Succeeds without ipamd, without
    /// prevResult and without the namespace; an unknown attachment is a success.
    func del(_ invocation: Invocation, _ config: NetworkConfig) throws(CNIError) {
        let started = ContinuousClock.now
        let key = Self.key(invocation, config)
        var previous: CNIResult?
        if let json = config.prevResult {
            do {
                previous = try CNIResult(json)
            } catch {
                // DEL is best effort: a damaged cached result must not make the runtime retry forever.
                log("DEL \(key): prevResult ignored: \(error.message)")
            }
        }
        // The name ADD gave the veth (it survives a vethPrefix changed since), else computed again.
        let hostVeth = previous?.hostInterface?.name.nonEmpty ?? Self.hostVeth(invocation, config)
        let host = try openHost()
        let network = PodNetwork(host: host)
        var pod: RouteNetlink?
        if !invocation.netns.isEmpty {
            // A namespace already gone is normal for DEL: its veth end went with it.
            pod = try? kernel.pod(invocation.netns).1
        }
        var addresses: [IPPrefix] = []
        var source = "prevResult"
        if let previous {
            addresses = (try? Self.prefixes(previous.addresses(on: invocation.ifname))) ?? []  // unreadable: asked below
        }
        if addresses.isEmpty, let pod {
            source = "the pod's interface"
            addresses = (try? network.podAddresses(hostVeth: hostVeth, pod: pod, ifname: invocation.ifname)) ?? []
        }
        var released = false
        if addresses.isEmpty {
            source = "ipamd"
            if let reply = try? ask(.del(key, pod: invocation.pod, reason: "cni del"), config),
                case .deleted(_, let assignment) = reply
            {
                released = true
                addresses = (try? Self.prefixes(assignment?.ips ?? [])) ?? []
            }
        }
        let notes = network.remove(addresses: addresses, hostVeth: hostVeth, pod: pod, ifname: invocation.ifname)
        for note in notes { log("DEL \(key): \(note)") }
        if !released {
            do {
                _ = try ask(.del(key, pod: invocation.pod, reason: "cni del"), config)
            } catch {
                // The host side is undone, so ipamd's reconciler frees the address after its grace.
                log("DEL \(key): ipamd not told (\(error.message)); its reconciler frees the address")
            }
        }
        log(
            "DEL \(key): \(addresses.isEmpty ? "no address known" : addresses.map(\.description).joined(separator: ", ")) "
                + "(from \(source)), host veth \(hostVeth), in " + Self.milliseconds(ContinuousClock.now - started))
    }

    // MARK: - GC

    /// CNI GC: ipamd releases every attachment of this network the runtime no longer lists, and
    /// the host side of each (its rules, its route and veth when still there) is undone. An
    /// ipamd older than `gc` answers `unsupported`: nothing to do (its reconciler frees addresses
    /// whose pod traces are gone).
    func gc(_ config: NetworkConfig) throws(CNIError) {
        let valid = config.validAttachments.map {
            AttachmentKey(container: $0.container, ifname: $0.ifname, network: config.name)
        }
        let reply: Reply
        do {
            reply = try ask(.gc(network: config.name, valid: valid), config)
        } catch  where error.details.hasPrefix("ipamd answered unsupported") {
            log("GC: this ipamd has no gc operation; nothing released")
            return
        }
        guard case .collected(let released) = reply else {
            throw CNIError(.ipamdRefused, "ipamd answered gc with another kind of reply")
        }
        guard !released.isEmpty else { return }
        let network = PodNetwork(host: try openHost())
        for item in released {
            guard let address = IPPrefix(item.address).map({ IPPrefix(host: $0.address) }) else { continue }
            let hostVeth =
                item.pod.map { hostVethName(namespace: $0.namespace, name: $0.name, prefix: config.vethPrefix) }
                ?? hostVethName(namespace: "", name: item.key.container, prefix: config.vethPrefix)
            for note in network.remove(addresses: [address], hostVeth: hostVeth, pod: nil, ifname: item.key.ifname) {
                log("GC \(item.key): \(note)")
            }
        }
        log("GC: released \(released.map(\.address).joined(separator: ", ")) (\(valid.count) attachments still valid)")
    }

    // MARK: - CHECK

    func check(_ invocation: Invocation, _ config: NetworkConfig) throws(CNIError) {
        let host = try openHost()
        let (_, pod) = try openPod(invocation.netns)
        guard case .checked(let assignment) = try ask(.check(Self.key(invocation, config)), config) else {
            throw CNIError(.ipamdRefused, "ipamd answered check with another kind of reply")
        }
        let attachment = try self.attachment(assignment, invocation, config)
        var problems: [String] = []
        if let previous = config.prevResult {
            let result = try CNIResult(previous)
            let recorded = Set(try Self.prefixes(result.addresses(on: invocation.ifname)))
            if recorded != Set(attachment.addresses) {
                problems.append(
                    "prevResult has \(recorded.map(\.description).sorted()), ipamd "
                        + "\(attachment.addresses.map(\.description))")
            }
            if let hostInterface = result.hostInterface, hostInterface.name != attachment.hostVeth {
                problems.append("prevResult's host veth is \(hostInterface.name), expected \(attachment.hostVeth)")
            }
        }
        do {
            problems += try PodNetwork(host: host).differences(attachment, pod: pod)
        } catch {
            throw CNIError(.podNetwork, error.description)
        }
        guard problems.isEmpty else {
            throw CNIError(
                .checkFailed, "the pod's network differs from what ADD made: " + problems.joined(separator: "; "),
                details: "delete and re-create the pod sandbox")
        }
    }

    // MARK: - STATUS

    /// Local state only, quickly (containerd ≥ 2.0.1 asks every 5 s holding a lock): ipamd's
    /// socket answers `status` within 500 ms and says ready.
    func status(_ config: NetworkConfig) throws(CNIError) {
        let reply: Reply
        do {
            reply = try ask(.status, config, deadline: .milliseconds(500))
        } catch {
            throw CNIError(.notAvailable, error.message, details: "pods cannot get addresses until ipamd serves")
        }
        guard case .status(let status) = reply else { return }
        if status["ready"]?.bool == false {
            throw CNIError(.notAvailable, "ipamd is not ready: it has no address to give yet")
        }
    }
}

extension Error {
    /// The CNI error object for any error (a non-CNI one is plugin-specific, code 100+).
    func json(cniVersion: String) -> JSON {
        (self as? CNIError ?? CNIError(.podNetwork, "\(self)")).json(cniVersion: cniVersion)
    }
}

extension String {
    /// Nil for the empty string.
    var nonEmpty: String? { isEmpty ? nil : self }
}
