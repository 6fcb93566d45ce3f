import TestSupport
import Testing

@testable import Systemd

/// The decisions of `SystemdServiceManager` about a unit's job, driven through a recorded bus
/// (the real-systemd scenario, scripts/systemd-test.py, checks the same against systemd 252).
@Suite("unit jobs over a recorded bus")
struct UnitJobTests {
    static let unit = "kubelet.service"
    static let journalLine = "kubelet[42]: E1204 failed to run Kubelet: invalid configuration"

    /// A manager on `bus` whose journal has one line of the unit itself; `filters` records what was asked.
    static func manager(
        _ bus: RecordedBus, connects: Locked<Int> = Locked(0), filters: Locked<[JournalReader.Filter]> = Locked([]),
        next: RecordedBus? = nil
    ) throws -> SystemdServiceManager {
        try SystemdServiceManager(
            connect: { () throws(SystemdError) -> any SystemdBus in
                let count = connects.update { count in
                    count += 1
                    return count
                }
                return count == 1 ? bus : (next ?? bus)
            },
            journal: { _, filter, _ in
                filters.update { $0.append(filter) }
                return ["systemd[1]: kubelet.service: Main process exited", journalLine]
            }, journalPauses: [.milliseconds(1)])
    }

    static func state(_ active: String, _ sub: String, result: String = "success") -> UnitState {
        UnitState(loadState: "loaded", activeState: active, subState: sub, result: result)
    }

    @Test("a start pins the unit, confirms the JobRemoved match before queueing, waits for active, unpins")
    func start() async throws {
        let bus = RecordedBus([Self.unit: .init()])
        let after = try await Self.manager(bus).perform(.start, unit: Self.unit, timeout: .seconds(5))
        #expect(after.activeState == "active")
        #expect(
            bus.actions == [
                "LoadUnit kubelet.service", "RefUnit kubelet.service", "Subscribe", "StartUnit kubelet.service replace",
                "UnrefUnit kubelet.service",
            ])
    }

    @Test("a unit still activating after its job is waited for until active")
    func activating() async throws {
        var script = RecordedBus.Script()
        script.after = [Self.state("activating", "start"), Self.state("activating", "start"), Self.state("active", "running")]
        let bus = RecordedBus([Self.unit: script])
        let after = try await Self.manager(bus).perform(.restart, unit: Self.unit, timeout: .seconds(5))
        #expect(after.activeState == "active")
        #expect(bus.actions.contains("RestartUnit kubelet.service replace"))
        #expect(bus.calls.filter { $0 == "Get ActiveState kubelet.service" }.count == 4)  // 1 before, 3 after
    }

    @Test("a failed job is .unitFailed with its result, the unit's state and the journal lines of the new invocation")
    func failedJob() async throws {
        var script = RecordedBus.Script()
        script.jobResult = "failed"
        script.after = [Self.state("failed", "failed", result: "exit-code")]
        let bus = RecordedBus([Self.unit: script])
        let filters = Locked<[JournalReader.Filter]>([])
        await #expect {
            _ = try await Self.manager(bus, filters: filters).perform(.start, unit: Self.unit, timeout: .seconds(5))
        } throws: { error in
            guard let error = error as? SystemdError else { return false }
            return error.code == .unitFailed
                && error.message
                    == "start of kubelet.service failed: job result 'failed'; the unit is failed/failed (Result=exit-code)"
                && error.journal.last == Self.journalLine
        }
        #expect(filters.update { $0.first?.invocation } == String(repeating: "ab", count: 16))
        #expect(bus.actions.last == "UnrefUnit kubelet.service")
    }

    @Test("a start skipped by a failed condition names the condition as in the unit file")
    func conditionFailed() async throws {
        var script = RecordedBus.Script()
        script.after = [Self.state("inactive", "dead")]
        script.conditionResult = false
        script.conditions = [
            UnitCheck(
                type: "ConditionPathExists", trigger: false, negate: false, parameter: "/etc/eks/kubelet/environment",
                state: -1)
        ]
        let bus = RecordedBus([Self.unit: script])
        await #expect {
            _ = try await Self.manager(bus).perform(.start, unit: Self.unit, timeout: .seconds(5))
        } throws: { error in
            let message = (error as? SystemdError)?.message ?? ""
            return (error as? SystemdError)?.code == .unitFailed
                && message.contains("its condition failed (ConditionPathExists=/etc/eks/kubelet/environment)")
        }
    }

    @Test("inactive after the start: success for a oneshot that ran, a failure for a simple service that exited")
    func inactiveAfterStart() async throws {
        var oneshot = RecordedBus.Script()
        oneshot.type = "oneshot"
        oneshot.after = [Self.state("inactive", "dead")]
        let done = try await Self.manager(RecordedBus([Self.unit: oneshot]))
            .perform(.start, unit: Self.unit, timeout: .seconds(5))
        #expect(done.activeState == "inactive")

        var simple = oneshot
        simple.type = "simple"
        await #expect {
            _ = try await Self.manager(RecordedBus([Self.unit: simple])).perform(.start, unit: Self.unit, timeout: .seconds(5))
        } throws: { error in
            ((error as? SystemdError)?.message ?? "").contains("its main process exited right after it started (Type=simple)")
        }
    }

    @Test("a main process that exits and is being restarted fails the start at once")
    func autoRestart() async throws {
        var script = RecordedBus.Script()
        script.after = [Self.state("activating", "auto-restart", result: "exit-code")]
        let start = ContinuousClock.now
        await #expect {
            _ = try await Self.manager(RecordedBus([Self.unit: script]))
                .perform(.start, unit: Self.unit, timeout: .seconds(30))
        } throws: { error in
            ((error as? SystemdError)?.message ?? "").contains("its main process exited and systemd is restarting it")
        }
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test("a job that never finishes is .timeout within its bound, naming the limit")
    func timeout() async throws {
        var script = RecordedBus.Script()
        script.jobResult = nil
        let start = ContinuousClock.now
        await #expect {
            _ = try await Self.manager(RecordedBus([Self.unit: script]))
                .perform(.start, unit: Self.unit, timeout: .milliseconds(300))
        } throws: { error in
            guard let error = error as? SystemdError else { return false }
            return error.code == .timeout && error.message.contains("did not finish within 0.3 s")
        }
        #expect(ContinuousClock.now - start < .seconds(10))
    }

    @Test("an unknown unit is .notFound and no job is queued")
    func notFound() async throws {
        let bus = RecordedBus([:])
        await #expect {
            _ = try await Self.manager(bus).perform(.start, unit: Self.unit, timeout: .seconds(5))
        } throws: { error in
            (error as? SystemdError)?.code == .notFound
        }
        #expect(!bus.actions.contains { $0.hasPrefix("StartUnit") })
    }

    @Test("a connection closed by the peer mid-job: the job runs again on a new connection")
    func reconnect() async throws {
        var script = RecordedBus.Script()
        script.closesOnJob = true
        let first = RecordedBus([Self.unit: script])
        let second = RecordedBus([Self.unit: .init()])
        let connects = Locked(0)
        let after = try await Self.manager(first, connects: connects, next: second)
            .perform(.start, unit: Self.unit, timeout: .seconds(5))
        #expect(after.activeState == "active")
        #expect(connects.update { $0 } == 2)
        #expect(second.actions.contains("StartUnit kubelet.service replace"))
    }

    @Test("a cancelled wait ends at once with .cancelled, not at the timeout")
    func cancelled() async throws {
        var script = RecordedBus.Script()
        script.jobResult = nil
        let manager = try Self.manager(RecordedBus([Self.unit: script]))
        let start = ContinuousClock.now
        let task = Task { try await manager.perform(.start, unit: Self.unit, timeout: .seconds(60)) }
        try await Task.sleep(for: .milliseconds(100))
        task.cancel()
        await #expect {
            _ = try await task.value
        } throws: { error in
            (error as? SystemdError)?.code == .cancelled
        }
        #expect(ContinuousClock.now - start < .seconds(30))
    }

    @Test("failure(of:): nil while the unit runs; its state and journal once it crashed")
    func watch() async throws {
        let running = RecordedBus([Self.unit: .init(before: Self.state("active", "running"))])
        #expect(await (try Self.manager(running)).failure(of: Self.unit) == nil)
        let crashed = RecordedBus([Self.unit: .init(before: Self.state("activating", "auto-restart", result: "exit-code"))])
        let failure = try #require(await (try Self.manager(crashed)).failure(of: Self.unit))
        #expect(failure.code == .unitFailed)
        #expect(failure.message.contains("keeps failing (systemd restarts it)"))
        #expect(failure.journal.last == Self.journalLine)
    }

    @Test("a JobRemoved that comes after several reads is waited for; another client's job is ignored")
    func lateSignal() async throws {
        var script = RecordedBus.Script()
        script.signalAfterPolls = 4
        let bus = RecordedBus([Self.unit: script])
        bus.broadcastForeignJob()
        let after = try await Self.manager(bus).perform(.start, unit: Self.unit, timeout: .seconds(5))
        #expect(after.activeState == "active")
    }

    @Test("two operations at once run one after the other: neither loses its job's signal")
    func concurrent() async throws {
        var slow = RecordedBus.Script()
        slow.signalAfterPolls = 5
        var fast = RecordedBus.Script()
        fast.signalAfterPolls = 0
        let bus = RecordedBus(["containerd.service": slow, Self.unit: fast])
        let manager = try Self.manager(bus)
        async let first = manager.perform(.restart, unit: "containerd.service", timeout: .seconds(5))
        async let second = manager.perform(.start, unit: Self.unit, timeout: .seconds(5))
        let (a, b) = try await (first, second)
        #expect(a.activeState == "active" && b.activeState == "active")
        let jobs = bus.actions.filter { $0.hasPrefix("RestartUnit") || $0.hasPrefix("StartUnit") || $0.hasPrefix("UnrefUnit") }
        // Each job is unpinned before the next one is queued.
        #expect(jobs.count == 4)
        #expect(jobs[1].hasPrefix("UnrefUnit") && jobs[3].hasPrefix("UnrefUnit"), "\(jobs)")
    }
}
