import AWS
import Foundation
import SigV4
import TestSupport
import Testing

@Suite("STS presigned GetCallerIdentity")
struct PresignTests {
    struct Vector: Decodable, Sendable, CustomTestStringConvertible {
        struct Input: Decodable, Sendable {
            var cluster: String
            var region: String
            var akid: String
            var secret: String
            var session: String?
            var time: String
            var sts: String
        }
        var input: Input
        var presignedURL: String
        var testDescription: String { "\(input.cluster) \(input.region) \(input.sts)" }
    }

    static let vectors: [Vector] = {
        struct File: Decodable { var vectors: [Vector] }
        let url = Paths.conformance.appendingPathComponent("token/vectors.json")
        // A missing file yields no cases; `vectorsArePresent` fails then.
        guard let data = try? Data(contentsOf: url), let file = try? JSONDecoder().decode(File.self, from: data) else {
            return []
        }
        return file.vectors
    }()

    @Test("the URL is byte-identical to botocore's", arguments: vectors)
    func matchesBotocore(vector: Vector) throws {
        let input = vector.input
        var environment: [String: String] = [:]
        if input.sts == "legacy" { environment["AWS_STS_REGIONAL_ENDPOINTS"] = "legacy" }
        let endpoint = try EndpointResolver(environment: environment).endpoint(for: .sts, region: input.region)
        let date = try #require(SigV4Signer.parseAmzDate(input.time))
        let url = AWSClient.presignedGetCallerIdentityURL(
            endpoint: endpoint,
            credentials: SigV4Credentials(accessKeyID: input.akid, secretAccessKey: input.secret, sessionToken: input.session),
            clusterName: input.cluster, date: date)
        #expect(url == vector.presignedURL)
    }

    @Test("the conformance vectors are there")
    func vectorsArePresent() {
        #expect(Self.vectors.count >= 5)
    }
}
