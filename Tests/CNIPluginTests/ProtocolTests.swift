import CNIPlugin
import Glibc
import IPAMProtocol
import Netlink
import TestSupport
import Testing
import WireJSON

/// The CNI protocol without a kernel: environment, configuration, versions, results, error
/// objects and codes (vpc-cni.md §13), with ipamd and the kernel as recording fakes.
@Suite("nodeboot-cni: the CNI protocol")
struct ProtocolTests {
    static let config =
        #"{"cniVersion":"1.0.0","name":"nodeboot","type":"nodeboot-cni","socket":"/run/nodeboot/ipamd.sock","mtu":9001,"vethPrefix":"eni","ipFamily":"ipv4"}"#

    static let environment = [
        "CNI_COMMAND": "ADD", "CNI_CONTAINERID": "4b8c0f3e9a1d", "CNI_NETNS": "/var/run/netns/cni-1234",
        "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin",
        "CNI_ARGS":
            "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=nginx;K8S_POD_INFRA_CONTAINER_ID=4b8c0f3e9a1d;K8S_POD_UID=u-1",
    ]

    static let assignment = Assignment(
        ips: ["10.0.97.30/32"], device: 1, table: 2, mtu: 9001, vpcCIDRs: ["10.0.0.0/16"], externalSNAT: false,
        eni: "eni-0b2")

    /// Runs the plugin against fakes; the outcome, what ipamd was asked and whether the kernel
    /// was touched.
    static func run(
        _ environment: [String: String], stdin: String = config,
        ipamd: @escaping @Sendable (Request) -> Reply = { _ in .added(assignment) }
    ) -> (outcome: Plugin.Outcome, json: JSON?, requests: [Request], kernel: RecordingKernel) {
        let fake = FakeIPAMD(answer: ipamd)
        let kernel = RecordingKernel()
        let plugin = Plugin(environment: environment, ipam: { _, _ in fake }, kernel: kernel)
        let outcome = plugin.run(stdin: Array(stdin.utf8))
        return (outcome, try? JSON(parsing: outcome.stdout), fake.requests, kernel)
    }

    static func with(_ changes: [String: String?]) -> [String: String] {
        var environment = Self.environment
        for (key, value) in changes { environment[key] = value }
        return environment
    }

    @Test(
        "VERSION lists the supported versions in the version asked (the latest when stdin has none)",
        arguments: [
            (#"{"cniVersion":"1.0.0"}"#, "1.0.0"), (#"{"cniVersion":"0.4.0"}"#, "0.4.0"), ("", "1.1.0"),
            ("not json", "1.1.0"), (#"{"cniVersion":"9.9.9"}"#, "1.1.0"),
        ])
    func version(stdin: String, answered: String) {
        let (outcome, _, requests, kernel) = Self.run(["CNI_COMMAND": "VERSION", "CNI_CONTAINERID": "-bad"], stdin: stdin)
        #expect(outcome.status == 0)
        #expect(
            outcome.stdout
                == #"{"cniVersion":"\#(answered)","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0","1.1.0"]}"#
                + "\n")
        #expect(requests.isEmpty && kernel.untouched)
    }

    @Test(
        "missing or malformed variables: code 4 naming each, before ipamd or the kernel is touched",
        arguments: [
            (["CNI_COMMAND": nil], "CNI_COMMAND is not set"),
            (["CNI_COMMAND": "SETUP"], "CNI_COMMAND 'SETUP' is not a CNI command"),
            (["CNI_NETNS": nil], "ADD: CNI_NETNS is not set"),
            (["CNI_NETNS": nil, "CNI_IFNAME": ""], "ADD: CNI_NETNS is not set; CNI_IFNAME is not set"),
            (["CNI_CONTAINERID": nil], "ADD: CNI_CONTAINERID is not set"),
            (["CNI_CONTAINERID": "-abc"], "ADD: CNI_CONTAINERID '-abc' is not a container id"),
            (["CNI_IFNAME": "eth0/1"], "ADD: CNI_IFNAME 'eth0/1' is not an interface name"),
            (["CNI_IFNAME": "averyveryverylongname"], "ADD: CNI_IFNAME 'averyveryverylongname' is longer than 15 bytes"),
            (["CNI_COMMAND": "CHECK", "CNI_NETNS": nil], "CHECK: CNI_NETNS is not set"),
            (["CNI_COMMAND": "DEL", "CNI_IFNAME": nil], "DEL: CNI_IFNAME is not set"),
            (["CNI_ARGS": "K8S_POD_NAME"], "ADD: CNI_ARGS part 'K8S_POD_NAME' is not KEY=VALUE"),
        ] as [([String: String?], String)])
    func environment(changes: [String: String?], message: String) throws {
        let (outcome, json, requests, kernel) = Self.run(Self.with(changes))
        #expect(outcome.status == 1)
        let error = try #require(json)
        #expect(error["code"] == 4)
        #expect(error["cniVersion"] == "1.0.0")
        #expect(error["msg"]?.string?.hasPrefix(message) == true, "\(error.text)")
        #expect(requests.isEmpty && kernel.untouched && kernel.openedPaths.isEmpty)
    }

    @Test(
        "a malformed or unusable configuration: the spec's code, nothing touched",
        arguments: [
            ("", 6, "the network configuration on stdin is not JSON"),
            ("{\"cniVersion\":", 6, "the network configuration on stdin is not JSON"),
            ("[1,2]", 6, "the network configuration on stdin is not a JSON object"),
            (#"{"name":"nodeboot"}"#, 7, "the network configuration has no 'cniVersion'"),
            (#"{"cniVersion":1,"name":"nodeboot"}"#, 7, "the network configuration's 'cniVersion' is not a string"),
            (#"{"cniVersion":"1.0.0"}"#, 7, "the network configuration has no 'name'"),
            (
                #"{"cniVersion":"2.0.0","name":"nodeboot"}"#, 1,
                "CNI version 2.0.0 is not supported by nodeboot-cni (it supports 0.3.0, 0.3.1, 0.4.0, 1.0.0, 1.1.0)"
            ),
            (#"{"cniVersion":"0.2.0","name":"nodeboot"}"#, 1, "CNI version 0.2.0 is not supported"),
            (#"{"cniVersion":"1.0.0","name":"nodeboot","mtu":"big"}"#, 7, "the network configuration's 'mtu' is not an MTU"),
            (#"{"cniVersion":"1.0.0","name":"nodeboot","mtu":70000}"#, 7, "the network configuration's 'mtu' is not an MTU"),
            (
                #"{"cniVersion":"1.0.0","name":"nodeboot","vethPrefix":"enilong"}"#, 7,
                "the network configuration's 'vethPrefix' 'enilong'"
            ),
            (
                #"{"cniVersion":"1.0.0","name":"nodeboot","ipFamily":"dual"}"#, 7,
                "the network configuration's 'ipFamily' is 'dual'"
            ),
            (
                #"{"cniVersion":"1.0.0","name":"nodeboot","prevResult":[]}"#, 6,
                "the network configuration's 'prevResult' is not an object"
            ),
        ])
    func configuration(stdin: String, code: Int, message: String) throws {
        let (outcome, json, requests, kernel) = Self.run(Self.environment, stdin: stdin)
        #expect(outcome.status == 1)
        let error = try #require(json)
        #expect(error["code"]?.int == code, "\(error.text)")
        #expect(error["msg"]?.string?.hasPrefix(message) == true, "\(error.text)")
        #expect(requests.isEmpty && kernel.untouched && kernel.openedPaths.isEmpty)
    }

    @Test(
        "CHECK needs 0.4.0, STATUS and GC need 1.1.0: code 1 below",
        arguments: [("CHECK", "0.3.1", "0.4.0"), ("STATUS", "1.0.0", "1.1.0"), ("GC", "0.4.0", "1.1.0")])
    func commandVersions(command: String, version: String, minimum: String) throws {
        let stdin = #"{"cniVersion":"\#(version)","name":"nodeboot"}"#
        let (outcome, json, requests, kernel) = Self.run(Self.with(["CNI_COMMAND": command]), stdin: stdin)
        let error = try #require(json)
        #expect(outcome.status == 1)
        #expect(error["code"] == 1)
        #expect(
            error["msg"]?.string
                == "\(command) needs cniVersion \(minimum) or later; the configuration says \(version)")
        #expect(requests.isEmpty && kernel.untouched)
    }

    @Test("the mtu may be a string (aws-cni's conflist writes one); defaults: ipamd's socket, vethPrefix eni, IPv4")
    func configurationDefaults() throws {
        let config = try NetworkConfig.parse(Array(#"{"cniVersion":"0.4.0","name":"aws","mtu":"9001"}"#.utf8))
        #expect(config.mtu == 9001)
        #expect(config.socket == "/run/nodeboot/ipamd.sock")
        #expect(config.vethPrefix == "eni")
        #expect(!config.ipv6)
        #expect(config.type == "nodeboot-cni")
    }

    @Test("ipamd not running: code 11 naming the socket and the cause; nothing wired")
    func ipamdDown() throws {
        let kernel = RecordingKernel()
        let client = IPAMClient(socketPath: "/nonexistent/ipamd.sock")
        let plugin = Plugin(environment: Self.environment, ipam: { _, _ in client }, kernel: kernel)
        let down = plugin.run(stdin: Array(Self.config.utf8))
        let error = try #require(try? JSON(parsing: down.stdout))
        #expect(down.status == 1)
        #expect(error["code"] == 11)
        #expect(
            error["msg"]?.string?.hasPrefix(
                "ipamd is not running: /run/nodeboot/ipamd.sock: cannot reach ipamd at /nonexistent/ipamd.sock: "
                    + "No such file or directory") == true, "\(error.text)")
        #expect(kernel.untouched)
    }

    /// An ipamd that accepted the connection and went away before answering (SIGKILLed mid-request).
    struct VanishingIPAMD: IPAMService {
        var message: String
        func send(_ request: Request) throws(IPAMClient.Failure) -> Reply {
            throw IPAMClient.Failure(kind: .unreachable, message: message)
        }
    }

    @Test("ipamd gone mid-request (closed or reset without answering): code 11 saying so, not 'not running'; nothing wired")
    func ipamdVanished() throws {
        for message in [
            "ipamd at /run/nodeboot/ipamd.sock closed the connection without answering",
            "ipamd at /run/nodeboot/ipamd.sock: recv: Connection reset by peer",
        ] {
            let kernel = RecordingKernel()
            let plugin = Plugin(
                environment: Self.environment, ipam: { _, _ in VanishingIPAMD(message: message) }, kernel: kernel)
            let outcome = plugin.run(stdin: Array(Self.config.utf8))
            let error = try #require(try? JSON(parsing: outcome.stdout))
            #expect(outcome.status == 1)
            #expect(error["code"] == 11)
            #expect(error["msg"]?.string == "ipamd stopped answering: \(message)")
            #expect(kernel.untouched)
        }
    }

    @Test("ipamd's refusal passes through verbatim: noAddress is code 11 (the pool may grow), others 100")
    func ipamdRefusals() throws {
        let message =
            "no free address: ipamd has 0 of 27 free and cannot grow: m5.large allows 3 ENIs × 10 IPv4 addresses; "
            + "all 27 are assigned"
        let (outcome, json, requests, kernel) = Self.run(Self.environment) { _ in
            .failed(ProtocolError(.noAddress, message))
        }
        let error = try #require(json)
        #expect(outcome.status == 1)
        #expect(
            error == ["cniVersion": "1.0.0", "code": 11, "msg": .string(message), "details": "ipamd answered noAddress to add"])
        #expect(requests.map(\.op) == ["add"])
        #expect(kernel.untouched)

        let refused = Self.run(Self.environment) { _ in .failed(ProtocolError(.badRequest, "field 'pod.name' is not a string")) }
        #expect(refused.json?["code"] == 100)
        #expect(refused.json?["msg"] == "field 'pod.name' is not a string")
    }

    @Test("the add request carries the attachment key, the netns and the pod from CNI_ARGS")
    func addRequest() {
        let (_, _, requests, _) = Self.run(Self.environment) { _ in .failed(ProtocolError(.notReady, "starting")) }
        #expect(
            requests == [
                .add(
                    AttachmentKey(container: "4b8c0f3e9a1d", ifname: "eth0", network: "nodeboot"),
                    netns: "/var/run/netns/cni-1234", pod: PodReference(namespace: "default", name: "nginx", uid: "u-1"))
            ])
    }

    @Test(
        "GC sends the valid attachments to ipamd and undoes the host side of what it released (nothing released: the kernel is not touched; an ipamd without gc: success); STATUS without ipamd is code 50"
    )
    func gcAndStatus() throws {
        let stdin =
            #"{"cniVersion":"1.1.0","name":"nodeboot","cni.dev/valid-attachments":[{"containerID":"a1","ifname":"eth0"}]}"#
        let gc = Self.run(["CNI_COMMAND": "GC"], stdin: stdin) { _ in .collected([]) }
        #expect(gc.outcome == Plugin.Outcome(stdout: "", status: 0))
        #expect(
            gc.requests == [
                .gc(network: "nodeboot", valid: [AttachmentKey(container: "a1", ifname: "eth0", network: "nodeboot")])
            ])
        #expect(gc.kernel.untouched)
        let old = Self.run(["CNI_COMMAND": "GC"], stdin: stdin) { _ in
            .failed(ProtocolError(.unsupported, "operation 'gc' is not known to this ipamd (1.0)"))
        }
        #expect(old.outcome == Plugin.Outcome(stdout: "", status: 0) && old.kernel.untouched)
        let released = Self.run(["CNI_COMMAND": "GC"], stdin: stdin) { _ in
            .collected([
                Released(
                    key: AttachmentKey(container: "b2", ifname: "eth0", network: "nodeboot"), address: "10.0.97.31",
                    pod: PodReference(namespace: "default", name: "gone"))
            ])
        }
        #expect(released.outcome == Plugin.Outcome(stdout: "", status: 0))
        #expect(!released.kernel.untouched, "the released pod's rules and route are removed")

        let client = IPAMClient(socketPath: "/nonexistent/ipamd.sock")
        let status = Plugin(environment: ["CNI_COMMAND": "STATUS"], ipam: { _, _ in client }, kernel: RecordingKernel())
            .run(stdin: Array(stdin.utf8))
        let error = try #require(try? JSON(parsing: status.stdout))
        #expect(status.status == 1)
        #expect(error["code"] == 50)
        #expect(error["msg"]?.string?.hasPrefix("ipamd is not running: /run/nodeboot/ipamd.sock") == true)

        let ready = Self.run(["CNI_COMMAND": "STATUS"], stdin: stdin) { _ in .status(["ready": true]) }
        #expect(ready.outcome == Plugin.Outcome(stdout: "", status: 0))
        let starting = Self.run(["CNI_COMMAND": "STATUS"], stdin: stdin) { _ in .status(["ready": false]) }
        #expect(starting.json?["code"] == 50)
    }

    static let sample = CNIResult(
        interfaces: [
            .init(name: "enic440f455693", mac: "0e:d5:5f:d2:c6:5d"),
            .init(name: "eth0", mac: "0e:ab:0d:96:65:7f", sandbox: "/var/run/netns/cni-1234", mtu: 9001),
        ],
        ips: [.init(address: "10.0.97.30/32", gateway: "169.254.1.1", interface: 1)],
        routes: [.init(destination: "0.0.0.0/0", gateway: "169.254.1.1")])

    @Test(
        "the result in the version asked: 0.3.x and 0.4.0 with an IP version, 1.1.0 with the interface's MTU",
        arguments: [
            (
                "0.4.0",
                #"{"cniVersion":"0.4.0","interfaces":[{"name":"enic440f455693","mac":"0e:d5:5f:d2:c6:5d"},{"name":"eth0","mac":"0e:ab:0d:96:65:7f","sandbox":"/var/run/netns/cni-1234"}],"ips":[{"version":"4","interface":1,"address":"10.0.97.30/32","gateway":"169.254.1.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}],"dns":{}}"#
            ),
            (
                "1.0.0",
                #"{"cniVersion":"1.0.0","interfaces":[{"name":"enic440f455693","mac":"0e:d5:5f:d2:c6:5d"},{"name":"eth0","mac":"0e:ab:0d:96:65:7f","sandbox":"/var/run/netns/cni-1234"}],"ips":[{"interface":1,"address":"10.0.97.30/32","gateway":"169.254.1.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}],"dns":{}}"#
            ),
            (
                "1.1.0",
                #"{"cniVersion":"1.1.0","interfaces":[{"name":"enic440f455693","mac":"0e:d5:5f:d2:c6:5d"},{"name":"eth0","mac":"0e:ab:0d:96:65:7f","mtu":9001,"sandbox":"/var/run/netns/cni-1234"}],"ips":[{"interface":1,"address":"10.0.97.30/32","gateway":"169.254.1.1"}],"routes":[{"dst":"0.0.0.0/0","gw":"169.254.1.1"}],"dns":{}}"#
            ),
        ])
    func results(version: String, text: String) throws {
        #expect(Self.sample.json(cniVersion: version).text == text)
        let read = try CNIResult(try JSON(parsing: text))
        #expect(read.addresses(on: "eth0") == ["10.0.97.30/32"])
        #expect(read.hostInterface?.name == "enic440f455693")
        #expect(read.ips == Self.sample.ips)
    }

    @Test("a prevResult portmap passed through (keys it adds ignored); a mistyped field is code 6 naming it")
    func prevResults() throws {
        let passed = try CNIResult(
            try JSON(
                parsing:
                    #"{"cniVersion":"1.0.0","interfaces":[{"name":"eni1"},{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"10.0.0.5/32","interface":1}],"dns":{},"extra":1}"#
            ))
        #expect(passed.addresses(on: "eth0") == ["10.0.0.5/32"])
        #expect(passed.addresses(on: "eth1") == [])
        #expect(throws: CNIError.self) { try CNIResult(try! JSON(parsing: #"{"ips":[{"address":5}]}"#)) }
        do {
            _ = try CNIResult(try JSON(parsing: #"{"ips":[{"address":"10.0.0.5/32","interface":"1"}]}"#))
            Issue.record("accepted")
        } catch let error as CNIError {
            #expect(error.code == .decodingFailure)
            #expect(error.message == "prevResult: 'ips[0].interface' is not an integer")
        }
    }

    @Test("the pod comes from K8S_POD_*; without them (ctr run --cni) the container stands for it")
    func pods() throws {
        let kubelet = try Invocation.parse(Self.environment)
        #expect(kubelet.pod == PodReference(namespace: "default", name: "nginx", uid: "u-1"))
        #expect(hostVethName(namespace: "default", name: "nginx") == "enic440f455693")
        let bare = try Invocation.parse(Self.with(["CNI_ARGS": nil]))
        #expect(bare.pod == PodReference(namespace: "", name: "4b8c0f3e9a1d"))
    }

    @Test("DEL with a damaged prevResult still succeeds: the address comes from ipamd's del reply, the veth name from CNI_ARGS")
    func delDamagedPrevResult() throws {
        let stdin =
            #"{"cniVersion":"1.0.0","name":"nodeboot","prevResult":{"ips":[{"address":5}]}}"#
        let lines = Locked<[String]>([])
        let fake = FakeIPAMD { _ in .deleted(known: true, Self.assignment) }
        let kernel = RecordingKernel()
        // Every netlink request is answered "no such device / not found".
        kernel.host.respond { [RecordingNetlinkSocket.ack(for: $0, errno: ENODEV)] }
        let plugin = Plugin(
            environment: Self.with(["CNI_COMMAND": "DEL", "CNI_NETNS": nil]), ipam: { _, _ in fake }, kernel: kernel,
            log: { line in lines.update { $0.append(line) } })
        let outcome = plugin.run(stdin: Array(stdin.utf8))
        #expect(outcome == Plugin.Outcome(stdout: "", status: 0))
        #expect(fake.requests.map(\.op) == ["del"])
        #expect(lines.current.contains { $0.contains("prevResult ignored: prevResult: 'ips[0].address' is not a string") })
        #expect(
            lines.current.contains { $0.contains("10.0.97.30/32 (from ipamd), host veth enic440f455693") }, "\(lines.current)")
        // Rules to and from the address, then the veth looked up by name: no dump.
        #expect(kernel.host.sent.count == 3)
        #expect(kernel.pod.sent.isEmpty)
    }
}
