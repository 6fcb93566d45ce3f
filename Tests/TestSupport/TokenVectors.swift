import Foundation

/// One entry of ../shared/conformance/token/vectors.json: inputs and what botocore made of them.
public struct TokenVector: Decodable, Sendable, CustomStringConvertible {
    public struct Input: Decodable, Sendable {
        public var cluster: String
        public var region: String
        public var akid: String
        public var secret: String
        public var session: String?
        public var time: String
        public var sts: String

        public init(
            cluster: String, region: String, akid: String, secret: String, session: String?, time: String, sts: String
        ) {
            self.cluster = cluster
            self.region = region
            self.akid = akid
            self.secret = secret
            self.session = session
            self.time = time
            self.sts = sts
        }
    }

    public var input: Input
    public var presignedURL: String
    public var token: String

    public var description: String { "\(input.cluster) \(input.region) \(input.sts)" }

    /// Every vector; empty when the file is missing (tests check the count).
    public static let all: [TokenVector] = {
        struct File: Decodable { var vectors: [TokenVector] }
        let url = Paths.conformance.appendingPathComponent("token/vectors.json")
        guard let data = try? Data(contentsOf: url), let file = try? JSONDecoder().decode(File.self, from: data) else {
            return []
        }
        return file.vectors
    }()
}
