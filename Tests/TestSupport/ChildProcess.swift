public import Foundation

/// Runs a program to completion and captures what it printed. For tests only.
public struct ChildProcess: Sendable {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs `arguments[0]` (looked up in `PATH` through `/usr/bin/env`) and waits at most `timeout`
    /// without blocking a thread of the cooperative pool (in-process servers need those).
    /// `environment` replaces the child's environment when given.
    public static func run(
        _ arguments: [String], environment: [String: String]? = nil, stdin: String? = nil,
        timeout: TimeInterval = 120
    ) async throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = arguments
        if let environment { process.environment = environment }
        let out = Pipe()
        let err = Pipe()
        let input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        let exited = AsyncStream<Void>.makeStream()
        process.terminationHandler = { _ in exited.continuation.finish() }
        try process.run()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        // Drain both pipes on their own threads so a chatty child never blocks on a full pipe.
        async let outData = drain(out)
        async let errData = drain(err)
        let pid = process.processIdentifier
        let watchdog = Task {
            try await Task.sleep(for: .seconds(timeout))
            kill(pid, SIGKILL)  // not SIGTERM: test children may inherit it ignored
        }
        for await _ in exited.stream {}
        watchdog.cancel()
        return Result(
            status: process.terminationStatus, stdout: String(decoding: await outData, as: UTF8.self),
            stderr: String(decoding: await errData, as: UTF8.self))
    }

    /// Reads to EOF on a thread of its own: not `DispatchQueue.global()`, whose threads on Linux
    /// are the ones Swift concurrency runs on (a few children waiting on an in-process testbed
    /// would block every one of them, and the testbed could not answer).
    static func drain(_ pipe: Pipe) async -> Data {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: pipe.fileHandleForReading.readDataToEndOfFile())
            }
        }
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
