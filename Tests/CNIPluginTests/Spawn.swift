import Foundation
import Synchronization

/// Runs a program to completion with posix_spawn on the calling thread: environment and stdin in,
/// status, stdout and stderr out, every call retried on EINTR. The plugin runs hundreds of times
/// (16 at once) in these tests; Foundation's pipe reads stop the process on an interrupted read
/// under that much child churn.
enum Spawn {
    struct Result: Sendable {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static let spawning = Mutex<Void>(())

    static func run(_ arguments: [String], environment: [String: String], stdin: String) -> Result {
        var input: [Int32] = [0, 0]
        var output: [Int32] = [0, 0]
        var errors: [Int32] = [0, 0]
        // Pipes are made close-on-exec under a lock every spawn here takes, so no child spawned
        // meanwhile by another thread inherits this one's pipe ends (its EOF would wait for that child).
        let made = spawning.withLock { _ in
            [0, 1, 2].allSatisfy { index in
                var pair: [Int32] = [0, 0]
                guard pipe(&pair) == 0 else { return false }
                for descriptor in pair { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
                switch index {
                case 0: input = pair
                case 1: output = pair
                default: errors = pair
                }
                return true
            }
        }
        guard made else { return Result(status: -1, stdout: "", stderr: "pipe: \(String(cString: strerror(errno)))") }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_adddup2(&actions, input[0], 0)
        posix_spawn_file_actions_adddup2(&actions, output[1], 1)
        posix_spawn_file_actions_adddup2(&actions, errors[1], 2)
        let argv = arguments.map { strdup($0) } + [nil]
        let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for pointer in argv { free(pointer) }
            for pointer in envp { free(pointer) }
        }
        var pid: pid_t = 0
        let spawned = spawning.withLock { _ in
            let result = posix_spawnp(&pid, arguments[0], &actions, nil, argv, envp)
            for descriptor in [input[0], output[1], errors[1]] { close(descriptor) }
            return result
        }
        guard spawned == 0 else {
            for descriptor in [input[1], output[0], errors[0]] { close(descriptor) }
            return Result(status: -1, stdout: "", stderr: "posix_spawnp \(arguments[0]): \(String(cString: strerror(spawned)))")
        }
        var bytes = Array(stdin.utf8)[...]
        while !bytes.isEmpty {
            let written = bytes.withUnsafeBytes { write(input[1], $0.baseAddress, $0.count) }
            if written > 0 {
                bytes = bytes.dropFirst(written)
            } else if written < 0 && errno == EINTR {
                continue
            } else {
                break
            }
        }
        close(input[1])
        let stdout = drain(output[0])
        let stderr = drain(errors[0])
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let exited = status & 0x7F == 0
        return Result(
            status: exited ? (status >> 8) & 0xFF : 128 + (status & 0x7F), stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Reads to EOF and closes (the outputs here are small: one pipe drained after the other).
    static func drain(_ descriptor: Int32) -> [UInt8] {
        defer { close(descriptor) }
        var data: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 16 << 10)
        while true {
            let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
            if count > 0 {
                data += buffer[..<count]
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                return data
            }
        }
    }

    /// `run` on a thread of its own, awaited without holding a thread of the cooperative pool
    /// (16 plugins at once on a 2-core machine would otherwise run 2 at a time).
    static func run(_ arguments: [String], environment: [String: String], stdin: String) async -> Result {
        await withCheckedContinuation { continuation in
            Thread.detachNewThread {
                continuation.resume(returning: run(arguments, environment: environment, stdin: stdin))
            }
        }
    }
}
