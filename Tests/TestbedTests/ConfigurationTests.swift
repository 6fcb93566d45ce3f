import Foundation
import SigV4
import TestSupport
import Testbed
import Testing

@Suite("Testbed configuration")
struct ConfigurationTests {
    func write(_ text: String, name: String = "testbed.json", in directory: URL? = nil) throws -> URL {
        let dir =
            directory
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("testbed-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try Data(text.utf8).write(to: url)
        return url
    }

    @Test("the bundled instance is nodeadm's aemm-default-config.json, byte for byte")
    func bundled() throws {
        let resource = Paths.packageRoot.appendingPathComponent("Sources/Testbed/Resources/aemm-default-config.json")
        let fileBytes = try Data(contentsOf: resource)
        #expect(TestbedConfiguration.bundledInstanceJSON + "\n" == String(decoding: fileBytes, as: UTF8.self))
        // ../shared/conformance is part of every checkout's surroundings (CI lays it beside the
        // clone): a missing copy is a failure, not a skip.
        let conformance = Paths.conformance.appendingPathComponent("nodeadm/_infra/aemm-default-config.json")
        let shared = try Data(contentsOf: conformance)
        #expect(shared == fileBytes)
    }

    @Test("an empty file gives the defaults")
    func empty() throws {
        let url = try write("{}")
        let configuration = try TestbedConfiguration.load(from: url.path)
        #expect(configuration.clusters.map(\.name) == ["my-cluster"])
        #expect(configuration.clusters.first?.serviceIpv4Cidr == "10.100.0.0/16")
        #expect(configuration.role.name == "baskinc-role")
        #expect(configuration.privateDnsName == "ip-172-16-34-43.us-west-2.compute.internal")
        #expect(configuration.staticKeys.map(\.accessKeyId) == ["testing"])
        #expect(configuration.imdsTokenMaxTtlSeconds == 21600)
        // Unset endpoint and CA: DescribeCluster reports the testbed's own API server.
        #expect(configuration.clusters.first?.endpoint == nil)
        #expect(configuration.clusters.first?.certificateAuthority == nil)
        #expect(configuration.kubeAPI == TestbedConfiguration.KubeAPI())
        #expect(configuration.lateStart.kubeSeconds == 0)
    }

    @Test("kubeAPI decodes its fields; CA files are relative to the configuration file; a missing CA file is named")
    func kubeAPI() async throws {
        let url = try write(
            #"{"kubeAPI": {"clusterName": "other", "caCertificateFile": "ca.crt", "caKeyFile": "/abs/ca.key", "#
                + #""users": [{"accessKeyId": "AKIAEXAMPLE", "username": "alice", "groups": ["devs"]}], "#
                + #""defaultMappings": false}, "lateStart": {"kubeSeconds": 2}}"#)
        let configuration = try TestbedConfiguration.load(from: url.path)
        #expect(configuration.kubeAPI.clusterName == "other")
        #expect(configuration.kubeAPI.caCertificateFile == url.deletingLastPathComponent().appendingPathComponent("ca.crt").path)
        #expect(configuration.kubeAPI.caKeyFile == "/abs/ca.key")
        #expect(configuration.kubeAPI.users == [.init(accessKeyId: "AKIAEXAMPLE", username: "alice", groups: ["devs"])])
        #expect(configuration.kubeAPI.defaultMappings == false)
        #expect(configuration.lateStart.kubeSeconds == 2)
        let error = await #expect(throws: TestbedError.self) { try await Testbed.start(configuration) }
        #expect(error?.code == .configuration)
        #expect(error?.message.contains("kubeAPI.caCertificateFile") == true, "\(String(describing: error))")
    }

    @Test(
        "a bad file is an error naming the file and the field",
        arguments: [
            (#"{"clusterz": []}"#, "clusterz"),
            (#"{"clusters": [{"name": 5}]}"#, "clusters[0].name"),
            (#"{"clusters": [{"serviceIpv4Cidr": "10.100.0.0/33"}]}"#, "clusters[0].serviceIpv4Cidr"),
            (#"{"imdsTokenMaxTtlSeconds": 0}"#, "imdsTokenMaxTtlSeconds"),
            (#"{"faults": [{"endpoint": "s3"}]}"#, "faults[0].endpoint"),
            (#"{"faults": [{"endpoint": "eks", "action": "DescribeCluster"}]}"#, "faults[0].action"),
            (#"{"instance": "missing-aemm.json"}"#, "instance"),
            (#"{"role": {"expiration": "tomorrow"}}"#, "role.expiration"),
            (#"{"networkInterfaces": [{"mac": "zz", "deviceNumber": 1}]}"#, "networkInterfaces[0].mac"),
            (#"{"kubeAPI": {"caFile": "ca.crt"}}"#, "kubeAPI.caFile"),
            (#"{"kubeAPI": {"caCertificateFile": "ca.crt"}}"#, "caKeyFile"),
            (#"{"kubeAPI": {"advertiseEndpoint": "http://169.254.0.30"}}"#, "kubeAPI.advertiseEndpoint"),
            (#"{"kubeAPI": {"users": [{"accessKeyId": "AKIA", "username": ""}]}}"#, "kubeAPI.users[0].username"),
            (#"{"lateStart": {"kubeSeconds": -1}}"#, "lateStart.kubeSeconds"),
            (#"{"clusters": [{"certificateAuthority": "not*base64"}]}"#, "clusters[0].certificateAuthority"),
            ("{not json", "not valid JSON"),
        ])
    func bad(text: String, field: String) throws {
        let url = try write(text)
        do {
            _ = try TestbedConfiguration.load(from: url.path)
            Issue.record("\(text) was accepted")
        } catch let error as TestbedError {
            #expect(error.description.contains(url.path), "\(error)")
            #expect(error.description.contains(field), "\(error)")
        }
    }

    @Test("an instance file is read relative to the configuration file and starts that instance")
    func instanceFile() async throws {
        let aemm = """
            {"imdsv2": true, "metadata": {"values": {"instance-id": "i-0abcdef1234567890", "instance-type": "t3.medium",
             "mac": "0a:00:00:00:00:01"}},
             "dynamic": {"values": {"instance-identity-document": {"region": "eu-west-1", "instanceId": "i-0abcdef1234567890"}}},
             "userdata": {"values": {"userdata": "hello"}}}
            """
        let instance = try write(aemm, name: "instance.json")
        let config = try write(
            #"{"instance": "instance.json", "clusters": [{"name": "other", "serviceIpv6Cidr": "fd00::/108"}]}"#,
            in: instance.deletingLastPathComponent())
        let configuration = try TestbedConfiguration.load(from: config.path)
        try await withTestbed(configuration) { testbed throws in
            #expect(testbed.region == "eu-west-1")
            let token = try await HTTP.validToken(testbed)
            #expect(try await HTTP.imds(testbed, "/latest/meta-data/instance-id", token: token).text == "i-0abcdef1234567890")
            #expect(try await HTTP.imds(testbed, "/latest/user-data", token: token).text == "hello")
            let macs = try await HTTP.imds(testbed, "/latest/meta-data/network/interfaces/macs/", token: token)
            #expect(macs.text == "0a:00:00:00:00:01/")
            let cluster = try await HTTP.describeCluster(testbed, "other")
            #expect(cluster.status == 200)
            #expect(cluster.text.contains(#""serviceIpv6Cidr":"fd00::/108","ipFamily":"ipv6""#))
            let instances = try await HTTP.query(
                testbed, service: "ec2",
                [("Action", "DescribeInstances"), ("Version", "2016-11-15"), ("InstanceId.1", "i-0abcdef1234567890")])
            #expect(xmlValue("instanceType", in: instances.text) == "t3.medium")
        }
    }

    @Test("configured role credentials are served and accepted")
    func configuredRole() async throws {
        var configuration = TestbedConfiguration.default
        configuration.role = .init(
            name: "node-role", accessKeyId: "ASIAFIXEDFIXEDFIXED1", secretAccessKey: "fixed-secret",
            sessionToken: "fixed-token", expiration: "2035-01-01T00:00:00Z")
        try await withTestbed(configuration) { testbed throws in
            #expect(testbed.roleCredentials.accessKeyID == "ASIAFIXEDFIXEDFIXED1")
            let token = try await HTTP.validToken(testbed)
            let list = try await HTTP.imds(testbed, "/latest/meta-data/iam/security-credentials/", token: token)
            #expect(list.text == "node-role")
            let document = try await HTTP.imds(
                testbed, "/latest/meta-data/iam/security-credentials/node-role", token: token)
            #expect(document.text.contains(#""Expiration" : "2035-01-01T00:00:00Z""#))
            let identity = try await HTTP.getCallerIdentity(testbed)
            #expect(xmlValue("Arn", in: identity.text)?.contains("assumed-role/node-role/") == true)
        }
    }
}
