import AWS
import CFuzzDriver
import Dispatch
import Foundation
import Support

/// The input as bytes.
public func bytes(_ data: UnsafePointer<UInt8>, _ size: Int) -> [UInt8] {
    Array(UnsafeBufferPointer(start: data, count: size))
}

/// Runs async code to completion from libFuzzer's synchronous callback.
public func runBlocking(_ body: @escaping @Sendable () async -> Void) {
    let done = DispatchSemaphore(value: 0)
    Task {
        await body()
        done.signal()
    }
    done.wait()
}

/// A transport that answers every request with the same response: the fuzzer's bytes as the body
/// of whatever the client asked for, so the real clients' parsing and error paths run on them.
public struct FixedTransport: HTTPTransport {
    public var response: HTTPResponse
    public init(_ response: HTTPResponse) { self.response = response }
    public func send(_ request: HTTPRequest, timeout: Duration) async throws -> HTTPResponse { response }
}

/// One attempt, no waits: a fuzz run must not sleep.
public let oneAttempt = RetryPolicy(
    maxAttempts: 1, baseDelay: .zero, maxBackoff: .zero, deadline: .seconds(5), attemptTimeout: .seconds(5),
    random: { 0 }, sleep: { _ in })

/// A target's entry point: libFuzzer's driver with the target's callback (its flags, a corpus
/// directory, or files to run once).
public func fuzzMain(
    _ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt {
    var count = argc
    var arguments = argv
    return LLVMFuzzerRunDriver(&count, &arguments, callback)
}
