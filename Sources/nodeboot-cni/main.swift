import CNIPlugin

#if canImport(Glibc)
    import Glibc
#endif

// nodeboot-cni: the CNI plugin the container runtime runs for every pod sandbox (docs/cni.md).
// The environment and stdin in, the result or error JSON out; everything else is CNIPlugin's.

var environment: [String: String] = [:]
var entry = environ
while let pointer = entry.pointee {
    let text = String(cString: pointer)
    if let equals = text.firstIndex(of: "=") {
        environment[String(text[..<equals])] = String(text[text.index(after: equals)...])
    }
    entry += 1
}

var input: [UInt8] = []
var buffer = [UInt8](repeating: 0, count: 64 << 10)
while true {
    let count = buffer.withUnsafeMutableBytes { read(0, $0.baseAddress, $0.count) }
    if count > 0 {
        input += buffer[..<count]
    } else if count == 0 || errno != EINTR {
        break
    }
}

func write(_ text: String, to descriptor: Int32) {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
        let written = bytes.withUnsafeBytes { Glibc.write(descriptor, $0.baseAddress, $0.count) }
        if written > 0 {
            bytes = bytes.dropFirst(written)
        } else if written < 0 && errno == EINTR {
            continue
        } else {
            return
        }
    }
}

let outcome = Plugin(environment: environment, log: { write("nodeboot-cni: \($0)\n", to: 2) }).run(stdin: input)
write(outcome.stdout, to: 1)
exit(outcome.status)
