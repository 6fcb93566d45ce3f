import Foundation
import TestSupport
import Testing

@testable import Systemd

@Suite("systemd over sd-bus")
struct ServiceManagerTests {
    @Test(
        "on a host without systemd as PID 1, connecting throws .unavailable naming sd_bus_open_system",
        .enabled(if: !SystemdHost.isBooted, "this host runs systemd as PID 1: the system bus is there"))
    func unavailable() {
        #expect(!Journal.isAvailable)
        #expect {
            _ = try SystemdServiceManager()
        } throws: { error in
            guard let error = error as? SystemdError else { return false }
            return error.code == .unavailable && error.message.contains("sd_bus_open_system")
                && error.message.contains("is systemd PID 1?")
        }
    }

    @Test(
        "on a systemd host, an unknown unit is not-found and starting it throws .notFound",
        .enabled(if: SystemdHost.isBooted, "this host is not booted with systemd (PID 1 is not systemd)"))
    func notFound() async throws {
        let manager = try SystemdServiceManager()
        let unit = "nodeboot-test-no-such-unit.service"
        #expect(try await manager.state(of: unit).loadState == "not-found")
        await #expect {
            _ = try await manager.perform(.start, unit: unit, timeout: .seconds(10))
        } throws: { error in
            (error as? SystemdError)?.code == .notFound && (error as? SystemdError)?.unit == unit
        }
    }

    @Test("sd-bus timeouts are microseconds, never 0 (which would mean sd-bus's default of 25 s)")
    func microseconds() {
        #expect(Bus.microseconds(.seconds(90)) == 90_000_000)
        #expect(Bus.microseconds(.milliseconds(50)) == 50_000)
        #expect(Bus.microseconds(.zero) == 1)
        #expect(Bus.microseconds(.seconds(-3)) == 1)
        #expect(Bus.microseconds(.nanoseconds(10)) == 1)
    }

    @Test("D-Bus errors keep systemd's error name and map to codes")
    func errorMapping() {
        func error(_ name: String?, _ message: String?, r: Int32 = -5) -> SystemdError {
            Bus.error(
                r, name: name, message: message, unit: "kubelet.service",
                "systemd's StartUnit kubelet.service replace failed (sd_bus_call)")
        }
        let noSuchUnit = error("org.freedesktop.systemd1.NoSuchUnit", "Unit kubelet.service not found.")
        #expect(noSuchUnit.code == .notFound)
        #expect(
            noSuchUnit.message
                == "systemd's StartUnit kubelet.service replace failed (sd_bus_call): org.freedesktop.systemd1.NoSuchUnit: Unit kubelet.service not found."
        )
        #expect(noSuchUnit.unit == "kubelet.service")
        #expect(error("org.freedesktop.systemd1.UnitMasked", "Unit kubelet.service is masked.").code == .unitFailed)
        #expect(
            error("org.freedesktop.DBus.Error.AccessDenied", "Access denied").message.hasSuffix("(nodeboot must run as root)"))
        #expect(error("org.freedesktop.DBus.Error.NoReply", "Connection timed out").code == .timeout)
        let timedOut = error(nil, nil, r: -110)
        #expect(timedOut.code == .timeout)
        #expect(timedOut.message.hasSuffix("(sd_bus_call): Connection timed out"))
        #expect(error(nil, nil, r: -104).code == .bus)
    }

    @Test("states in messages")
    func describing() {
        #expect(
            SystemdServiceManager.describe(
                UnitState(loadState: "loaded", activeState: "activating", subState: "auto-restart", result: "exit-code"))
                == "activating/auto-restart (Result=exit-code)")
        #expect(
            SystemdServiceManager.describe(UnitState(loadState: "loaded", activeState: "active", subState: "mounted"))
                == "active/mounted")
    }

    @Test("conditions and asserts are named as in the unit file")
    func checks() {
        #expect(
            UnitCheck(
                type: "ConditionPathExists", trigger: false, negate: false, parameter: "/etc/eks/kubelet/environment",
                state: -1
            ).text == "ConditionPathExists=/etc/eks/kubelet/environment")
        #expect(
            UnitCheck(type: "AssertPathIsDirectory", trigger: true, negate: true, parameter: "/run/x", state: 1).text
                == "AssertPathIsDirectory=|!/run/x")
    }

    @Test("128-bit ids are 32 lowercase hex digits; the boot id is the kernel's")
    func ids() throws {
        let boot = try #require(SystemdServiceManager.bootID())
        let kernel = try String(contentsOfFile: "/proc/sys/kernel/random/boot_id", encoding: .utf8)
        #expect(boot == kernel.trimmingCharacters(in: .whitespacesAndNewlines).replacingOccurrences(of: "-", with: ""))
        let now = SystemdServiceManager.realtimeMicroseconds()
        #expect(abs(Double(now) / 1e6 - Date().timeIntervalSince1970) < 5)
    }
}

@Suite("recording service manager")
struct RecordingServiceManagerTests {
    @Test("a job's outcome can be scripted: a start that did nothing, a unit still activating")
    func afterJob() throws {
        let manager = RecordingServiceManager()
        manager.set("kubelet.service", UnitState(loadState: "loaded", activeState: "activating", subState: "start"))
        #expect(try manager.state(of: "kubelet.service").activeState == "activating")
        let dead = UnitState(loadState: "loaded", activeState: "inactive", subState: "dead", result: "success")
        manager.setAfterJob("kubelet.service", dead)
        #expect(try manager.perform(.restart, unit: "kubelet.service", timeout: .seconds(1)) == dead)
        #expect(try manager.state(of: "kubelet.service") == dead)
        // Only the next job: the one after that starts it as usual.
        #expect(try manager.perform(.start, unit: "kubelet.service", timeout: .seconds(1)).activeState == "active")
        #expect(manager.actions == ["restart kubelet.service", "start kubelet.service"])
    }
}
