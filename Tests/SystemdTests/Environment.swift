import Glibc

/// Sets (or, with nil, unsets) an environment variable of this process for the duration of
/// `body`, then puts back what was there. The suites that use it are `.serialized`.
func withEnvironment<R>(_ name: String, _ value: String?, _ body: () throws -> R) rethrows -> R {
    let previous = getenv(name).map { String(cString: $0) }
    set(name, value)
    defer { set(name, previous) }
    return try body()
}

private func set(_ name: String, _ value: String?) {
    if let value { setenv(name, value, 1) } else { unsetenv(name) }
}

/// A fresh directory under /tmp, removed by the caller.
func temporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard let path = mkdtemp(&template) else { throw POSIXFailure(operation: "mkdtemp", code: errno) }
    return String(cString: path)
}

func removeTree(_ path: String) {
    _ = system("rm -rf '\(path)'")  // test cleanup only; a leftover directory in /tmp is harmless
}

struct POSIXFailure: Error, CustomStringConvertible {
    var operation: String
    var code: Int32
    var description: String { "\(operation): \(String(cString: strerror(code)))" }
}
