import Synchronization

/// A value that closures under test update from any thread (what they saw, how often they ran).
public final class Locked<T: Sendable>: Sendable {
    private let value: Mutex<T>

    public init(_ value: T) { self.value = Mutex(value) }

    /// Runs `body` with the value, under the lock.
    public func update<R>(_ body: (inout T) -> R) -> R { value.withLock { body(&$0) } }

    public var current: T { value.withLock { $0 } }
}
