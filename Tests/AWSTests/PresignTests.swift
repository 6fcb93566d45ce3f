import AWS
import Foundation
import SigV4
import TestSupport
import Testing

@Suite("STS presigned GetCallerIdentity")
struct PresignTests {
    static let vectors = TokenVector.all

    @Test("the URL is byte-identical to botocore's", arguments: vectors)
    func matchesBotocore(vector: TokenVector) throws {
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
