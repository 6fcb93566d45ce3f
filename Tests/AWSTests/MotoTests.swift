import AWS
import Foundation
import Support
import TestSupport
import Testing

/// The same client code path as against the testbed, against moto (`moto_server`, PyPI).
@Suite(
    "AWS client against moto", .enabled(if: MotoServer.isAvailable, "moto_server is not installed (pip install 'moto[server]')"))
struct MotoTests {
    static func client(_ moto: MotoServer) -> AWSClient {
        let environment = ["AWS_ENDPOINT_URL": moto.endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"]
        return AWSClient(
            region: "us-west-2", credentials: EnvironmentCredentialProvider(environment: environment)!,
            transport: ProxyingTransport(settings: ProxySettings(environment: [:])),
            endpoints: EndpointResolver(environment: environment), policy: .aws(environment: ["AWS_MAX_ATTEMPTS": "2"]))
    }

    @Test("DescribeInstances, DescribeInstanceTypes and DescribeCluster work against moto")
    func callFlow() async throws {
        let moto = try await MotoServer.start()
        let instanceId = try await moto.boto3(
            """
            ec2 = boto3.client('ec2', **kw)
            r = ec2.run_instances(ImageId='ami-12c6146b', MinCount=1, MaxCount=1, InstanceType='m5.large')
            print(r['Instances'][0]['InstanceId'])
            """)
        let expectedDNS = try await moto.boto3(
            """
            ec2 = boto3.client('ec2', **kw)
            print(ec2.describe_instances(InstanceIds=['\(instanceId)'])['Reservations'][0]['Instances'][0]['PrivateDnsName'])
            """)
        _ = try await moto.boto3(
            """
            eks = boto3.client('eks', **kw)
            eks.create_cluster(name='my-cluster', roleArn='arn:aws:iam::123456789012:role/eks',
                resourcesVpcConfig={'subnetIds': ['subnet-1']},
                kubernetesNetworkConfig={'serviceIpv4Cidr': '10.100.0.0/16'})
            """)
        let client = Self.client(moto)
        defer { Task { await (client.transport as? ProxyingTransport)?.shutdown() } }

        let instance = try await client.describeInstance(id: instanceId)
        #expect(instance.privateDnsName == expectedDNS)
        #expect(instance.privateDnsName.hasSuffix(".internal"))
        #expect(instance.instanceType == "m5.large")

        let type = try await client.describeInstanceType("m5.large")
        #expect(type.maxENIs == 3)
        #expect(type.ipv4AddressesPerInterface == 10)

        let cluster = try await client.describeCluster(name: "my-cluster")
        #expect(cluster.name == "my-cluster")
        #expect(cluster.status == "ACTIVE" || cluster.status == "CREATING")
        #expect(cluster.endpoint.hasPrefix("https://"))
        #expect(!cluster.certificateAuthority.isEmpty)

        await #expect {
            try await client.describeCluster(name: "no-such-cluster")
        } throws: { error in
            let error = error as? AWSError
            return error?.code == "ResourceNotFoundException" && error?.hint?.contains("no-such-cluster") == true
        }
        await #expect {
            try await client.describeInstance(id: "i-00000000000000000")
        } throws: { error in
            (error as? AWSError)?.code == "InvalidInstanceID.NotFound"
        }
    }
}
