import Foundation

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
