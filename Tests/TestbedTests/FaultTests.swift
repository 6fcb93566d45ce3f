import Foundation
import SigV4
import Testbed
import Testing

#if canImport(FoundationXML)
    import FoundationXML
#endif
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite("Fault injection")
struct FaultTests {
    @Test("added latency delays the answer (loosely measured)")
    func latency() async throws {
        try await withTestbed { testbed throws in
            await testbed.setFaults([.latency(.eks, ms: 400, path: "/clusters/")])
            let clock = ContinuousClock()
            let start = clock.now
            let response = try await HTTP.describeCluster(testbed)
            let elapsed = clock.now - start
            #expect(response.status == 200)
            #expect(elapsed >= .milliseconds(350))
            #expect(await testbed.requests().last?.fault == "latency")
        }
    }

    @Test("a fixed status answers with the service's error body")
    func status() async throws {
        try await withTestbed { testbed throws in
            await testbed.setFaults([
                .status(.ec2, 500, action: "DescribeInstances"), .status(.eks, 503), .status(.imds, 500),
            ])
            let ec2 = try await HTTP.describeInstances(testbed)
            #expect(ec2.status == 500)
            #expect(xmlValue("Code", in: ec2.text) == "InternalError")
            let eks = try await HTTP.describeCluster(testbed)
            #expect(eks.status == 503)
            #expect(eks.header("x-amzn-ErrorType") == "ServiceUnavailableException")
            let imds = try await HTTP.token(testbed)
            #expect(imds.status == 500)
            // The rule matched DescribeInstances only: other EC2 actions are untouched.
            let types = try await HTTP.query(
                testbed, service: "ec2",
                [("Action", "DescribeInstanceTypes"), ("Version", "2016-11-15"), ("InstanceType.1", "m4.xlarge")])
            #expect(types.status == 200)
        }
    }

    @Test("throttling answers each service's throttling error")
    func throttle() async throws {
        try await withTestbed { testbed throws in
            await testbed.setFaults([.throttle(.ec2), .throttle(.eks), .throttle(.sts), .throttle(.imds)])
            let ec2 = try await HTTP.describeInstances(testbed)
            #expect(ec2.status == 503)
            #expect(xmlValue("Code", in: ec2.text) == "RequestLimitExceeded")
            let eks = try await HTTP.describeCluster(testbed)
            #expect(eks.status == 429)
            #expect(eks.header("x-amzn-ErrorType") == "ThrottlingException")
            let sts = try await HTTP.getCallerIdentity(testbed)
            #expect(sts.status == 400)
            #expect(xmlValue("Code", in: sts.text) == "Throttling")
            #expect(try await HTTP.token(testbed).status == 429)
        }
    }

    @Test("a blackholed request never gets an answer; a client with a 1 s timeout gives up")
    func blackhole() async throws {
        try await withTestbed { testbed throws in
            await testbed.setFaults([.blackhole(.eks)])
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: (any Error).self) {
                _ = try await HTTP.describeCluster(testbed, timeout: 1)
            }
            #expect(clock.now - start < .seconds(10))
            #expect(await testbed.requests().last?.status == nil)
            #expect(await testbed.requests().last?.fault == "blackhole")
        }
    }

    @Test("shutdown closes blackholed connections that are still open")
    func blackholeShutdown() async throws {
        let testbed = try await Testbed.start()
        await testbed.setFaults([.blackhole(.imds)])
        let pending = Task { try await HTTP.token(testbed, extra: [:]) }
        try await Task.sleep(for: .milliseconds(300))
        let clock = ContinuousClock()
        let start = clock.now
        try await testbed.shutdown()
        #expect(clock.now - start < .seconds(5))
        await #expect(throws: (any Error).self) { _ = try await pending.value }
    }

    @Test("a garbage body is a 200 that is neither XML nor JSON")
    func garbage() async throws {
        try await withTestbed { testbed throws in
            await testbed.setFaults([.garbage(.eks), .garbage(.ec2)])
            let eks = try await HTTP.describeCluster(testbed)
            #expect(eks.status == 200)
            #expect((try? JSONSerialization.jsonObject(with: eks.body)) == nil)  // must not parse
            let ec2 = try await HTTP.describeInstances(testbed)
            #expect(ec2.status == 200)
            #expect(XMLParser(data: ec2.body).parse() == false)
        }
    }

    @Test("a truncated body makes the client fail")
    func truncated() async throws {
        try await withTestbed { testbed throws in
            await testbed.setFaults([.truncated(.eks)])
            await #expect(throws: (any Error).self) {
                _ = try await HTTP.describeCluster(testbed, timeout: 5)
            }
            #expect(await testbed.requests().last?.fault == "truncated")
        }
    }

    @Test("count = N applies to the first N matching requests, then the endpoint recovers")
    func count() async throws {
        try await withTestbed { testbed throws in
            await testbed.setFaults([.status(.imds, 503, path: "/latest/api/token", count: 2)])
            #expect(try await HTTP.token(testbed).status == 503)
            #expect(try await HTTP.token(testbed).status == 503)
            #expect(try await HTTP.token(testbed).status == 200)
            #expect(try await HTTP.token(testbed).status == 200)
        }
    }

    @Test("faults from the configuration file are active from the start")
    func configured() async throws {
        var configuration = TestbedConfiguration.default
        configuration.faults = [FaultRule(endpoint: .eks, throttle: true, count: 1)]
        try await withTestbed(configuration) { testbed throws in
            #expect(try await HTTP.describeCluster(testbed).status == 429)
            #expect(try await HTTP.describeCluster(testbed).status == 200)
        }
    }

    @Test("the control API switches faults, expires tokens and lists requests over HTTP")
    func controlAPI() async throws {
        try await withTestbed { testbed throws in
            let rules = #"[{"endpoint":"sts","action":"GetCallerIdentity","status":500,"count":1}]"#
            let put = try await HTTP.send(
                testbed.awsEndpoint + "/_testbed/faults", method: "PUT", body: Data(rules.utf8))
            #expect(put.status == 200)
            #expect(await testbed.faults().count == 1)
            #expect(try await HTTP.getCallerIdentity(testbed).status == 500)
            #expect(try await HTTP.getCallerIdentity(testbed).status == 200)

            let bad = try await HTTP.send(
                testbed.awsEndpoint + "/_testbed/faults", method: "PUT", body: Data(#"[{"endpoint":"s3"}]"#.utf8))
            #expect(bad.status == 400)
            #expect(bad.text.contains("endpoint"))

            let token = try await HTTP.validToken(testbed)
            let expire = try await HTTP.send(testbed.awsEndpoint + "/_testbed/imds/expire-tokens", method: "POST")
            #expect(expire.status == 204)
            #expect(try await HTTP.imds(testbed, "/latest/meta-data/mac", token: token).status == 401)

            let list = try await HTTP.send(testbed.awsEndpoint + "/_testbed/requests")
            #expect(list.status == 200)
            let decoder = JSONDecoder()
            decoder.dateDecodingStrategy = .iso8601
            let records = try decoder.decode([RecordedRequest].self, from: list.body)
            #expect(records.filter { $0.action == "GetCallerIdentity" }.map(\.status) == [500, 200])
            #expect(!records.contains { $0.path.hasPrefix("/_testbed") })
        }
    }

    @Test("a late-starting endpoint refuses connections, then accepts them on the same port")
    func lateStart() async throws {
        var configuration = TestbedConfiguration.default
        configuration.lateStart = .init(imdsSeconds: 1.5)
        try await withTestbed(configuration) { testbed throws in
            await #expect(throws: (any Error).self) {
                _ = try await HTTP.token(testbed)
            }
            #expect(try await HTTP.describeCluster(testbed).status == 200)  // the AWS port is not late
            try await Task.sleep(for: .milliseconds(2500))
            #expect(try await HTTP.token(testbed).status == 200)
        }
    }

    @Test("shutdown before a late start leaves nothing listening")
    func lateStartShutdown() async throws {
        var configuration = TestbedConfiguration.default
        configuration.lateStart = .init(awsSeconds: 30)
        let testbed = try await Testbed.start(configuration)
        let clock = ContinuousClock()
        let start = clock.now
        try await testbed.shutdown()
        #expect(clock.now - start < .seconds(5))
    }
}
