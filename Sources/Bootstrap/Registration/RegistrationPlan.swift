import KubeAPI
import NodeRender

/// The Node object this instance should have, and how an existing one differs from it.
struct RegistrationPlan: Sendable, Equatable {
    var providerID: String
    var labels: [String: String]
    /// From `--register-with-taints`; reconciled.
    var taints: [Node.Taint]
    /// Added at creation only (the kubelet's `node.cloudprovider.kubernetes.io/uninitialized`
    /// with `--cloud-provider=external`: the cloud controller removes it).
    var creationTaints: [Node.Taint]
    var annotations: [String: String]
    var addresses: [Node.Address]
    var capacity: [String: String]
    var allocatable: [String: String]
    /// `allocatable.cpu`, set at creation only (the kubelet reports the real value).
    var allocatableCPU: String?

    init(_ desired: DesiredNode) throws(NodeBootError) {
        let flags = KubeletFlags(desired.kubeletFlags)
        providerID = desired.providerID
        let hostname = desired.hostname.lowercased()
        labels = [
            "kubernetes.io/hostname": hostname, "kubernetes.io/os": desired.os, "kubernetes.io/arch": desired.arch,
            "beta.kubernetes.io/os": desired.os, "beta.kubernetes.io/arch": desired.arch,
            "node.kubernetes.io/instance-type": desired.instanceType, "topology.kubernetes.io/region": desired.region,
            "topology.kubernetes.io/zone": desired.zone,
        ]
        labels.merge(try flags.nodeLabels()) { $1 }
        taints = try flags.taints()
        creationTaints = []
        if flags.last("--cloud-provider") == "external" {
            let uninitialized = Node.Taint(
                key: "node.cloudprovider.kubernetes.io/uninitialized", value: "true", effect: "NoSchedule")
            if !taints.contains(where: { $0.key == uninitialized.key && $0.effect == uninitialized.effect }) {
                creationTaints = [uninitialized]
            }
        }
        annotations = ["volumes.kubernetes.io/controller-managed-attach-detach": "true"]
        if flags.last("--cloud-provider") == "external", let nodeIP = flags.last("--node-ip"), !nodeIP.isEmpty {
            annotations["alpha.kubernetes.io/provided-node-ip"] = nodeIP
        }
        var addresses: [Node.Address] = []
        func add(_ type: String, _ address: String?) {
            guard let address, !address.isEmpty else { return }
            let entry = Node.Address(type: type, address: address)
            if !addresses.contains(entry) { addresses.append(entry) }
        }
        add("InternalIP", desired.privateIPv4)
        add("InternalIP", desired.privateIPv6)
        add("InternalDNS", desired.privateDNSName)
        add("Hostname", hostname)
        self.addresses = addresses
        capacity = ["pods": String(desired.maxPods)]
        allocatable = ["pods": String(desired.maxPods)]
        if let cpus = desired.cpus, cpus > 0 {
            capacity["cpu"] = String(cpus)
            allocatableCPU = "\(cpus * 1000 - KubeReserved.cpuMillicores(onlineCPUs: cpus))m"
        }
    }

    /// The Node to create.
    func node(named name: String) -> Node {
        var allocatable = self.allocatable
        if let allocatableCPU { allocatable["cpu"] = allocatableCPU }
        return Node(
            metadata: .init(name: name, labels: labels, annotations: annotations),
            spec: .init(providerID: providerID, taints: taints + creationTaints),
            status: .init(addresses: addresses, capacity: capacity, allocatable: allocatable))
    }

    struct Difference {
        var objectPatch: Node?
        var statusPatch: Node?
        var changes: [String] = []
        var isEmpty: Bool { objectPatch == nil && statusPatch == nil }
    }

    /// What to patch so that `node` has every desired label, taint, address and capacity;
    /// what it has besides is kept.
    func difference(from node: Node) -> Difference {
        var result = Difference()
        let name = node.metadata.name
        var object = Node(apiVersion: nil, kind: nil, metadata: .init(name: name))
        let existingLabels = node.metadata.labels ?? [:]
        var labelPatch: [String: String] = [:]
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) where existingLabels[key] != value {
            labelPatch[key] = value
            result.changes.append("label \(key)=\(value)")
        }
        if !labelPatch.isEmpty { object.metadata.labels = labelPatch }
        var spec = Node.Spec()
        if (node.spec?.providerID ?? "").isEmpty {
            spec.providerID = providerID
            result.changes.append("providerID \(providerID)")
        }
        var taints = node.spec?.taints ?? []
        var taintsChanged = false
        for taint in self.taints where !taints.contains(where: { $0.matches(taint) }) {
            taints.removeAll { $0.key == taint.key && $0.effect == taint.effect }
            taints.append(taint)
            taintsChanged = true
            result.changes.append("taint \(taint)")
        }
        if taintsChanged {
            spec.taints = taints
            // The list is replaced whole: only over the version read (a 409 reads it again).
            object.metadata.resourceVersion = node.metadata.resourceVersion
        }
        if spec != Node.Spec() { object.spec = spec }
        if object.metadata.labels != nil || object.spec != nil { result.objectPatch = object }

        var status = Node.Status()
        let existingAddresses = node.status?.addresses ?? []
        let missing = addresses.filter { !existingAddresses.contains($0) }
        if !missing.isEmpty {
            status.addresses = existingAddresses + missing
            result.changes += missing.map { "address \($0.type) \($0.address)" }
        }
        let existingCapacity = node.status?.capacity ?? [:]
        var capacityPatch: [String: String] = [:]
        for (key, value) in capacity.sorted(by: { $0.key < $1.key }) where existingCapacity[key] != value {
            capacityPatch[key] = value
            result.changes.append("capacity \(key)=\(value)")
        }
        if !capacityPatch.isEmpty { status.capacity = capacityPatch }
        let existingAllocatable = node.status?.allocatable ?? [:]
        var allocatablePatch: [String: String] = [:]
        for (key, value) in allocatable.sorted(by: { $0.key < $1.key }) where existingAllocatable[key] != value {
            allocatablePatch[key] = value
            result.changes.append("allocatable \(key)=\(value)")
        }
        if !allocatablePatch.isEmpty { status.allocatable = allocatablePatch }
        if status != Node.Status() {
            result.statusPatch = Node(apiVersion: nil, kind: nil, metadata: .init(name: name), status: status)
        }
        return result
    }
}
