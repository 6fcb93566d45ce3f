import FoundationEssentials
import Synchronization
import Testing

@testable import AWS

@Suite("expiring value: one fetch in flight")
struct ExpiringValueTests {
    final class Counter: Sendable {
        let value = Mutex(0)
        func next() -> Int {
            value.withLock {
                $0 += 1; return $0
            }
        }
    }

    @Test("concurrent callers share one fetch; a fresh value is reused; invalidate forces a fetch")
    func singleFlight() async throws {
        let fetches = Counter()
        let cache = ExpiringValue<Int>()
        let fetch: @Sendable () async throws -> (value: Int, refreshAt: Date) = {
            try await Task.sleep(for: .milliseconds(50))
            return (fetches.next(), Date().addingTimeInterval(3600))
        }
        let values = try await withThrowingTaskGroup(of: Int.self) { group in
            for _ in 0..<20 { group.addTask { try await cache.value(fetch: fetch) } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(values == Array(repeating: 1, count: 20))
        #expect(try await cache.value(fetch: fetch) == 1)
        await cache.invalidate()
        #expect(try await cache.value(fetch: fetch) == 2)
    }

    @Test("a stale value is fetched again; a failed fetch leaves nothing held")
    func staleAndFailure() async throws {
        let fetches = Counter()
        let cache = ExpiringValue<Int>()
        #expect(try await cache.value { (fetches.next(), Date().addingTimeInterval(-1)) } == 1)
        #expect(try await cache.value { (fetches.next(), Date().addingTimeInterval(-1)) } == 2)
        struct Boom: Error {}
        let failing = ExpiringValue<Int>()
        await #expect(throws: Boom.self) { try await failing.value { throw Boom() } }
        #expect(await failing.held == nil)
    }
}
