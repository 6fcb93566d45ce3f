import Foundation
import IPAM
import NIOPosix
import Synchronization
import Testing

@Suite("ipamd metrics: Prometheus text and the request histogram")
struct MetricsTests {
    static func histogram(_ seconds: Double...) -> LatencyHistogram {
        var histogram = LatencyHistogram()
        for value in seconds { histogram.record(seconds: value) }
        return histogram
    }

    static let snapshot = MetricsSnapshot(
        enisAllocated: 2, enisMax: 3, addressesMax: 27, totalAddresses: 18, assignedAddresses: 5, coolingAddresses: 2,
        totalIPv4Prefixes: 0, addRequests: 7,
        deleteRequests: ["SetupNSFailed": 1, "say \"hi\"\\ and\nbye": 1, "PodDeleted": 2],
        ec2Requests: [
            "DescribeInstances": 1, "AssignPrivateIpAddresses": 3, "CreateNetworkInterface": 1, "AttachNetworkInterface": 1,
        ],
        ec2Errors: ["AssignPrivateIpAddresses": 1], noAvailableAddresses: 1, reconciles: ["eniIPPoolReconcileAdd": 2],
        startupDuration: .milliseconds(180),
        requestLatency: [
            "status": LatencyHistogram(), "del": histogram(0.0001), "add": histogram(0.0042, 0.00005, 0.0003),
        ])

    @Test("the exact bytes: families by name, series by label value, escaped labels, cumulative buckets with le last")
    func golden() {
        let expected = #"""
            # HELP awscni_add_ip_req_count Requests for a pod address (CNI ADD) ipamd received.
            # TYPE awscni_add_ip_req_count counter
            awscni_add_ip_req_count 7
            # HELP awscni_assigned_ip_addresses Pod addresses assigned to pods.
            # TYPE awscni_assigned_ip_addresses gauge
            awscni_assigned_ip_addresses 5
            # HELP awscni_del_ip_req_count Requests to release a pod address (CNI DEL), by the plugin's reason.
            # TYPE awscni_del_ip_req_count counter
            awscni_del_ip_req_count{reason="PodDeleted"} 2
            awscni_del_ip_req_count{reason="SetupNSFailed"} 1
            awscni_del_ip_req_count{reason="say \"hi\"\\ and\nbye"} 1
            # HELP awscni_ec2api_error_count EC2 API requests that failed, by action.
            # TYPE awscni_ec2api_error_count counter
            awscni_ec2api_error_count{fn="AssignPrivateIpAddresses"} 1
            # HELP awscni_ec2api_req_count EC2 API requests ipamd made, by action.
            # TYPE awscni_ec2api_req_count counter
            awscni_ec2api_req_count{fn="AssignPrivateIpAddresses"} 3
            awscni_ec2api_req_count{fn="AttachNetworkInterface"} 1
            awscni_ec2api_req_count{fn="CreateNetworkInterface"} 1
            awscni_ec2api_req_count{fn="DescribeInstances"} 1
            # HELP awscni_eni_allocated ENIs whose addresses ipamd hands out to pods.
            # TYPE awscni_eni_allocated gauge
            awscni_eni_allocated 2
            # HELP awscni_eni_max ENIs the instance can have for pods, less the attached ENIs that ipamd does not manage.
            # TYPE awscni_eni_max gauge
            awscni_eni_max 3
            # HELP awscni_ip_max Pod addresses the instance can hold at most.
            # TYPE awscni_ip_max gauge
            awscni_ip_max 27
            # HELP awscni_ipamd_startup_duration_seconds Time from the process's start until ipamd was ready to serve CNI requests.
            # TYPE awscni_ipamd_startup_duration_seconds histogram
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="0.005"} 0
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="0.01"} 0
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="0.025"} 0
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="0.05"} 0
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="0.1"} 0
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="0.25"} 1
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="0.5"} 1
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="1"} 1
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="2.5"} 1
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="5"} 1
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="10"} 1
            awscni_ipamd_startup_duration_seconds_bucket{failure_reason="",success="true",with_api_server="false",le="+Inf"} 1
            awscni_ipamd_startup_duration_seconds_sum{failure_reason="",success="true",with_api_server="false"} 0.18
            awscni_ipamd_startup_duration_seconds_count{failure_reason="",success="true",with_api_server="false"} 1
            # HELP awscni_no_available_ip_addresses Requests for a pod address refused because no address was free.
            # TYPE awscni_no_available_ip_addresses counter
            awscni_no_available_ip_addresses 1
            # HELP awscni_reconcile_count Reconciliations of ipamd's pool with the instance, by kind.
            # TYPE awscni_reconcile_count counter
            awscni_reconcile_count{fn="eniIPPoolReconcileAdd"} 2
            # HELP awscni_total_ip_addresses Pod addresses on the ENIs: assigned, cooling down and free.
            # TYPE awscni_total_ip_addresses gauge
            awscni_total_ip_addresses 18
            # HELP awscni_total_ipv4_prefixes IPv4 /28 prefixes on the ENIs (prefix delegation).
            # TYPE awscni_total_ipv4_prefixes gauge
            awscni_total_ipv4_prefixes 0
            # HELP nodeboot_ipamd_cooling_ip_addresses Released pod addresses waiting out IP_COOLDOWN_PERIOD before they are handed out again.
            # TYPE nodeboot_ipamd_cooling_ip_addresses gauge
            nodeboot_ipamd_cooling_ip_addresses 2
            # HELP nodeboot_ipamd_request_seconds Time ipamd took to answer a request on its socket, by operation.
            # TYPE nodeboot_ipamd_request_seconds histogram
            nodeboot_ipamd_request_seconds_bucket{op="add",le="0.0001"} 1
            nodeboot_ipamd_request_seconds_bucket{op="add",le="0.00025"} 1
            nodeboot_ipamd_request_seconds_bucket{op="add",le="0.0005"} 2
            nodeboot_ipamd_request_seconds_bucket{op="add",le="0.001"} 2
            nodeboot_ipamd_request_seconds_bucket{op="add",le="0.0025"} 2
            nodeboot_ipamd_request_seconds_bucket{op="add",le="0.005"} 3
            nodeboot_ipamd_request_seconds_bucket{op="add",le="0.01"} 3
            nodeboot_ipamd_request_seconds_bucket{op="add",le="0.025"} 3
            nodeboot_ipamd_request_seconds_bucket{op="add",le="0.1"} 3
            nodeboot_ipamd_request_seconds_bucket{op="add",le="+Inf"} 3
            nodeboot_ipamd_request_seconds_sum{op="add"} 0.00455
            nodeboot_ipamd_request_seconds_count{op="add"} 3
            nodeboot_ipamd_request_seconds_bucket{op="del",le="0.0001"} 1
            nodeboot_ipamd_request_seconds_bucket{op="del",le="0.00025"} 1
            nodeboot_ipamd_request_seconds_bucket{op="del",le="0.0005"} 1
            nodeboot_ipamd_request_seconds_bucket{op="del",le="0.001"} 1
            nodeboot_ipamd_request_seconds_bucket{op="del",le="0.0025"} 1
            nodeboot_ipamd_request_seconds_bucket{op="del",le="0.005"} 1
            nodeboot_ipamd_request_seconds_bucket{op="del",le="0.01"} 1
            nodeboot_ipamd_request_seconds_bucket{op="del",le="0.025"} 1
            nodeboot_ipamd_request_seconds_bucket{op="del",le="0.1"} 1
            nodeboot_ipamd_request_seconds_bucket{op="del",le="+Inf"} 1
            nodeboot_ipamd_request_seconds_sum{op="del"} 0.0001
            nodeboot_ipamd_request_seconds_count{op="del"} 1
            nodeboot_ipamd_request_seconds_bucket{op="status",le="0.0001"} 0
            nodeboot_ipamd_request_seconds_bucket{op="status",le="0.00025"} 0
            nodeboot_ipamd_request_seconds_bucket{op="status",le="0.0005"} 0
            nodeboot_ipamd_request_seconds_bucket{op="status",le="0.001"} 0
            nodeboot_ipamd_request_seconds_bucket{op="status",le="0.0025"} 0
            nodeboot_ipamd_request_seconds_bucket{op="status",le="0.005"} 0
            nodeboot_ipamd_request_seconds_bucket{op="status",le="0.01"} 0
            nodeboot_ipamd_request_seconds_bucket{op="status",le="0.025"} 0
            nodeboot_ipamd_request_seconds_bucket{op="status",le="0.1"} 0
            nodeboot_ipamd_request_seconds_bucket{op="status",le="+Inf"} 0
            nodeboot_ipamd_request_seconds_sum{op="status"} 0
            nodeboot_ipamd_request_seconds_count{op="status"} 0

            """#
        let text = PrometheusText.render(Self.snapshot)
        #expect(Array(text.utf8) == Array(expected.utf8))
        if text != expected {
            // The first differing line, for the reader of a failure.
            let difference = zip(text.split(separator: "\n"), expected.split(separator: "\n")).first { $0 != $1 }
            Issue.record("first difference: \(String(describing: difference))")
        }
    }

    @Test("a fresh daemon: every unlabelled gauge and counter at 0; labelled families and the histograms left out")
    func empty() {
        let lines = PrometheusText.render(MetricsSnapshot()).split(separator: "\n", omittingEmptySubsequences: false)
        let samples = lines.filter { !$0.hasPrefix("#") && !$0.isEmpty }
        #expect(
            samples == [
                "awscni_add_ip_req_count 0", "awscni_assigned_ip_addresses 0", "awscni_eni_allocated 0", "awscni_eni_max 0",
                "awscni_ip_max 0", "awscni_no_available_ip_addresses 0", "awscni_total_ip_addresses 0",
                "awscni_total_ipv4_prefixes 0", "nodeboot_ipamd_cooling_ip_addresses 0",
            ])
        #expect(lines.filter { $0.hasPrefix("# TYPE") }.count == samples.count)
        #expect(lines.last == "")  // the text ends with a newline
        for name in ["awscni_del_ip_req_count", "awscni_ec2api_req_count", "awscni_ipamd_startup", "nodeboot_ipamd_request"] {
            #expect(!lines.contains { $0.contains(name) })
        }
    }

    @Test("escaping: HELP text escapes backslash and newline; label values also the double quote")
    func escaping() {
        #expect(PrometheusText.escapeHelp("a\\b\nc\"d") == #"a\\b\nc"d"#)
        #expect(PrometheusText.escapeLabelValue("a\\b\nc\"d\té") == #"a\\b\nc\"d"# + "\té")
    }

    @Test(
        "nanoseconds as seconds, exactly (what Go's FormatFloat 'g' -1 writes for the bounds)",
        arguments: [
            (Int64(0), "0"), (100_000, "0.0001"), (250_000, "0.00025"), (1_000_000, "0.001"), (2_500_000_000, "2.5"),
            (10_000_000_000, "10"), (1, "0.000000001"), (1_234_567_890, "1.23456789"), (-1_500_000_000, "-1.5"),
        ])
    func seconds(nanoseconds: Int64, text: String) {
        #expect(PrometheusText.seconds(nanoseconds: nanoseconds) == text)
    }

    @Test(
        "a bucket's bound is inclusive: each value lands in the first bucket whose le it does not exceed",
        arguments: [
            (0.0, 0), (0.0001, 0), (0.000_100_1, 1), (0.00025, 1), (0.0004, 2), (0.001, 3), (0.002, 4), (0.005, 5),
            (0.0099, 6), (0.025, 7), (0.1, 8), (0.100_000_1, 9), (5.0, 9), (-1.0, 0),
        ])
    func bucket(seconds: Double, bucket: Int) {
        var histogram = LatencyHistogram()
        histogram.record(seconds: seconds)
        var expected = Array(repeating: 0, count: 10)
        expected[bucket] = 1
        #expect(histogram.bucketCounts == expected)
        #expect(histogram.cumulativeCounts == expected.indices.map { $0 >= bucket ? 1 : 0 })
        #expect(histogram.count == 1)
    }

    @Test("sums are exact nanoseconds; merging equals recording everything in one; NaN is not counted")
    func arithmetic() {
        #expect(LatencyHistogram.requestBounds.count == 9)
        #expect(
            LatencyHistogram().boundNanoseconds == [
                100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000, 10_000_000, 25_000_000, 100_000_000,
            ])
        let first = Self.histogram(0.0001, 0.0003, 0.2)
        let second = Self.histogram(0.00007, 0.003, 0.003, 0.05)
        let all = Self.histogram(0.0001, 0.0003, 0.2, 0.00007, 0.003, 0.003, 0.05)
        #expect(first.merging(second) == all)
        #expect(second.merging(first) == all)
        #expect(all.count == 7)
        #expect(all.sumNanoseconds == 100_000 + 300_000 + 200_000_000 + 70_000 + 3_000_000 + 3_000_000 + 50_000_000)
        #expect(all.sum == .nanoseconds(256_470_000))
        #expect(all.cumulativeCounts == [2, 2, 3, 3, 3, 5, 5, 5, 6, 7])

        var byDuration = LatencyHistogram()
        for duration: Duration in [.microseconds(100), .microseconds(300), .milliseconds(200)] { byDuration.record(duration) }
        #expect(byDuration == first)

        var odd = LatencyHistogram()
        odd.record(seconds: .nan)
        #expect(odd.count == 0)
        odd.record(seconds: .infinity)
        odd.record(.seconds(Int64.max))
        #expect(odd.bucketCounts.last == 2)
        #expect(odd.sumNanoseconds == .max)  // saturated, not wrapped

        let custom = LatencyHistogram(bounds: [.seconds(1), .milliseconds(10), .seconds(1)])
        #expect(custom.boundNanoseconds == [10_000_000, 1_000_000_000])
        #expect(custom.bucketCounts == [0, 0, 0])
    }
}

/// A plain TCP client on its own thread (blocking calls stay off Swift's cooperative pool, which
/// the server's snapshot provider runs on).
enum PlainHTTP {
    struct Answer {
        var status: Int
        var headers: [String: String]
        var body: String
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// Sends `request` and reads until the server closes the connection: an answer is returned
    /// only after a clean EOF (a reset, or no close within 10 s, throws).
    static func exchange(port: Int, _ request: String, halfClose: Bool = false) async throws -> Answer {
        try await withCheckedThrowingContinuation { continuation in
            Thread {
                continuation.resume(with: Result { try blocking(port: port, Array(request.utf8), halfClose: halfClose) })
            }.start()
        }
    }

    static func get(port: Int, _ path: String) async throws -> Answer {
        try await exchange(port: port, "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nUser-Agent: test\r\n\r\n")
    }

    static func connect(port: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: errno \(errno)") }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard connected == 0 else {
            let error = errno
            close(fd)
            throw Failure(description: "connect to 127.0.0.1:\(port): \(String(cString: strerror(error)))")
        }
        return fd
    }

    static func blocking(port: Int, _ request: [UInt8], halfClose: Bool) throws -> Answer {
        let fd = try connect(port: port)
        defer { close(fd) }
        var sent = 0
        while sent < request.count {
            let count = request[sent...].withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw Failure(description: "send: errno \(errno)") }
            sent += count
        }
        if halfClose { shutdown(fd, Int32(SHUT_WR)) }
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { break }
            guard count > 0 else {
                throw Failure(
                    description: "recv after \(received.count) bytes: \(String(cString: strerror(errno))) "
                        + "(the server did not close the connection cleanly)")
            }
            received += buffer[..<count]
        }
        let text = String(decoding: received, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw Failure(description: "no head in \(text.debugDescription)") }
        let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, statusParts[0] == "HTTP/1.1", let status = Int(statusParts[1]) else {
            throw Failure(description: "not a status line: \(lines[0])")
        }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { throw Failure(description: "not a header: \(line)") }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Answer(status: status, headers: headers, body: String(text[split.upperBound...]))
    }

    /// Whether a connection to the port is refused (nobody listens).
    static func refused(port: Int) -> Bool {
        guard let fd = try? connect(port: port) else { return true }
        close(fd)
        return false
    }
}

@Suite("ipamd metrics server")
struct MetricsServerTests {
    /// Counts the scrapes, so each answer shows the provider was asked again.
    final class Scrapes: Sendable {
        let count = Mutex(0)
        func next() -> MetricsSnapshot {
            let number = count.withLock {
                $0 += 1
                return $0
            }
            var snapshot = MetricsTests.snapshot
            snapshot.addRequests = number
            return snapshot
        }
    }

    static let loopback = try! MetricsAddress(host: "127.0.0.1", port: 0)

    @Test("/healthz 503 with the reason, then 200 ok; /metrics the text; 404, 405 and 400; closed after each answer")
    func serve() async throws {
        let readiness = Readiness(notReady: "no address on the ENIs yet")
        let scrapes = Scrapes()
        let server = try await MetricsServer.start(
            address: Self.loopback, group: MultiThreadedEventLoopGroup.singleton, readiness: readiness,
            snapshot: { scrapes.next() })
        let port = server.address.port
        #expect(port > 0)
        #expect(server.address.host == "127.0.0.1")

        let starting = try await PlainHTTP.get(port: port, "/healthz")
        #expect(starting.status == 503)
        #expect(starting.body == "not ready: no address on the ENIs yet\n")
        #expect(starting.headers["connection"] == "close")
        readiness.markReady()
        let ready = try await PlainHTTP.get(port: port, "/healthz")
        #expect(ready.status == 200)
        #expect(ready.body == "ok\n")
        #expect(ready.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(ready.headers["content-length"] == "3")

        var expected = MetricsTests.snapshot
        for scrape in 1...2 {
            let metrics = try await PlainHTTP.get(port: port, "/metrics")
            expected.addRequests = scrape
            #expect(metrics.status == 200)
            #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
            #expect(metrics.body == PrometheusText.render(expected))
            #expect(metrics.headers["content-length"] == String(metrics.body.utf8.count))
            #expect(metrics.body.contains("\nawscni_add_ip_req_count \(scrape)\n"))
        }

        let missing = try await PlainHTTP.get(port: port, "/metrics/extra")
        #expect(missing.status == 404)
        #expect(missing.body == "not found: this server answers GET /healthz and GET /metrics\n")

        // A POST with a body the server does not read: the answer still arrives whole, then EOF.
        let body = String(repeating: "x", count: 64 * 1024)
        let posted = try await PlainHTTP.exchange(
            port: port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: \(body.utf8.count)\r\n\r\n" + body)
        #expect(posted.status == 405)
        #expect(posted.headers["allow"] == "GET")
        #expect(posted.body == "POST is not allowed: /metrics answers GET only\n")
        let stillServing = try await PlainHTTP.get(port: port, "/healthz").status
        #expect(stillServing == 200)
        let headMethod = try await PlainHTTP.exchange(port: port, "HEAD /healthz HTTP/1.1\r\n\r\n")
        #expect(headMethod.status == 405)

        // Bare LF line ends, a query, an absolute-form target; a client that half-closes after its request.
        let bareLF = try await PlainHTTP.exchange(port: port, "GET /metrics?name[]=awscni_ip_max HTTP/1.0\nHost: x\n\n")
        #expect(bareLF.status == 200)
        let absolute = try await PlainHTTP.exchange(port: port, "GET http://127.0.0.1:\(port)/healthz HTTP/1.1\r\n\r\n")
        #expect(absolute.body == "ok\n")
        let halfClosed = try await PlainHTTP.exchange(port: port, "GET /healthz HTTP/1.1\r\n\r\n", halfClose: true)
        #expect(halfClosed.body == "ok\n")

        let garbage = try await PlainHTTP.exchange(port: port, "HELLO\r\n\r\n")
        #expect(garbage.status == 400)
        #expect(garbage.body == "the request line is not <method> <target> HTTP/1.x\n")
        let tooLong = try await PlainHTTP.exchange(
            port: port, "GET /healthz HTTP/1.1\r\nX-Filler: \(String(repeating: "y", count: 9000))\r\n\r\n")
        #expect(tooLong.status == 431)

        readiness.markNotReady("ipamd is stopping")
        #expect(try await PlainHTTP.get(port: port, "/healthz").body == "not ready: ipamd is stopping\n")

        await server.close()
        #expect(PlainHTTP.refused(port: port))
    }

    @Test(
        "the address: loopback only, with a port; anything else is refused naming the address and the setting",
        arguments: [
            ("127.0.0.1:61678", "127.0.0.1:61678"), ("127.0.0.53:9100", "127.0.0.53:9100"), ("[::1]:61678", "[::1]:61678"),
            ("127.0.0.1:0", "127.0.0.1:0"),
            ("0.0.0.0:61678", "0.0.0.0 is not a loopback address"), ("10.0.0.5:61678", "10.0.0.5 is not a loopback address"),
            ("[::]:61678", ":: is not a loopback address"), ("[::ffff:127.0.0.1]:1", "is not a loopback address"),
            ("localhost:61678", "localhost is not an IP address"), ("127.0.0.1", "is not <address>:<port>"),
            ("127.0.0.1:", "is not <address>:<port>"), ("::1:61678", "is not <address>:<port>"),
            ("127.0.0.1:-1", "is not <address>:<port>"), ("127.0.0.1:70000", "the metrics port 70000 is not a TCP port"),
        ])
    func address(text: String, outcome: String) {
        do {
            let address = try MetricsAddress(parsing: text)
            #expect(address.description == outcome)
        } catch {
            #expect(error.description.contains(outcome), "\(error)")
            #expect(error.description.contains(MetricsAddress.environmentVariable))
        }
    }

    @Test("the standard address is aws-node's port on 127.0.0.1; a port in use is a clear error")
    func portInUse() async throws {
        #expect(MetricsAddress.standard.description == "127.0.0.1:61678")
        let group = MultiThreadedEventLoopGroup.singleton
        let first = try await MetricsServer.start(
            address: Self.loopback, group: group, readiness: Readiness(), snapshot: { MetricsSnapshot() })
        do {
            _ = try await MetricsServer.start(
                address: first.address, group: group, readiness: Readiness(), snapshot: { MetricsSnapshot() })
            Issue.record("a second server listened on \(first.address)")
        } catch {
            #expect(error.description.contains("cannot listen for metrics on \(first.address)"), "\(error)")
            #expect(error.description.contains("Address already in use"), "\(error)")
        }
        await first.close()
    }

    @Test("as a service: listens, reports its address, serves, and stops listening when cancelled")
    func service() async throws {
        let readiness = Readiness()
        readiness.markReady()
        let (started, reporter) = AsyncStream<MetricsAddress>.makeStream()
        let service = MetricsService(
            address: Self.loopback, group: MultiThreadedEventLoopGroup.singleton, readiness: readiness,
            snapshot: { MetricsSnapshot() }, onStart: { reporter.yield($0.address) })
        let running = Task { try await service.run() }
        var iterator = started.makeAsyncIterator()
        let address = try #require(await iterator.next())
        #expect(try await PlainHTTP.get(port: address.port, "/healthz").body == "ok\n")
        running.cancel()
        try await running.value
        #expect(PlainHTTP.refused(port: address.port))
    }
}
