import Foundation
import SigV4
import Testing

@testable import Testbed

@Suite("AWS-like rate limits")
struct RateLimitTests {
    @Test("a bucket lets `burst` requests through at once, then `ratePerSecond`; an action's bucket is its own")
    func buckets() {
        let limiter = RateLimiter(
            RateLimits(
                ec2: .init(ratePerSecond: 2, burst: 3, actions: ["DescribeInstances": .init(ratePerSecond: 1, burst: 1)])))
        let start = ContinuousClock.now
        // The service's bucket: 3 at once, then empty.
        #expect(
            (0..<4).map { _ in limiter.take(service: "ec2", action: "DescribeInstanceTypes", now: start) } == [
                true, true, true, false,
            ])
        // Half a second later one token (2/s) has come back; never more than the burst.
        #expect(limiter.take(service: "ec2", action: "DescribeInstanceTypes", now: start + .milliseconds(500)))
        #expect(!limiter.take(service: "ec2", action: "DescribeInstanceTypes", now: start + .milliseconds(500)))
        let later = start + .seconds(60)
        #expect((0..<4).map { _ in limiter.take(service: "ec2", action: nil, now: later) } == [true, true, true, false])
        // DescribeInstances draws from its own bucket, untouched by the others.
        #expect(limiter.take(service: "ec2", action: "DescribeInstances", now: start))
        #expect(!limiter.take(service: "ec2", action: "DescribeInstances", now: start + .milliseconds(900)))
        #expect(limiter.take(service: "ec2", action: "DescribeInstances", now: start + .milliseconds(1000)))
        // Services without limits are never throttled.
        #expect((0..<100).allSatisfy { _ in limiter.take(service: "eks", action: "DescribeCluster", now: start) })
        guard case .object(let fields) = limiter.status(),
            case .object(let buckets)? = fields.first(where: { $0.0 == "buckets" })?.1
        else {
            Issue.record("status is not an object with buckets")
            return
        }
        #expect(buckets.map(\.0) == ["ec2", "ec2:DescribeInstances"])
    }

    @Test("a service without its own rate limits only the actions that have one")
    func actionsOnly() {
        let limiter = RateLimiter(RateLimits(eks: .init(actions: ["DescribeCluster": .init(ratePerSecond: 1, burst: 1)])))
        let now = ContinuousClock.now
        #expect(limiter.take(service: "eks", action: "DescribeCluster", now: now))
        #expect(!limiter.take(service: "eks", action: "DescribeCluster", now: now))
        #expect(limiter.take(service: "eks", action: "ListClusters", now: now))
        #expect(limiter.take(service: "eks", action: "ListClusters", now: now))
    }

    @Test("over HTTP: each service's throttling error once its bucket is empty, logged as rateLimit")
    func throttledOverHTTP() async throws {
        var configuration = TestbedConfiguration.default
        configuration.rateLimits = RateLimits(
            ec2: .init(actions: ["DescribeInstances": .init(ratePerSecond: 0.001, burst: 1)]),
            eks: .init(ratePerSecond: 0.001, burst: 2), sts: .init(ratePerSecond: 0.001, burst: 1))
        try await withTestbed(configuration) { testbed throws in
            #expect(try await HTTP.describeCluster(testbed).status == 200)
            #expect(try await HTTP.describeCluster(testbed).status == 200)
            let eks = try await HTTP.describeCluster(testbed)
            #expect(eks.status == 429)
            #expect(eks.header("x-amzn-ErrorType") == "ThrottlingException")
            #expect(try await HTTP.describeInstances(testbed).status == 200)
            let ec2 = try await HTTP.describeInstances(testbed)
            #expect(ec2.status == 503)
            #expect(xmlValue("Code", in: ec2.text) == "RequestLimitExceeded")
            // EC2 has no service-wide bucket here: other actions pass.
            let types = try await HTTP.query(
                testbed, service: "ec2",
                [("Action", "DescribeInstanceTypes"), ("Version", "2016-11-15"), ("InstanceType.1", "m4.xlarge")])
            #expect(types.status == 200)
            #expect(try await HTTP.getCallerIdentity(testbed).status == 200)
            let sts = try await HTTP.getCallerIdentity(testbed)
            #expect(sts.status == 400)
            #expect(xmlValue("Code", in: sts.text) == "Throttling")
            let limited = await testbed.requests().filter { $0.fault == "rateLimit" }
            #expect(limited.map(\.action) == ["DescribeCluster", "DescribeInstances", "GetCallerIdentity"])
            #expect(limited.allSatisfy { $0.accessKeyId == testbed.roleCredentials.accessKeyID })
            // A fault rule that matches wins and takes no token.
            await testbed.setFaults([.latency(.eks, ms: 1)])
            #expect(try await HTTP.describeCluster(testbed).status == 200)
        }
    }

    @Test("off by default: a burst of calls is never throttled")
    func offByDefault() async throws {
        try await withTestbed { testbed throws in
            #expect(await testbed.rateLimits().isEmpty)
            for _ in 0..<30 { #expect(try await HTTP.describeCluster(testbed).status == 200) }
        }
    }

    @Test("PUT /_testbed/rate-limits sets them (fields checked), GET shows the buckets' counts")
    func control() async throws {
        try await withTestbed { testbed throws in
            let url = testbed.awsEndpoint + "/_testbed/rate-limits"
            let bad = try await HTTP.send(url, method: "PUT", body: Data(#"{"ec2": {"ratePerSecond": 5}}"#.utf8))
            #expect(bad.status == 400)
            #expect(bad.text.contains("rateLimits.ec2: give both ratePerSecond and burst"))
            let unknown = try await HTTP.send(url, method: "PUT", body: Data(#"{"eks": {"rate": 5}}"#.utf8))
            #expect(unknown.status == 400)
            #expect(unknown.text.contains("eks.rate"))
            let set = try await HTTP.send(url, method: "PUT", body: Data(#"{"eks": {"ratePerSecond": 0.01, "burst": 1}}"#.utf8))
            #expect(set.status == 200)
            #expect(try await HTTP.describeCluster(testbed).status == 200)
            #expect(try await HTTP.describeCluster(testbed).status == 429)
            let status = try await HTTP.send(url)
            let json = try JSONSerialization.jsonObject(with: status.body) as? [String: Any]
            let eks = (json?["buckets"] as? [String: Any])?["eks"] as? [String: Any]
            #expect(eks?["allowed"] as? Int == 1)
            #expect(eks?["throttled"] as? Int == 1)
            // Off again.
            #expect(try await HTTP.send(url, method: "PUT", body: Data("{}".utf8)).status == 200)
            #expect(try await HTTP.describeCluster(testbed).status == 200)
        }
    }

    @Test("configuration: both fields or neither, positive values, unknown fields refused")
    func configuration() throws {
        var configuration = TestbedConfiguration.default
        configuration.rateLimits = RateLimits(
            ec2: .init(ratePerSecond: 0, burst: 0), eks: .init(burst: 3),
            sts: .init(actions: ["GetCallerIdentity": .init(ratePerSecond: -1, burst: 1)]))
        #expect(
            configuration.validationErrors() == [
                "rateLimits.ec2.ratePerSecond: must be more than 0", "rateLimits.ec2.burst: must be at least 1",
                "rateLimits.eks: give both ratePerSecond and burst, or neither",
                "rateLimits.sts.actions.GetCallerIdentity.ratePerSecond: must be more than 0",
            ])
        let decoded = try JSONDecoder().decode(
            TestbedConfiguration.self,
            from: Data(#"{"rateLimits": {"ec2": {"ratePerSecond": 20, "burst": 100}}}"#.utf8))
        #expect(decoded.rateLimits.ec2?.burst == 100)
        #expect(decoded.validationErrors().isEmpty)
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(TestbedConfiguration.self, from: Data(#"{"rateLimits": {"ec3": {}}}"#.utf8))
        }
    }
}
