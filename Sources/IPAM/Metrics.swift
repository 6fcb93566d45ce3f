/// What `/metrics` shows (docs/ipamd.md §8), as plain values read from the core and the
/// reconciler at scrape time. Labelled counters are maps from the label's value to the count;
/// an empty map is a family with no series, which is left out as client_golang leaves it out.
public struct MetricsSnapshot: Sendable, Equatable {
    /// `awscni_eni_allocated`: ENIs whose addresses ipamd hands out.
    public var enisAllocated: Int
    /// `awscni_eni_max`: ENIs the instance can have for pods, less the attached ENIs that are not ipamd's.
    public var enisMax: Int
    /// `awscni_ip_max`: pod addresses the instance can hold at most.
    public var addressesMax: Int
    /// `awscni_total_ip_addresses`: pod addresses on the ENIs (assigned, cooling and free).
    public var totalAddresses: Int
    /// `awscni_assigned_ip_addresses`.
    public var assignedAddresses: Int
    /// `nodeboot_ipamd_cooling_ip_addresses`: released, not handed out until `IP_COOLDOWN_PERIOD` passes.
    public var coolingAddresses: Int
    /// `awscni_total_ipv4_prefixes`: /28 prefixes on the ENIs (0 outside prefix delegation).
    public var totalIPv4Prefixes: Int
    /// `awscni_add_ip_req_count`.
    public var addRequests: Int
    /// `awscni_del_ip_req_count{reason}`, by the DEL's reason (`PodDeleted`, `SetupNSFailed`…);
    /// "" where the reason is not known.
    public var deleteRequests: [String: Int]
    /// `awscni_ec2api_req_count{fn}`, by EC2 action (`AssignPrivateIpAddresses`…).
    public var ec2Requests: [String: Int]
    /// `awscni_ec2api_error_count{fn}`, by EC2 action.
    public var ec2Errors: [String: Int]
    /// `awscni_no_available_ip_addresses`: adds refused because no address was free.
    public var noAvailableAddresses: Int
    /// `awscni_reconcile_count{fn}`, by kind of reconciliation.
    public var reconciles: [String: Int]
    /// `awscni_ipamd_startup_duration_seconds`: process start to ready; nil until ready.
    public var startupDuration: Duration?
    /// `nodeboot_ipamd_request_seconds{op}`: socket requests by operation (`add`, `del`, `check`, `status`).
    public var requestLatency: [String: LatencyHistogram]

    public init(
        enisAllocated: Int = 0, enisMax: Int = 0, addressesMax: Int = 0, totalAddresses: Int = 0, assignedAddresses: Int = 0,
        coolingAddresses: Int = 0, totalIPv4Prefixes: Int = 0, addRequests: Int = 0, deleteRequests: [String: Int] = [:],
        ec2Requests: [String: Int] = [:], ec2Errors: [String: Int] = [:], noAvailableAddresses: Int = 0,
        reconciles: [String: Int] = [:], startupDuration: Duration? = nil, requestLatency: [String: LatencyHistogram] = [:]
    ) {
        self.enisAllocated = enisAllocated
        self.enisMax = enisMax
        self.addressesMax = addressesMax
        self.totalAddresses = totalAddresses
        self.assignedAddresses = assignedAddresses
        self.coolingAddresses = coolingAddresses
        self.totalIPv4Prefixes = totalIPv4Prefixes
        self.addRequests = addRequests
        self.deleteRequests = deleteRequests
        self.ec2Requests = ec2Requests
        self.ec2Errors = ec2Errors
        self.noAvailableAddresses = noAvailableAddresses
        self.reconciles = reconciles
        self.startupDuration = startupDuration
        self.requestLatency = requestLatency
    }
}

/// A Prometheus histogram of durations, kept in whole nanoseconds so that sums and merges are
/// exact and the rendered bytes do not depend on the order of observations. Buckets are
/// inclusive upper bounds (`le`), as Prometheus defines them.
public struct LatencyHistogram: Sendable, Hashable {
    /// `nodeboot_ipamd_request_seconds`: 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25 and 100 ms.
    public static let requestBounds: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(100),
    ]
    /// client_golang's `DefBuckets` (5 ms to 10 s), which aws-node's start-up histogram uses.
    public static let defaultBounds: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// Upper bounds in nanoseconds, ascending, without repeats.
    public let boundNanoseconds: [Int64]
    /// Observations per bucket, not cumulative; one more than the bounds (the last is above them all).
    public private(set) var bucketCounts: [Int]
    public private(set) var sumNanoseconds: Int64 = 0

    /// An empty histogram; `bounds` are sorted, repeats and bounds below zero dropped.
    public init(bounds: [Duration] = Self.requestBounds) {
        boundNanoseconds = Set(bounds.map(Self.nanoseconds)).filter { $0 >= 0 }.sorted()
        bucketCounts = Array(repeating: 0, count: boundNanoseconds.count + 1)
    }

    public var count: Int { bucketCounts.reduce(0, +) }
    public var sum: Duration { .nanoseconds(sumNanoseconds) }

    /// The `_bucket` values: observations at or below each bound, then all of them (`le="+Inf"`).
    public var cumulativeCounts: [Int] {
        var running = 0
        return bucketCounts.map {
            running += $0
            return running
        }
    }

    /// One observation. A negative time counts as zero; NaN is not recorded.
    public mutating func record(seconds: Double) {
        guard !seconds.isNaN else { return }
        // 9e9 s (285 years) keeps the product below Int64.max.
        let clamped = min(max(seconds, 0), 9e9)
        record(nanoseconds: Int64((clamped * 1e9).rounded()))
    }

    /// One observation (a `ContinuousClock` interval); a negative one counts as zero.
    public mutating func record(_ duration: Duration) {
        record(nanoseconds: Self.nanoseconds(duration))
    }

    mutating func record(nanoseconds: Int64) {
        let value = max(nanoseconds, 0)
        let bucket = boundNanoseconds.firstIndex { value <= $0 } ?? boundNanoseconds.count
        bucketCounts[bucket] += 1
        sumNanoseconds = Self.adding(sumNanoseconds, value)
    }

    /// Adds `other`'s observations (e.g. one connection's into the server's). Both must have the
    /// same bounds: buckets of different bounds cannot be combined exactly.
    public mutating func merge(_ other: LatencyHistogram) {
        precondition(
            boundNanoseconds == other.boundNanoseconds, "LatencyHistogram.merge: the histograms have different bucket bounds")
        for index in bucketCounts.indices { bucketCounts[index] += other.bucketCounts[index] }
        sumNanoseconds = Self.adding(sumNanoseconds, other.sumNanoseconds)
    }

    public func merging(_ other: LatencyHistogram) -> LatencyHistogram {
        var merged = self
        merged.merge(other)
        return merged
    }

    /// Whole nanoseconds, saturating at Int64's range (attoseconds are truncated).
    static func nanoseconds(_ duration: Duration) -> Int64 {
        let (seconds, attoseconds) = duration.components
        let (whole, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        if overflow { return seconds < 0 ? .min : .max }
        return adding(whole, attoseconds / 1_000_000_000)
    }

    static func adding(_ a: Int64, _ b: Int64) -> Int64 {
        let (result, overflow) = a.addingReportingOverflow(b)
        if overflow { return b < 0 ? .min : .max }
        return result
    }
}

/// The Prometheus text exposition format 0.0.4, written from a `MetricsSnapshot`: families
/// sorted by name and series by label values (client_golang's order, so the bytes are the same
/// for the same snapshot), `# HELP` and `# TYPE` before each family, every line ending in a
/// newline. Numbers are integers, or exact decimals of seconds for durations.
public enum PrometheusText {
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    public static func render(_ snapshot: MetricsSnapshot) -> String {
        var families: [Family] = [
            .scalar("awscni_eni_allocated", .gauge, "ENIs whose addresses ipamd hands out to pods.", snapshot.enisAllocated),
            .scalar(
                "awscni_eni_max", .gauge,
                "ENIs the instance can have for pods, less the attached ENIs that ipamd does not manage.", snapshot.enisMax),
            .scalar("awscni_ip_max", .gauge, "Pod addresses the instance can hold at most.", snapshot.addressesMax),
            .scalar(
                "awscni_total_ip_addresses", .gauge, "Pod addresses on the ENIs: assigned, cooling down and free.",
                snapshot.totalAddresses),
            .scalar(
                "awscni_assigned_ip_addresses", .gauge, "Pod addresses assigned to pods.", snapshot.assignedAddresses),
            .scalar(
                "awscni_total_ipv4_prefixes", .gauge, "IPv4 /28 prefixes on the ENIs (prefix delegation).",
                snapshot.totalIPv4Prefixes),
            .scalar(
                "awscni_add_ip_req_count", .counter, "Requests for a pod address (CNI ADD) ipamd received.",
                snapshot.addRequests),
            .labelled(
                "awscni_del_ip_req_count", .counter, "Requests to release a pod address (CNI DEL), by the plugin's reason.",
                label: "reason", snapshot.deleteRequests),
            .labelled(
                "awscni_ec2api_req_count", .counter, "EC2 API requests ipamd made, by action.", label: "fn",
                snapshot.ec2Requests),
            .labelled(
                "awscni_ec2api_error_count", .counter, "EC2 API requests that failed, by action.", label: "fn",
                snapshot.ec2Errors),
            .scalar(
                "awscni_no_available_ip_addresses", .counter,
                "Requests for a pod address refused because no address was free.", snapshot.noAvailableAddresses),
            .labelled(
                "awscni_reconcile_count", .counter, "Reconciliations of ipamd's pool with the instance, by kind.",
                label: "fn", snapshot.reconciles),
            .scalar(
                "nodeboot_ipamd_cooling_ip_addresses", .gauge,
                "Released pod addresses waiting out IP_COOLDOWN_PERIOD before they are handed out again.",
                snapshot.coolingAddresses),
        ]
        var startup = Family(
            name: "awscni_ipamd_startup_duration_seconds", type: .histogram,
            help: "Time from the process's start until ipamd was ready to serve CNI requests.")
        if let duration = snapshot.startupDuration {
            var histogram = LatencyHistogram(bounds: LatencyHistogram.defaultBounds)
            histogram.record(duration)
            // aws-node's labels: this server only exists in a start that succeeded, without the API server.
            startup.add(
                histogram, labels: [("failure_reason", ""), ("success", "true"), ("with_api_server", "false")])
        }
        families.append(startup)
        var requests = Family(
            name: "nodeboot_ipamd_request_seconds", type: .histogram,
            help: "Time ipamd took to answer a request on its socket, by operation.")
        for (op, histogram) in snapshot.requestLatency.sorted(by: { precedes($0.key, $1.key) }) {
            requests.add(histogram, labels: [("op", op)])
        }
        families.append(requests)

        var text = ""
        for family in families.sorted(by: { precedes($0.name, $1.name) }) where !family.lines.isEmpty {
            text += "# HELP \(family.name) \(escapeHelp(family.help))\n"
            text += "# TYPE \(family.name) \(family.type.rawValue)\n"
            for line in family.lines { text += line + "\n" }
        }
        return text
    }

    /// `\` and newline escaped, as the format requires of HELP text.
    public static func escapeHelp(_ text: String) -> String {
        var escaped = ""
        for character in text.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }

    /// `\`, `"` and newline escaped, as the format requires of label values.
    public static func escapeLabelValue(_ text: String) -> String {
        var escaped = ""
        for character in text.unicodeScalars {
            switch character {
            case "\\": escaped += "\\\\"
            case "\"": escaped += "\\\""
            case "\n": escaped += "\\n"
            default: escaped.unicodeScalars.append(character)
            }
        }
        return escaped
    }

    /// Nanoseconds as seconds, exactly: `100000` → `0.0001`, `2500000000` → `2.5`, `0` → `0`
    /// (for the bounds, what Go's `strconv.FormatFloat(b, 'g', -1, 64)` writes).
    public static func seconds(nanoseconds: Int64) -> String {
        let sign = nanoseconds < 0 ? "-" : ""
        let magnitude = nanoseconds.magnitude
        let whole = magnitude / 1_000_000_000
        let fraction = magnitude % 1_000_000_000
        guard fraction > 0 else { return "\(sign)\(whole)" }
        var digits = String(fraction)
        digits = String(repeating: "0", count: 9 - digits.count) + digits
        while digits.last == "0" { digits.removeLast() }
        return "\(sign)\(whole).\(digits)"
    }

    /// Byte order (Go's string order), not Unicode collation.
    static func precedes(_ a: String, _ b: String) -> Bool {
        a.utf8.lexicographicallyPrecedes(b.utf8)
    }

    enum MetricType: String {
        case counter, gauge, histogram
    }

    struct Family {
        var name: String
        var type: MetricType
        var help: String
        var lines: [String] = []

        static func scalar(_ name: String, _ type: MetricType, _ help: String, _ value: Int) -> Family {
            Family(name: name, type: type, help: help, lines: ["\(name) \(value)"])
        }

        static func labelled(
            _ name: String, _ type: MetricType, _ help: String, label: String, _ values: [String: Int]
        ) -> Family {
            let lines = values.sorted { precedes($0.key, $1.key) }.map { key, value in
                "\(name)\(PrometheusText.labels([(label, key)])) \(value)"
            }
            return Family(name: name, type: type, help: help, lines: lines)
        }

        /// One histogram series: cumulative `_bucket`s with `le` last, `+Inf`, `_sum`, `_count`.
        mutating func add(_ histogram: LatencyHistogram, labels: [(String, String)]) {
            let cumulative = histogram.cumulativeCounts
            for (index, bound) in histogram.boundNanoseconds.enumerated() {
                let le = PrometheusText.seconds(nanoseconds: bound)
                lines.append("\(name)_bucket\(PrometheusText.labels(labels + [("le", le)])) \(cumulative[index])")
            }
            lines.append("\(name)_bucket\(PrometheusText.labels(labels + [("le", "+Inf")])) \(histogram.count)")
            lines.append(
                "\(name)_sum\(PrometheusText.labels(labels)) \(PrometheusText.seconds(nanoseconds: histogram.sumNanoseconds))")
            lines.append("\(name)_count\(PrometheusText.labels(labels)) \(histogram.count)")
        }
    }

    /// `{name="value",…}`, or nothing for no labels.
    static func labels(_ pairs: [(String, String)]) -> String {
        guard !pairs.isEmpty else { return "" }
        return "{" + pairs.map { "\($0.0)=\"\(escapeLabelValue($0.1))\"" }.joined(separator: ",") + "}"
    }
}
