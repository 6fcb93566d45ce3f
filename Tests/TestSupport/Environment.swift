import Foundation

/// Sets (or, with nil, unsets) an environment variable of this process for the duration of
/// `body`, then puts back what was there. The environment is the whole process's: suites that
/// use this must be `.serialized` and must not run beside others that read the variable.
public func withEnvironment<R>(_ name: String, _ value: String?, _ body: () throws -> R) rethrows -> R {
    let previous = getenv(name).map { String(cString: $0) }
    setEnvironment(name, value)
    defer { setEnvironment(name, previous) }
    return try body()
}

private func setEnvironment(_ name: String, _ value: String?) {
    if let value { setenv(name, value, 1) } else { unsetenv(name) }
}

/// A fresh directory `/tmp/<prefix>.XXXXXX` (mkdtemp, mode 0700); the caller removes it with
/// `removeTree`. A short path, unlike `FileManager.temporaryDirectory`, so that AF_UNIX socket
/// paths under it stay within 108 bytes.
public func temporaryDirectory(_ prefix: String) throws -> String {
    var template = Array("/tmp/\(prefix).XXXXXX".utf8CString)
    guard let path = mkdtemp(&template) else {
        throw TestSupportError("mkdtemp /tmp/\(prefix).XXXXXX: \(String(cString: strerror(errno)))")
    }
    return String(cString: path)
}

/// Removes `path` and everything under it.
public func removeTree(_ path: String) {
    // Test cleanup only: a directory left in /tmp is harmless.
    try? FileManager.default.removeItem(atPath: path)
}
