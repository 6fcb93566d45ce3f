public import WireJSON

/// A success result of ADD (and the `prevResult` DEL and CHECK get back): interfaces, IPs
/// pointing at their interface, routes, DNS. Written in the configuration's `cniVersion`: 0.3.x
/// and 0.4.0 give each IP a `version`; 1.1.0 adds an interface's `mtu`.
///
/// nodeboot's result is what DEL needs without ipamd (docs/cni.md §4): interface 0 is the host
/// veth (its name, no `sandbox`), interface 1 the pod's (`sandbox` = its netns), and the IPs
/// point at interface 1. Chained plugins (portmap) re-encode the result and drop keys they do not
/// know, so nothing rides in keys of its own.
public struct CNIResult: Sendable, Equatable {
    public struct Interface: Sendable, Equatable {
        public var name: String
        public var mac: String
        public var sandbox: String
        public var mtu: Int?

        public init(name: String, mac: String = "", sandbox: String = "", mtu: Int? = nil) {
            self.name = name
            self.mac = mac
            self.sandbox = sandbox
            self.mtu = mtu
        }
    }

    public struct IPConfig: Sendable, Equatable {
        /// `10.0.97.30/32`.
        public var address: String
        public var gateway: String
        public var interface: Int?

        public init(address: String, gateway: String = "", interface: Int? = nil) {
            self.address = address
            self.gateway = gateway
            self.interface = interface
        }
    }

    public struct Route: Sendable, Equatable {
        public var destination: String
        public var gateway: String

        public init(destination: String, gateway: String = "") {
            self.destination = destination
            self.gateway = gateway
        }
    }

    public var interfaces: [Interface]
    public var ips: [IPConfig]
    public var routes: [Route]

    public init(interfaces: [Interface], ips: [IPConfig], routes: [Route]) {
        self.interfaces = interfaces
        self.ips = ips
        self.routes = routes
    }

    public func json(cniVersion: String) -> JSON {
        let withVersion = !CNIVersion.atLeast(cniVersion, "1.0.0")
        let withMTU = CNIVersion.atLeast(cniVersion, "1.1.0")
        let interfaces: [JSON] = interfaces.map { interface in
            var members: [JSON.Member] = [.init("name", .string(interface.name))]
            if !interface.mac.isEmpty { members.append(.init("mac", .string(interface.mac))) }
            if withMTU, let mtu = interface.mtu { members.append(.init("mtu", .int(mtu))) }
            if !interface.sandbox.isEmpty { members.append(.init("sandbox", .string(interface.sandbox))) }
            return .object(members)
        }
        let ips: [JSON] = ips.map { ip in
            var members: [JSON.Member] = []
            if withVersion { members.append(.init("version", .string(ip.address.contains(":") ? "6" : "4"))) }
            if let interface = ip.interface { members.append(.init("interface", .int(interface))) }
            members.append(.init("address", .string(ip.address)))
            if !ip.gateway.isEmpty { members.append(.init("gateway", .string(ip.gateway))) }
            return .object(members)
        }
        let routes: [JSON] = routes.map { route in
            var members: [JSON.Member] = [.init("dst", .string(route.destination))]
            if !route.gateway.isEmpty { members.append(.init("gw", .string(route.gateway))) }
            return .object(members)
        }
        return [
            "cniVersion": .string(cniVersion), "interfaces": .array(interfaces), "ips": .array(ips),
            "routes": .array(routes), "dns": [:],
        ]
    }

    /// A `prevResult` of any supported version; fields this plugin does not use are ignored,
    /// a field of the wrong type is code 6 naming it.
    public init(_ json: JSON) throws(CNIError) {
        func fail(_ what: String) -> CNIError {
            CNIError(.decodingFailure, "prevResult: \(what)", details: json.text)
        }
        func text(_ object: JSON, _ key: String, _ path: String) throws(CNIError) -> String {
            guard let value = object[key], !value.isNull else { return "" }
            guard let string = value.string else { throw fail("'\(path).\(key)' is not a string") }
            return string
        }
        var interfaces: [Interface] = []
        for (index, entry) in (json["interfaces"]?.array ?? []).enumerated() {
            let path = "interfaces[\(index)]"
            guard entry.members != nil else { throw fail("'\(path)' is not an object") }
            interfaces.append(
                Interface(
                    name: try text(entry, "name", path), mac: try text(entry, "mac", path),
                    sandbox: try text(entry, "sandbox", path), mtu: entry["mtu"]?.int))
        }
        var ips: [IPConfig] = []
        for (index, entry) in (json["ips"]?.array ?? []).enumerated() {
            let path = "ips[\(index)]"
            guard entry.members != nil else { throw fail("'\(path)' is not an object") }
            let address = try text(entry, "address", path)
            guard !address.isEmpty else { throw fail("'\(path)' has no address") }
            var interface: Int?
            if let value = entry["interface"], !value.isNull {
                guard let number = value.int else { throw fail("'\(path).interface' is not an integer") }
                interface = number
            }
            ips.append(IPConfig(address: address, gateway: try text(entry, "gateway", path), interface: interface))
        }
        var routes: [Route] = []
        for (index, entry) in (json["routes"]?.array ?? []).enumerated() {
            let path = "routes[\(index)]"
            routes.append(Route(destination: try text(entry, "dst", path), gateway: try text(entry, "gw", path)))
        }
        self.init(interfaces: interfaces, ips: ips, routes: routes)
    }

    /// The host veth this plugin made: the first interface without a sandbox.
    public var hostInterface: Interface? { interfaces.first { $0.sandbox.isEmpty } }

    /// The addresses on the pod's interface `ifname` (IPs whose index points at it; an IP without
    /// an index counts, as the spec allows).
    public func addresses(on ifname: String) -> [String] {
        ips.filter { ip in
            guard let index = ip.interface else { return true }
            return interfaces.indices.contains(index) && interfaces[index].name == ifname
                && !interfaces[index].sandbox.isEmpty
        }.map(\.address)
    }
}
