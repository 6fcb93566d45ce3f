public import AWS
public import FoundationEssentials

/// What one leak sweep did. ENIs are listed in EC2's order (by id).
public struct SweepResult: Sendable, Equatable {
    /// One EC2 call that failed, on one ENI (nil for DescribeNetworkInterfaces).
    public struct Failure: Sendable, Equatable, CustomStringConvertible {
        public var eni: String?
        /// The EC2 API, e.g. `DeleteNetworkInterface`.
        public var api: String
        /// A full sentence naming the operation, the endpoint, the ENI and EC2's code.
        public var message: String

        public init(eni: String?, api: String, message: String) {
            self.eni = eni
            self.api = api
            self.message = message
        }

        public var description: String { message }
    }

    /// Deleted by this sweep.
    public var deleted: [String] = []
    /// Had no (or an unreadable) `createdAt`: tagged with the sweep's time, deleted by a later sweep.
    public var tagged: [String] = []
    /// Created less than `LeakSweeper.minimumAge` ago: left for a later sweep.
    public var young: [String] = []
    /// Already gone when this sweep deleted them (another node's sweep got there first).
    public var gone: [String] = []
    public var errors: [Failure] = []

    public init() {}
}

/// The leak sweep (docs/ipamd.md §4, vpc-cni.md §1 row 11): deletes ENIs that a node created and
/// never attached, or detached and never deleted (a crash, a SIGKILL, a terminated instance
/// between detach and delete). Like aws-node's cleanup it is cluster-wide: any node's sweep may
/// delete any leaked nodeboot ENI in the VPC (of its cluster, when the cluster is known).
///
/// It only ever deletes an ENI that EC2 lists as `available`, tagged
/// `node.k8s.amazonaws.com/instance_id`, in this VPC (and cluster), whose description starts
/// with `nodeboot-` (never aws-node's `aws-K8S-` ENIs), and whose `createdAt` tag is at least 5
/// minutes old: a node that has just created an ENI and is about to attach it keeps it. An ENI
/// without a readable `createdAt` is tagged with the sweep's time and deleted by a later sweep.
///
/// Errors are counted and logged, never thrown: the next sweep tries again.
public actor LeakSweeper {
    public static let instanceTag = "node.k8s.amazonaws.com/instance_id"
    public static let createdAtTag = "node.k8s.amazonaws.com/createdAt"
    public static let clusterTag = "cluster.k8s.amazonaws.com/name"
    /// The description nodeboot gives the ENIs it creates (`nodeboot-<instance-id>`).
    public static let descriptionPrefix = "nodeboot-"
    /// ENIs created less than this long ago are left alone (aws-node: 5 minutes).
    public static let minimumAge: TimeInterval = 300

    let ec2: AWSClient
    let instanceID: String
    let vpcID: String
    let cluster: String?
    let now: @Sendable () -> Date
    let log: @Sendable (String) -> Void
    var sweeping = false
    /// EC2 calls made, by API.
    public private(set) var calls: [String: Int] = [:]
    /// EC2 calls that failed, by API.
    public private(set) var errors: [String: Int] = [:]

    public init(
        ec2: AWSClient, instanceID: String, vpcID: String, cluster: String?,
        now: @escaping @Sendable () -> Date = { Date() }, log: @escaping @Sendable (String) -> Void
    ) {
        self.ec2 = ec2
        self.instanceID = instanceID
        self.vpcID = vpcID
        self.cluster = cluster
        self.now = now
        self.log = log
    }

    /// The DescribeNetworkInterfaces filters of a sweep.
    public var filters: [String: [String]] {
        var filters = ["tag-key": [Self.instanceTag], "status": ["available"], "vpc-id": [vpcID]]
        if let cluster { filters["tag:\(Self.clusterTag)"] = [cluster] }
        return filters
    }

    /// Sleeps `initialDelay`, sweeps, then sweeps every `interval` until the task is cancelled
    /// (the daemon: a random 0–300 s, then 1 hour). A sweep under way when the task is cancelled
    /// stops before its next EC2 call.
    public func run(initialDelay: Duration, interval: Duration) async {
        var delay = initialDelay
        while !Task.isCancelled {
            do {
                try await Task.sleep(for: delay)
            } catch {
                return  // Task.sleep throws only when the task is cancelled
            }
            _ = await sweep()
            delay = interval
        }
    }

    /// One pass: list the leaked ENIs, tag those without `createdAt`, delete those old enough.
    /// A sweep asked for while another is under way returns an empty result at once.
    public func sweep() async -> SweepResult {
        var result = SweepResult()
        guard !sweeping else { return result }
        sweeping = true
        defer { sweeping = false }

        let listed: [EC2NetworkInterface]
        do {
            called("DescribeNetworkInterfaces")
            listed = try await ec2.describeNetworkInterfaces(filters: filters)
        } catch {
            failed(&result, eni: nil, api: "DescribeNetworkInterfaces", "cannot list the leaked ENIs", error)
            return result
        }
        let start = now()
        // EC2 applied the status filter already; an attached ENI is checked for again because
        // deleting one is the mistake this sweep must never make.
        let leaked = listed.filter {
            $0.description.hasPrefix(Self.descriptionPrefix) && $0.status == "available" && $0.attachment == nil
        }
        for eni in leaked {
            if Task.isCancelled { break }
            guard let createdAt = eni.tags[Self.createdAtTag].flatMap(Self.parseRFC3339) else {
                await tag(eni, at: start, into: &result)
                continue
            }
            let age = start.timeIntervalSince(createdAt)
            guard age >= Self.minimumAge else {
                result.young.append(eni.id)
                continue
            }
            await delete(eni, age: age, into: &result)
        }
        return result
    }

    func tag(_ eni: EC2NetworkInterface, at time: Date, into result: inout SweepResult) async {
        let stamp = time.formatted(.iso8601)
        do {
            called("CreateTags")
            try await ec2.createTags(resources: [eni.id], tags: [Self.createdAtTag: stamp])
            result.tagged.append(eni.id)
            let reason = eni.tags[Self.createdAtTag].map { "an unreadable createdAt '\($0)'" } ?? "no createdAt"
            log(
                "ipamd leak sweep: tagged \(name(eni)) createdAt=\(stamp): it had \(reason); a sweep 5 min from now or later deletes it"
            )
        } catch {
            failed(&result, eni: eni.id, api: "CreateTags", "cannot tag \(eni.id) with its createdAt", error)
        }
    }

    func delete(_ eni: EC2NetworkInterface, age: TimeInterval, into result: inout SweepResult) async {
        do {
            called("DeleteNetworkInterface")
            if try await ec2.deleteNetworkInterface(eni.id) {
                result.deleted.append(eni.id)
                log("ipamd leak sweep: deleted \(name(eni)), created \(Self.format(age)) ago")
            } else {
                result.gone.append(eni.id)
                log("ipamd leak sweep: \(eni.id) was already deleted (another node's sweep, or its owner)")
            }
        } catch let error as AWSError where error.isNetworkInterfaceInUse {
            failed(
                &result, eni: eni.id, api: "DeleteNetworkInterface", "\(eni.id) was attached since it was listed; left alone",
                error)
        } catch {
            failed(&result, eni: eni.id, api: "DeleteNetworkInterface", "cannot delete the leaked ENI \(eni.id)", error)
        }
    }

    func called(_ api: String) { calls[api, default: 0] += 1 }

    /// Counts and logs a failed call. A call cut short because the task was cancelled (SIGTERM)
    /// is no failure of EC2's: it is neither counted nor logged.
    func failed(_ result: inout SweepResult, eni: String?, api: String, _ what: String, _ error: any Error) {
        if Task.isCancelled || error is CancellationError { return }
        errors[api, default: 0] += 1
        let message = "ipamd leak sweep: \(what): \(error)"
        result.errors.append(SweepResult.Failure(eni: eni, api: api, message: message))
        log(message)
    }

    /// `eni-… (description, of i-…)`: the ENI, its description and the instance that created it
    /// (its `instance_id` tag).
    func name(_ eni: EC2NetworkInterface) -> String {
        guard let owner = eni.tags[Self.instanceTag], !owner.isEmpty else { return "\(eni.id) (\(eni.description))" }
        return "\(eni.id) (\(eni.description), of \(owner == instanceID ? "this instance" : owner))"
    }

    /// RFC 3339 as aws-node writes `createdAt` (Go's `time.RFC3339`: `Z` or an offset, optional
    /// fractional seconds). Nil when it is not that.
    static func parseRFC3339(_ text: String) -> Date? {
        for style in [Date.ISO8601FormatStyle(), Date.ISO8601FormatStyle(includingFractionalSeconds: true)] {
            // A parse failure is an answer here: the next style is tried, then nil.
            if let date = try? Date(text, strategy: style) { return date }
        }
        return nil
    }

    /// An age for a log line: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
    static func format(_ age: TimeInterval) -> String {
        let seconds = Int(max(0, age))
        switch seconds {
        case ..<120: return "\(seconds) s"
        case ..<7200: return "\(seconds / 60) min"
        case ..<172_800: return "\(seconds / 3600) h \(seconds % 3600 / 60) min"
        default: return "\(seconds / 86_400) d \(seconds % 86_400 / 3600) h"
        }
    }
}
