extension TestbedConfiguration {
    /// The VPC and subnets behind EC2's ENI API, and how long its changes take to show.
    ///
    /// - `vpc`: `id` and `cidrs` (`ipv6Cidrs`); absent fields come from the primary ENI's IMDS
    ///   values (`vpc-id`, `vpc-ipv4-cidr-blocks`, `vpc-ipv6-cidr-blocks`).
    /// - `subnets`: `id`, `cidr`, `ipv6Cidr`, `availabilityZone` (the instance's), `tags`. The
    ///   subnet of each ENI in `instance` and `networkInterfaces` exists too, from its IMDS values,
    ///   unless listed here under the same id (then this entry wins: a /27 makes exhaustion quick).
    /// - `imdsLagMs`: how long an attach, a detach or an address change takes to show in IMDS
    ///   `network/interfaces/macs/` (0).
    /// - `detachLagMs`: how long a detached ENI stays `detaching` before it is `available` (0).
    public struct Network: Codable, Sendable, Equatable {
        public var vpc: VPC
        public var subnets: [Subnet]
        public var imdsLagMs: Int
        public var detachLagMs: Int

        public init(vpc: VPC = VPC(), subnets: [Subnet] = [], imdsLagMs: Int = 0, detachLagMs: Int = 0) {
            self.vpc = vpc
            self.subnets = subnets
            self.imdsLagMs = imdsLagMs
            self.detachLagMs = detachLagMs
        }

        public struct VPC: Codable, Sendable, Equatable {
            public var id: String?
            public var cidrs: [String]?
            public var ipv6Cidrs: [String]?

            public init(id: String? = nil, cidrs: [String]? = nil, ipv6Cidrs: [String]? = nil) {
                self.id = id
                self.cidrs = cidrs
                self.ipv6Cidrs = ipv6Cidrs
            }

            enum CodingKeys: String, CodingKey, CaseIterable { case id, cidrs, ipv6Cidrs }

            public init(from decoder: any Decoder) throws {
                try rejectUnknownKeys(decoder, CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                id = try c.decodeIfPresent(String.self, forKey: .id)
                cidrs = try c.decodeIfPresent([String].self, forKey: .cidrs)
                ipv6Cidrs = try c.decodeIfPresent([String].self, forKey: .ipv6Cidrs)
            }
        }

        public struct Subnet: Codable, Sendable, Equatable {
            public var id: String
            public var cidr: String
            public var ipv6Cidr: String?
            public var availabilityZone: String?
            public var tags: [String: String]

            public init(
                id: String, cidr: String, ipv6Cidr: String? = nil, availabilityZone: String? = nil,
                tags: [String: String] = [:]
            ) {
                self.id = id
                self.cidr = cidr
                self.ipv6Cidr = ipv6Cidr
                self.availabilityZone = availabilityZone
                self.tags = tags
            }

            enum CodingKeys: String, CodingKey, CaseIterable { case id, cidr, ipv6Cidr, availabilityZone, tags }

            public init(from decoder: any Decoder) throws {
                try rejectUnknownKeys(decoder, CodingKeys.self)
                let c = try decoder.container(keyedBy: CodingKeys.self)
                id = try c.decode(String.self, forKey: .id)
                cidr = try c.decode(String.self, forKey: .cidr)
                ipv6Cidr = try c.decodeIfPresent(String.self, forKey: .ipv6Cidr)
                availabilityZone = try c.decodeIfPresent(String.self, forKey: .availabilityZone)
                tags = try c.decodeIfPresent([String: String].self, forKey: .tags) ?? [:]
            }
        }

        enum CodingKeys: String, CodingKey, CaseIterable { case vpc, subnets, imdsLagMs, detachLagMs }

        public init(from decoder: any Decoder) throws {
            try rejectUnknownKeys(decoder, CodingKeys.self)
            let c = try decoder.container(keyedBy: CodingKeys.self)
            vpc = try c.decodeIfPresent(VPC.self, forKey: .vpc) ?? VPC()
            subnets = try c.decodeIfPresent([Subnet].self, forKey: .subnets) ?? []
            imdsLagMs = try c.decodeIfPresent(Int.self, forKey: .imdsLagMs) ?? 0
            detachLagMs = try c.decodeIfPresent(Int.self, forKey: .detachLagMs) ?? 0
        }

        func validationErrors() -> [String] {
            var problems: [String] = []
            if let id = vpc.id, !id.hasPrefix("vpc-") { problems.append("network.vpc.id: '\(id)' does not start with vpc-") }
            for (i, cidr) in (vpc.cidrs ?? []).enumerated() where IPv4CIDR(cidr) == nil {
                problems.append("network.vpc.cidrs[\(i)]: '\(cidr)' is not an IPv4 CIDR block without host bits")
            }
            for (i, cidr) in (vpc.ipv6Cidrs ?? []).enumerated() where IPv6CIDR(cidr) == nil {
                problems.append("network.vpc.ipv6Cidrs[\(i)]: '\(cidr)' is not an IPv6 CIDR block without host bits")
            }
            var ids: Set<String> = []
            for (i, subnet) in subnets.enumerated() {
                if !subnet.id.hasPrefix("subnet-") {
                    problems.append("network.subnets[\(i)].id: '\(subnet.id)' does not start with subnet-")
                }
                if !ids.insert(subnet.id).inserted {
                    problems.append("network.subnets[\(i)].id: '\(subnet.id)' is listed twice")
                }
                if let cidr = IPv4CIDR(subnet.cidr) {
                    // AWS allows subnets from /16 to /28.
                    if !(16...28).contains(cidr.length) {
                        problems.append("network.subnets[\(i)].cidr: '\(subnet.cidr)' is not between /16 and /28")
                    }
                } else {
                    problems.append("network.subnets[\(i)].cidr: '\(subnet.cidr)' is not an IPv4 CIDR block without host bits")
                }
                if let ipv6 = subnet.ipv6Cidr {
                    if let cidr = IPv6CIDR(ipv6) {
                        if cidr.length > 80 {
                            problems.append("network.subnets[\(i)].ipv6Cidr: '\(ipv6)' is smaller than a /80 prefix")
                        }
                    } else {
                        problems.append("network.subnets[\(i)].ipv6Cidr: '\(ipv6)' is not an IPv6 CIDR block without host bits")
                    }
                }
            }
            if imdsLagMs < 0 { problems.append("network.imdsLagMs: must not be negative") }
            if detachLagMs < 0 { problems.append("network.detachLagMs: must not be negative") }
            return problems
        }
    }
}
