import CSystemd
import Glibc

/// A connection to the system bus (sd-bus), talking to systemd's manager object
/// `org.freedesktop.systemd1`. Owns the `sd_bus*` and the slot of its `JobRemoved` match.
/// Not thread-safe (sd-bus is not): `SystemdServiceManager` keeps it behind a `Mutex`.
final class Bus {
    static let destination = "org.freedesktop.systemd1"
    static let managerPath = "/org/freedesktop/systemd1"
    static let managerInterface = "org.freedesktop.systemd1.Manager"
    static let unitInterface = "org.freedesktop.systemd1.Unit"
    static let serviceInterface = "org.freedesktop.systemd1.Service"

    /// A `JobRemoved` signal: the job finished with `result` (`done`, `canceled`, `timeout`,
    /// `failed`, `dependency`, `skipped`).
    struct RemovedJob: Equatable {
        var id: UInt32
        var path: String
        var unit: String
        var result: String
    }

    private let bus: OpaquePointer
    /// The `JobRemoved` match, once `subscribe()` ran; unref'd before the bus.
    private var jobRemovedSlot: OpaquePointer?
    /// `JobRemoved` signals seen while processing, by job path; the caller clears it.
    var removedJobs: [String: RemovedJob] = [:]

    /// Connects to the system bus (`/run/dbus/system_bus_socket`, or `DBUS_SYSTEM_BUS_ADDRESS`).
    init() throws(SystemdError) {
        var bus: OpaquePointer?
        let r = sd_bus_open_system(&bus)
        guard r >= 0, let bus else {
            throw SystemdError(
                .unavailable,
                "cannot connect to systemd's D-Bus (sd_bus_open_system: \(Self.errnoText(r))): is systemd PID 1? (`systemctl is-system-running`)"
            )
        }
        self.bus = bus
    }

    deinit {
        if let jobRemovedSlot { sd_bus_slot_unref(jobRemovedSlot) }
        sd_bus_flush_close_unref(bus)
    }

    /// False once the peer closed the connection (e.g. dbus-daemon restarted): open a new one.
    var isOpen: Bool { sd_bus_is_open(bus) > 0 }

    // MARK: Method calls

    /// Calls a method of systemd's manager with string arguments and returns the reply.
    /// Errors name the call and its arguments (e.g. "StartUnit kubelet.service replace").
    func callManager(
        _ method: String, _ arguments: [String], timeout: Duration, unit: String? = nil
    ) throws(SystemdError) -> BusMessage {
        try call(
            path: Self.managerPath, interface: Self.managerInterface, method: method, arguments, timeout: timeout,
            unit: unit, what: "systemd's " + ([method] + arguments).joined(separator: " "))
    }

    /// A string property of an object of systemd (a unit's `ActiveState`, a service's `Result`),
    /// read with `org.freedesktop.DBus.Properties.Get` so that the call has a timeout of its own.
    func property(
        _ name: String, interface: String, path: String, timeout: Duration, unit: String? = nil
    ) throws(SystemdError) -> String {
        let what = "reading \(interface).\(name) of \(unit ?? path)"
        let reply = try call(
            path: path, interface: "org.freedesktop.DBus.Properties", method: "Get", [interface, name],
            timeout: timeout, unit: unit, what: what)
        return try reply.readVariantString(what: what)
    }

    /// Calls `method` on an object of systemd with string arguments; the reply is returned
    /// unread. `what` names the call in errors.
    private func call(
        path: String, interface: String, method: String, _ arguments: [String], timeout: Duration, unit: String?,
        what: String
    ) throws(SystemdError) -> BusMessage {
        var request: OpaquePointer?
        var r = sd_bus_message_new_method_call(bus, &request, Self.destination, path, interface, method)
        guard r >= 0, let request else {
            throw SystemdError(
                .bus, unit: unit, "\(what) failed (sd_bus_message_new_method_call: \(Self.errnoText(r)))")
        }
        let message = BusMessage(request)
        for argument in arguments {
            r = sd_bus_message_append_basic(message.handle, Self.type("s"), argument)
            guard r >= 0 else {
                throw SystemdError(
                    .bus, unit: unit,
                    "\(what) failed: cannot add the argument '\(argument)' (sd_bus_message_append_basic: \(Self.errnoText(r)))"
                )
            }
        }
        var error = sd_bus_error()
        defer { sd_bus_error_free(&error) }
        var reply: OpaquePointer?
        r = sd_bus_call(bus, message.handle, Self.microseconds(timeout), &error, &reply)
        guard r >= 0, let reply else {
            throw Self.error(r, error, unit: unit, "\(what) failed (sd_bus_call)")
        }
        return BusMessage(reply)
    }

    // MARK: Signals

    /// Asks systemd to send job and unit signals (Manager.Subscribe) and installs the
    /// `JobRemoved` match first, so that no signal of a job queued afterwards can be missed:
    /// a signal that arrives during a later `sd_bus_call` is queued and seen by `process()`.
    /// Idempotent.
    func subscribe(timeout: Duration) throws(SystemdError) {
        guard jobRemovedSlot == nil else { return }
        var slot: OpaquePointer?
        let r = sd_bus_match_signal(
            bus, &slot, Self.destination, Self.managerPath, Self.managerInterface, "JobRemoved",
            { message, userdata, _ in
                guard let message, let userdata else { return 0 }
                let bus = Unmanaged<Bus>.fromOpaque(userdata).takeUnretainedValue()
                bus.jobRemoved(BusMessage(retaining: message))
                return 0
            }, Unmanaged.passUnretained(self).toOpaque())
        guard r >= 0, let slot else {
            throw SystemdError(
                .bus, "cannot watch systemd's JobRemoved signals (sd_bus_match_signal: \(Self.errnoText(r)))")
        }
        jobRemovedSlot = slot
        do {
            _ = try callManager("Subscribe", [], timeout: timeout)
        } catch {
            // The slot is valid but systemd would not send it anything: start over next time.
            sd_bus_slot_unref(slot)
            jobRemovedSlot = nil
            throw error
        }
    }

    private func jobRemoved(_ message: BusMessage) {
        // Signature "uoss": id, job path, unit, result. A malformed signal is ignored (the
        // waiter then times out naming the job), so the read errors do not matter here.
        guard let id = try? message.readUInt32(), let path = try? message.readString("o"),
            let unit = try? message.readString("s"), let result = try? message.readString("s")
        else { return }
        removedJobs[path] = RemovedJob(id: id, path: path, unit: unit, result: result)
    }

    /// Dispatches every message already received (signals reach `removedJobs`).
    func processPending() throws(SystemdError) {
        while true {
            let r = sd_bus_process(bus, nil)
            if r == 0 { return }
            guard r > 0 else {
                throw SystemdError(.bus, "cannot read from systemd's D-Bus (sd_bus_process: \(Self.errnoText(r)))")
            }
        }
    }

    /// Blocks until something arrives on the connection or `timeout` passed.
    func wait(_ timeout: Duration) throws(SystemdError) {
        let r = sd_bus_wait(bus, Self.microseconds(timeout))
        guard r >= 0 || r == -EINTR else {
            throw SystemdError(.bus, "cannot wait on systemd's D-Bus (sd_bus_wait: \(Self.errnoText(r)))")
        }
    }

    // MARK: Helpers

    /// A D-Bus type character (`s`, `o`, `u`) as the C `char` sd-bus takes.
    static func type(_ character: Unicode.Scalar) -> CChar { CChar(truncatingIfNeeded: character.value) }

    /// A timeout for sd-bus: microseconds, at least 1 (0 would mean sd-bus's default of 25 s).
    static func microseconds(_ duration: Duration) -> UInt64 {
        guard duration > .zero else { return 1 }
        let (seconds, attoseconds) = duration.components
        let (micros, overflow) = seconds.multipliedReportingOverflow(by: 1_000_000)
        guard !overflow else { return UInt64(Int64.max) }
        return UInt64(max(1, micros + attoseconds / 1_000_000_000_000))
    }

    /// `strerror` of a negative return code.
    static func errnoText(_ r: Int32) -> String {
        String(cString: strerror(-r))
    }

    /// An sd-bus failure as a `SystemdError`: systemd's own errors about a unit (no such unit,
    /// masked, bad setting) keep their D-Bus error name and message.
    static func error(_ r: Int32, _ error: sd_bus_error, unit: String?, _ what: String) -> SystemdError {
        Self.error(
            r, name: error.name.map { String(cString: $0) }, message: error.message.map { String(cString: $0) },
            unit: unit, what)
    }

    /// `error(_:_:unit:_:)` with the `sd_bus_error`'s name and message as strings.
    static func error(_ r: Int32, name: String?, message detail: String?, unit: String?, _ what: String) -> SystemdError {
        var text = what + ": "
        if let name {
            text += name + (detail.map { ": " + $0 } ?? "")
        } else {
            text += errnoText(r)
        }
        let code: SystemdError.Code
        switch name {
        case "org.freedesktop.systemd1.NoSuchUnit":
            code = .notFound
        case .some(let name) where name.hasPrefix("org.freedesktop.systemd1."):
            code = .unitFailed
        case "org.freedesktop.DBus.Error.AccessDenied", "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired":
            code = .bus
            text += " (nodeboot must run as root)"
        case "org.freedesktop.DBus.Error.NoReply", "org.freedesktop.DBus.Error.Timeout",
            "org.freedesktop.DBus.Error.TimedOut":
            code = .timeout
        default:
            code = r == -ETIMEDOUT ? .timeout : .bus
        }
        return SystemdError(code, unit: unit, text)
    }
}

/// One D-Bus message (a call, a reply or a signal), read from the front.
final class BusMessage {
    let handle: OpaquePointer

    /// Takes over a reference the caller owns (a new message or a reply).
    init(_ handle: OpaquePointer) {
        self.handle = handle
    }

    /// Takes a reference of its own (a message sd-bus lends to a callback).
    init(retaining handle: OpaquePointer) {
        self.handle = sd_bus_message_ref(handle)
    }

    deinit {
        sd_bus_message_unref(handle)
    }

    /// Reads a string-like value: `s` (string), `o` (object path).
    func readString(_ type: Unicode.Scalar) throws(SystemdError) -> String {
        var value: UnsafePointer<CChar>?
        let r = sd_bus_message_read_basic(handle, Bus.type(type), &value)
        guard r > 0, let value else {
            throw SystemdError(
                .bus,
                "systemd's D-Bus reply has no '\(type)' value where one was expected (sd_bus_message_read_basic: \(r < 0 ? Bus.errnoText(r) : "end of message"))"
            )
        }
        return String(cString: value)
    }

    /// Reads a variant holding a string (the reply of `Properties.Get` for a string property).
    func readVariantString(what: String) throws(SystemdError) -> String {
        let r = sd_bus_message_enter_container(handle, Bus.type("v"), "s")
        guard r > 0 else {
            throw SystemdError(
                .bus,
                "\(what): systemd's reply holds no string (sd_bus_message_enter_container: \(r < 0 ? Bus.errnoText(r) : "end of message"))"
            )
        }
        return try readString("s")
    }

    func readUInt32() throws(SystemdError) -> UInt32 {
        var value: UInt32 = 0
        let r = sd_bus_message_read_basic(handle, Bus.type("u"), &value)
        guard r > 0 else {
            throw SystemdError(
                .bus,
                "systemd's D-Bus message has no 'u' value where one was expected (sd_bus_message_read_basic: \(r < 0 ? Bus.errnoText(r) : "end of message"))"
            )
        }
        return value
    }
}
