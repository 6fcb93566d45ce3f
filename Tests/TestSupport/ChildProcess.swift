public import Foundation
import Support

/// Runs a program to completion and captures what it printed. For tests only.
public struct ChildProcess: Sendable {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs `arguments[0]` (looked up in the child's `PATH` unless it holds a `/`) and waits at
    /// most `timeout` (then kills its process group) without blocking a thread of the
    /// cooperative pool (in-process servers need those). `environment` replaces the child's
    /// environment when given. Spawned with `posix_spawn` through `Support.ExternalCommand`, not
    /// Foundation's `Process`, whose `run()` crashed intermittently in this suite (a bad pointer
    /// in its memcpy while another test spawned at the same time).
    public static func run(
        _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil,
        timeout: TimeInterval = 120
    ) async throws -> Result {
        guard let name = arguments.first else { throw TestSupportError("ChildProcess.run: no program given") }
        let environment = environment ?? ProcessInfo.processInfo.environment
        guard let path = name.contains("/") ? name : ExternalCommand.find(name, environment: environment) else {
            return Result(status: 127, stdout: "", stderr: "\(name): not found in PATH\n")
        }
        let output = try await ExternalCommand.run(
            path, Array(arguments.dropFirst()), environment: environment, input: stdin.map { Array($0.utf8) },
            outputLimit: 1 << 26, timeout: .milliseconds(Int64(timeout * 1000)))
        return Result(
            status: output.status, stdout: String(decoding: output.stdout, as: UTF8.self),
            stderr: String(decoding: output.stderr, as: UTF8.self))
    }

    /// Whether a program is on `PATH`.
    public static func exists(_ name: String) -> Bool {
        shell("command -v \(name)")
    }

    /// Whether `python3 -c "import <module>"` works.
    public static func pythonHas(_ module: String) -> Bool {
        shell("python3 -c 'import \(module)' 2>/dev/null")
    }

    /// Synchronous `sh -c` returning success, for test conditions (`.enabled(if:)`), which cannot
    /// await. `system` waits on its own child; `Process.waitUntilExit` would spin a run loop.
    static func shell(_ command: String) -> Bool {
        system(command + " >/dev/null 2>&1") == 0
    }

    /// The environment of this process without `AWS_*` variables and proxies, plus `extra`.
    public static func cleanEnvironment(_ extra: [String: String] = [:]) -> [String: String] {
        var environment = ProcessInfo.processInfo.environment.filter {
            !$0.key.hasPrefix("AWS_") && !$0.key.lowercased().hasSuffix("_proxy")
        }
        environment["AWS_CONFIG_FILE"] = "/dev/null"
        environment["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
        environment["AWS_PAGER"] = ""
        environment.merge(extra) { $1 }
        return environment
    }
}

/// A TCP port nobody listens on right now (bind to 0, read, close).
public func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw TestSupportError("socket() failed: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
    }
    guard bound == 0 else { throw TestSupportError("bind() failed: errno \(errno)") }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
    }
    guard named == 0 else { throw TestSupportError("getsockname() failed: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

public struct TestSupportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The package root (the directory of Package.swift), and the shared conformance data next to it.
public enum Paths {
    public static let packageRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    public static let conformance = packageRoot.deletingLastPathComponent().appendingPathComponent("shared/conformance")
    public static let debugBinaries = packageRoot.appendingPathComponent(".build/debug")
}
