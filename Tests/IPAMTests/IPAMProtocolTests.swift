import Foundation
import IPAMProtocol
import TestSupport
import Testing
import WireJSON

@Suite("ipamd socket protocol")
struct IPAMProtocolTests {
    static let key = AttachmentKey(container: "3f2a9c", ifname: "eth0", network: "nodeboot")
    static let pod = PodReference(namespace: "default", name: "nginx", uid: "6b1f")
    static let assignment = Assignment(
        ips: ["10.0.97.30/32"], device: 1, table: 2, mtu: 9001, vpcCIDRs: ["10.0.0.0/16"], externalSNAT: false,
        eni: "eni-0a1")

    @Test("requests: the exact line, and decode(encode(r)) == r")
    func requests() throws {
        let add = Request.add(Self.key, netns: "/var/run/netns/cni-1", pod: Self.pod)
        #expect(
            add.json().text
                == #"{"v":"1.0","op":"add","container":"3f2a9c","ifname":"eth0","network":"nodeboot","netns":"/var/run/netns/cni-1","pod":{"namespace":"default","name":"nginx","uid":"6b1f"}}"#
        )
        #expect(add.json().line.last == 0x0A)
        #expect(
            Request.gc(network: "nodeboot", valid: [Self.key]).json().text
                == #"{"v":"1.0","op":"gc","network":"nodeboot","valid":[{"container":"3f2a9c","ifname":"eth0"}]}"#)
        for request in [
            add, .del(Self.key, pod: Self.pod, reason: "sandbox removed"), .del(Self.key, pod: nil, reason: ""),
            .check(Self.key), .status, .other("reserve"),
            .gc(network: "nodeboot", valid: [Self.key, AttachmentKey(container: "9d", ifname: "eth1", network: "nodeboot")]),
        ] {
            let (version, decoded) = try Request.decode(try JSON(parsing: request.json().text))
            #expect(version == IPAMWire.version)
            #expect(decoded == request)
        }
    }

    @Test("replies: each kind round-trips as the answer to its request")
    func replies() throws {
        let cases: [(Request, Reply)] = [
            (.add(Self.key, netns: "/n", pod: Self.pod), .added(Self.assignment)),
            (.check(Self.key), .checked(Self.assignment)),
            (.del(Self.key, pod: nil, reason: ""), .deleted(known: true, Self.assignment)),
            (.del(Self.key, pod: nil, reason: ""), .deleted(known: false, nil)),
            (.status, .status(["ready": true, "free": 12])),
            (
                .gc(network: "nodeboot", valid: []),
                .collected([
                    Released(key: Self.key, address: "10.0.97.30", pod: Self.pod),
                    Released(
                        key: AttachmentKey(container: "k", ifname: "eth0", network: "nodeboot"), address: "10.0.97.31", pod: nil),
                ])
            ),
            (
                .add(Self.key, netns: "/n", pod: Self.pod),
                .failed(ProtocolError(.noAddress, "no free address: ipamd has 0 of 27 free"))
            ),
        ]
        for (request, reply) in cases {
            #expect(try Reply.decode(try JSON(parsing: reply.json().text), answering: request) == reply)
        }
        let failed = Reply.failed(ProtocolError(.noAddress, "none")).json()
        #expect(failed["error"]?["retry"]?.bool == true, "noAddress is retryable")
        #expect(Reply.failed(ProtocolError(.badRequest, "x")).json()["error"]?["retry"]?.bool == false)
    }

    @Test("versions: another minor is served, fields it does not know are ignored; another major is refused")
    func versions() throws {
        let newer = try JSON(
            parsing: #"{"v":"1.7","op":"check","container":"c","ifname":"eth0","network":"n","future":{"x":1}}"#)
        let (version, request) = try Request.decode(newer)
        #expect(version == ProtocolVersion(major: 1, minor: 7))
        #expect(request == .check(AttachmentKey(container: "c", ifname: "eth0", network: "n")))
        let major = #expect(throws: ProtocolError.self) {
            try Request.decode(try JSON(parsing: #"{"v":"2.0","op":"status"}"#))
        }
        #expect(major?.code == .version)
        #expect(major?.accepts == ["1"])
        #expect(major?.message.contains("2.0") == true)
        // A version-2 daemon still serves version-1 plugins for one release.
        #expect(ProtocolVersion(major: 2, minor: 0).accepts(ProtocolVersion(major: 1, minor: 3)))
        #expect(!ProtocolVersion(major: 3, minor: 0).accepts(ProtocolVersion(major: 1, minor: 0)))
        #expect(ProtocolVersion("1") == nil && ProtocolVersion("1.x") == nil && ProtocolVersion("1.2.3") == nil)
    }

    @Test(
        "bad requests name the field",
        arguments: [
            (#"[1]"#, "a request is a JSON object"), (#"{"op":"status"}"#, "field 'v' is missing"),
            (#"{"v":"one","op":"status"}"#, "field 'v': 'one' is not MAJOR.MINOR"),
            (#"{"v":"1.0"}"#, "field 'op' is missing"),
            (#"{"v":"1.0","op":"check","container":"c","ifname":"eth0"}"#, "field 'network' is missing"),
            (#"{"v":"1.0","op":"check","container":"","ifname":"eth0","network":"n"}"#, "field 'container' is empty"),
            (#"{"v":"1.0","op":"check","container":7,"ifname":"eth0","network":"n"}"#, "field 'container' is not a string"),
            (#"{"v":"1.0","op":"add","container":"c","ifname":"eth0","network":"n","netns":"/n"}"#, "field 'pod' is missing"),
            (
                #"{"v":"1.0","op":"add","container":"c","ifname":"eth0","network":"n","netns":"/n","pod":{"name":"x"}}"#,
                "field 'pod.namespace' is missing"
            ),
        ])
    func badRequests(text: String, message: String) throws {
        let error = #expect(throws: ProtocolError.self) { try Request.decode(try JSON(parsing: text)) }
        #expect(error?.code == .badRequest)
        #expect(error?.message == message)
    }

    @Test("framing: lines split across reads and several in one read; a line past 64 KiB is refused")
    func framing() throws {
        var framer = LineFramer()
        #expect(try framer.append(Array(#"{"a":"#.utf8)).isEmpty)
        #expect(try framer.append(Array("1}\n{\"b\":2}\n{".utf8)) == [Array(#"{"a":1}"#.utf8), Array(#"{"b":2}"#.utf8)])
        #expect(framer.pending == 1)
        var large = LineFramer()
        #expect(throws: ProtocolError.self) {
            _ = try large.append([UInt8](repeating: 0x20, count: IPAMWire.maxMessageBytes + 1))
        }
    }

    @Test("the host veth name is aws-cni's: eni + sha1(namespace.name)[:11]")
    func vethName() {
        #expect(hostVethName(namespace: "default", name: "nginx") == "enic440f455693")
        #expect(hostVethName(namespace: "default", name: "nginx", prefix: "cali") == "calic440f455693")
        #expect(hostVethName(namespace: "kube-system", name: "coredns-5d78c9869d-abcde").count == 14)
    }

    /// A Unix-socket server in Python: answers each line according to the request's `op`
    /// (`status`: a good reply; `check`: silence; `del`: closes; `add`: not JSON).
    static let server = #"""
        import os, socket, sys, threading, json
        path = sys.argv[-1] if False else PATH
        try: os.unlink(path)
        except FileNotFoundError: pass
        server = socket.socket(socket.AF_UNIX); server.bind(path); server.listen(8)
        print(0, flush=True)
        def handle(conn):
            data = b''
            while b'\n' not in data:
                chunk = conn.recv(4096)
                if not chunk: return
                data += chunk
            request = json.loads(data.split(b'\n')[0])
            print(request['op'], flush=True)
            if request['op'] == 'status':
                conn.sendall(b'{"v":"1.3","ok":true,"status":{"ready":true},"later":1}\n')
            elif request['op'] == 'check':
                threading.Event().wait(10)
            elif request['op'] == 'del':
                conn.close(); return
            else:
                conn.sendall(b'not json\n')
        while True:
            conn, _ = server.accept()
            threading.Thread(target=handle, args=(conn,), daemon=True).start()
        """#

    @Test("the client: a reply, silence bounded by the answer timeout, a closed connection, bad JSON, no daemon")
    func client() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ipamd-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/ipamd.sock"
        let (process, _, _) = try await PythonServer.start("PATH = '\(path)'\n" + Self.server)
        defer { kill(process.processIdentifier, SIGKILL) }
        let client = IPAMClient(socketPath: path, connectTimeout: .seconds(1), answerTimeout: .milliseconds(400))

        #expect(try client.send(.status) == .status(["ready": true]))
        let started = ContinuousClock.now
        let silent = #expect(throws: IPAMClient.Failure.self) { try client.send(.check(Self.key)) }
        #expect(silent?.kind == .timeout)
        #expect(ContinuousClock.now - started < .seconds(3))
        let closed = #expect(throws: IPAMClient.Failure.self) { try client.send(.del(Self.key, pod: nil, reason: "")) }
        #expect(closed?.kind == .unreachable)
        let garbage = #expect(throws: IPAMClient.Failure.self) {
            try client.send(.add(Self.key, netns: "/n", pod: Self.pod))
        }
        #expect(garbage?.kind == .badReply)
        let absent = IPAMClient(socketPath: directory + "/none.sock")
        let missing = #expect(throws: IPAMClient.Failure.self) { try absent.send(.status) }
        #expect(missing?.kind == .unreachable)
        #expect(missing?.message.contains("systemctl status nodeboot-ipamd") == true)
    }
}
