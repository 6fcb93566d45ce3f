import Foundation
import IPAM
import Testing

@Suite("CNI conflist")
struct ConflistTests {
    @Test("the bytes: cniVersion 1.0.0 with cniVersions, the plugin with ipamd's socket and MTU, then portmap")
    func bytes() {
        #expect(
            String(decoding: Conflist(mtu: 9001).bytes, as: UTF8.self)
                == #"{"cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0"],"name":"nodeboot","plugins":["#
                + #"{"type":"nodeboot-cni","socket":"/run/nodeboot/ipamd.sock","mtu":9001,"vethPrefix":"eni","ipFamily":"ipv4"},"#
                + #"{"type":"portmap","capabilities":{"portMappings":true},"snat":true}]}"# + "\n")
    }

    @Test("written by a rename inside net.d, only when the bytes change; no temporary file is left")
    func write() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("netd-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/net.d/10-nodeboot.conflist"
        #expect(try Conflist(mtu: 9001).write(path))
        #expect(try !Conflist(mtu: 9001).write(path), "same bytes: not rewritten")
        #expect(try Conflist(mtu: 1500).write(path))
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory + "/net.d") == ["10-nodeboot.conflist"])
        #expect(try String(contentsOfFile: path, encoding: .utf8).contains(#""mtu":1500"#))
    }
}
