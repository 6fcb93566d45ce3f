import IPAMProtocol
public import WireJSON

/// The plugin's network configuration on stdin: the conflist entry ipamd writes (docs/ipamd.md §8:
/// `type`, `socket`, `mtu`, `vethPrefix`, `ipFamily`) with the fields the runtime inserts
/// (`cniVersion`, `name`, `prevResult`, `runtimeConfig`, `cni.dev/valid-attachments`).
public struct NetworkConfig: Sendable, Equatable {
    public var cniVersion: String
    public var name: String
    public var type: String
    /// ipamd's socket.
    public var socket: String
    /// The MTU ipamd wrote; the one in ipamd's add reply wins.
    public var mtu: Int?
    /// The host veth's name prefix (`eni`): with the 11 hex digits, at most 15 bytes.
    public var vethPrefix: String
    public var ipv6: Bool
    /// The final result of the ADD chain (DEL, CHECK), nil when absent or null.
    public var prevResult: JSON?
    public var runtimeConfig: JSON?
    /// GC: the attachments the runtime still has (`cni.dev/valid-attachments`).
    public var validAttachments: [(container: String, ifname: String)]

    public static func == (lhs: NetworkConfig, rhs: NetworkConfig) -> Bool {
        lhs.cniVersion == rhs.cniVersion && lhs.name == rhs.name && lhs.type == rhs.type && lhs.socket == rhs.socket
            && lhs.mtu == rhs.mtu && lhs.vethPrefix == rhs.vethPrefix && lhs.ipv6 == rhs.ipv6
            && lhs.prevResult == rhs.prevResult && lhs.runtimeConfig == rhs.runtimeConfig
            && lhs.validAttachments.map(\.container) == rhs.validAttachments.map(\.container)
            && lhs.validAttachments.map(\.ifname) == rhs.validAttachments.map(\.ifname)
    }

    /// The `cniVersion` of stdin as far as it can be read (for the error object of a config
    /// that fails later, and for VERSION); nil when stdin is not an object with one.
    public static func version(in bytes: [UInt8]) -> String? {
        guard let json = try? JSON(parsing: bytes) else { return nil }  // nil is the answer for bad JSON
        return json["cniVersion"]?.string
    }

    /// Parses stdin: not JSON or not an object is code 6, a missing or mistyped field code 7, a
    /// version this plugin does not speak code 1.
    public static func parse(_ bytes: [UInt8]) throws(CNIError) -> NetworkConfig {
        let json: JSON
        do {
            json = try JSON(parsing: bytes)
        } catch {
            throw CNIError(
                .decodingFailure, "the network configuration on stdin is not JSON: \(error)",
                details: "the runtime passes the plugin's entry of the conflist on stdin")
        }
        guard json.members != nil else {
            throw CNIError(.decodingFailure, "the network configuration on stdin is not a JSON object")
        }
        func string(_ key: String, required: Bool) throws(CNIError) -> String? {
            guard let value = json[key], !value.isNull else {
                if required { throw CNIError(.invalidConfig, "the network configuration has no '\(key)'") }
                return nil
            }
            guard let text = value.string else {
                throw CNIError(.invalidConfig, "the network configuration's '\(key)' is not a string")
            }
            return text
        }
        guard let cniVersion = try string("cniVersion", required: true), !cniVersion.isEmpty else {
            throw CNIError(.invalidConfig, "the network configuration's 'cniVersion' is empty")
        }
        guard CNIVersion.supported.contains(cniVersion) else {
            throw CNIError(
                .incompatibleVersion,
                "CNI version \(cniVersion) is not supported by nodeboot-cni (it supports "
                    + CNIVersion.supported.joined(separator: ", ") + ")",
                details: "set the conflist's cniVersion to one of those")
        }
        let name = try string("name", required: true) ?? ""
        guard !name.isEmpty else { throw CNIError(.invalidConfig, "the network configuration's 'name' is empty") }
        let type = try string("type", required: false) ?? "nodeboot-cni"
        let socket = try string("socket", required: false) ?? IPAMWire.socketPath
        var mtu: Int?
        if let value = json["mtu"], !value.isNull {
            // aws-cni's conflist writes the MTU as a string; ipamd's as a number.
            guard let parsed = value.int ?? value.string.flatMap({ Int($0) }), (576...65535).contains(parsed) else {
                throw CNIError(.invalidConfig, "the network configuration's 'mtu' is not an MTU (576 to 65535): \(value.text)")
            }
            mtu = parsed
        }
        let vethPrefix = try string("vethPrefix", required: false) ?? "eni"
        guard !vethPrefix.isEmpty, vethPrefix.utf8.count <= 4,
            Invocation.interfaceNameProblem(vethPrefix) == nil
        else {
            throw CNIError(
                .invalidConfig,
                "the network configuration's 'vethPrefix' '\(vethPrefix)' is not 1 to 4 characters of an interface name",
                details: "the host veth is the prefix and 11 hex digits, at most 15 bytes")
        }
        let family = try string("ipFamily", required: false) ?? "ipv4"
        guard family == "ipv4" || family == "ipv6" else {
            throw CNIError(.invalidConfig, "the network configuration's 'ipFamily' is '\(family)', not ipv4 or ipv6")
        }
        var valid: [(container: String, ifname: String)] = []
        if let list = json["cni.dev/valid-attachments"], !list.isNull {
            guard let entries = list.array else {
                throw CNIError(.invalidConfig, "'cni.dev/valid-attachments' is not a list")
            }
            for entry in entries {
                guard let container = entry["containerID"]?.string, let ifname = entry["ifname"]?.string else {
                    throw CNIError(
                        .invalidConfig, "an entry of 'cni.dev/valid-attachments' has no containerID or ifname: \(entry.text)")
                }
                valid.append((container, ifname))
            }
        }
        let prevResult = json["prevResult"].flatMap { $0.isNull ? nil : $0 }
        if let prevResult, prevResult.members == nil {
            throw CNIError(.decodingFailure, "the network configuration's 'prevResult' is not an object")
        }
        return NetworkConfig(
            cniVersion: cniVersion, name: name, type: type, socket: socket, mtu: mtu, vethPrefix: vethPrefix,
            ipv6: family == "ipv6", prevResult: prevResult,
            runtimeConfig: json["runtimeConfig"].flatMap { $0.isNull ? nil : $0 }, validAttachments: valid)
    }
}
