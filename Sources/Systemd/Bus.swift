import CSystemd
import Glibc

/// A connection to the system bus (sd-bus), talking to systemd's manager object
/// `org.freedesktop.systemd1`. Owns the `sd_bus*` and the slot of its `JobRemoved` match.
/// Not thread-safe (sd-bus is not): it belongs to one `SystemdServiceManager` actor.
final class Bus: SystemdBus {
    static let destination = "org.freedesktop.systemd1"
    static let managerPath = "/org/freedesktop/systemd1"
    static let managerInterface = "org.freedesktop.systemd1.Manager"
    static let unitInterface = "org.freedesktop.systemd1.Unit"
    static let serviceInterface = "org.freedesktop.systemd1.Service"

    private let bus: OpaquePointer
    /// The `JobRemoved` match, once `subscribe(deadline:)` ran; unref'd before the bus.
    private var jobRemovedSlot: OpaquePointer?
    /// `JobRemoved` signals seen while processing, by job path (`forgetRemovedJobs()` clears it).
    private var removedJobs: [String: RemovedJob] = [:]

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

    /// Waits until the bus daemon has authenticated the connection and answered its Hello.
    /// sd-bus would otherwise wait for that inside the next call, for up to its own 90 s
    /// whatever that call's timeout.
    func waitUntilReady(deadline: ContinuousClock.Instant) throws(SystemdError) {
        while true {
            let r = sd_bus_is_ready(bus)
            if r > 0 { return }
            guard r == 0 else {
                throw SystemdError(.bus, "cannot connect to systemd's D-Bus (sd_bus_is_ready: \(Self.errnoText(r)))")
            }
            let left = deadline - .now
            guard left > .zero else {
                throw SystemdError(
                    .timeout,
                    "the D-Bus daemon did not accept the connection in time (authentication and Hello); check `systemctl status dbus.service`"
                )
            }
            try processPending()
            if sd_bus_is_ready(bus) > 0 { return }
            try wait(min(left, .seconds(1)))
        }
    }

    // MARK: Method calls

    func callManager(_ method: String, _ arguments: [String], timeout: Duration, unit: String?) throws(SystemdError) {
        _ = try managerCall(method, arguments, timeout: timeout, unit: unit)
    }

    func callManagerForPath(_ method: String, _ arguments: [String], timeout: Duration, unit: String?)
        throws(SystemdError) -> String
    {
        try managerCall(method, arguments, timeout: timeout, unit: unit).readString("o")
    }

    func removedJob(_ path: String) throws(SystemdError) -> RemovedJob? {
        try processPending()
        return removedJobs[path]
    }

    func forgetRemovedJobs() { removedJobs = [:] }

    /// Calls a method of systemd's manager with string arguments and returns the reply.
    /// Errors name the call and its arguments (e.g. "StartUnit kubelet.service replace").
    func managerCall(
        _ method: String, _ arguments: [String], timeout: Duration, unit: String? = nil
    ) throws(SystemdError) -> BusMessage {
        try call(
            path: Self.managerPath, interface: Self.managerInterface, method: method, arguments, timeout: timeout,
            unit: unit, what: "systemd's " + ([method] + arguments).joined(separator: " "))
    }

    /// A string property of an object of systemd (a unit's `ActiveState`, a service's `Result`).
    func property(
        _ name: String, interface: String, path: String, timeout: Duration, unit: String?
    ) throws(SystemdError) -> String {
        let (reply, what) = try propertyReply(name, "s", interface: interface, path: path, timeout: timeout, unit: unit)
        return try reply.readString("s", what: what)
    }

    /// A boolean property (a unit's `ConditionResult`, a service's `RemainAfterExit`).
    func boolProperty(
        _ name: String, interface: String, path: String, timeout: Duration, unit: String?
    ) throws(SystemdError) -> Bool {
        let (reply, what) = try propertyReply(name, "b", interface: interface, path: path, timeout: timeout, unit: unit)
        return try reply.readBool(what: what)
    }

    /// A byte-array property (a unit's `InvocationID`).
    func bytesProperty(
        _ name: String, interface: String, path: String, timeout: Duration, unit: String?
    ) throws(SystemdError) -> [UInt8] {
        let (reply, what) = try propertyReply(name, "ay", interface: interface, path: path, timeout: timeout, unit: unit)
        return try reply.readBytes(what: what)
    }

    /// A unit's `Conditions` or `Asserts` (`a(sbbsi)`).
    func checksProperty(
        _ name: String, path: String, timeout: Duration, unit: String?
    ) throws(SystemdError) -> [UnitCheck] {
        let (reply, what) = try propertyReply(
            name, "a(sbbsi)", interface: Self.unitInterface, path: path, timeout: timeout, unit: unit)
        return try reply.readChecks(what: what)
    }

    /// Reads a property with `org.freedesktop.DBus.Properties.Get` (so that the call has a
    /// timeout of its own) and enters the variant, which must hold `signature`. Returns the reply
    /// and the text that names the read in errors.
    private func propertyReply(
        _ name: String, _ signature: String, interface: String, path: String, timeout: Duration, unit: String?
    ) throws(SystemdError) -> (BusMessage, String) {
        let what = "reading \(interface).\(name) of \(unit ?? path)"
        let reply = try call(
            path: path, interface: "org.freedesktop.DBus.Properties", method: "Get", [interface, name],
            timeout: timeout, unit: unit, what: what)
        try reply.enter(Self.type("v"), signature, what: what)
        return (reply, what)
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

    /// Whether the `JobRemoved` match is in place: `pending` until the bus answered the AddMatch
    /// call, then `installed` or `failed` with the bus's error.
    private enum MatchState {
        case pending
        case installed
        case failed(String)
    }

    private var matchState = MatchState.pending

    /// Installs the `JobRemoved` match and asks systemd to send job and unit signals
    /// (Manager.Subscribe), all before `deadline`. It returns once the bus has confirmed the
    /// match, so that no signal of a job queued afterwards can be missed: a signal that arrives
    /// during a later `sd_bus_call` is queued and seen by `processPending()`. Idempotent.
    func subscribe(deadline: ContinuousClock.Instant) throws(SystemdError) {
        guard jobRemovedSlot == nil else { return }
        // The asynchronous AddMatch: the synchronous one would wait with sd-bus's default
        // timeout (25 s) instead of the caller's deadline.
        var slot: OpaquePointer?
        matchState = .pending
        let r = sd_bus_match_signal_async(
            bus, &slot, Self.destination, Self.managerPath, Self.managerInterface, "JobRemoved",
            { message, userdata, _ in
                guard let message, let userdata else { return 0 }
                let bus = Unmanaged<Bus>.fromOpaque(userdata).takeUnretainedValue()
                bus.jobRemoved(BusMessage(retaining: message))
                return 0
            },
            { reply, userdata, _ in
                guard let userdata else { return 0 }
                let bus = Unmanaged<Bus>.fromOpaque(userdata).takeUnretainedValue()
                bus.matchState = .installed
                if let reply, sd_bus_message_is_method_error(reply, nil) > 0 {
                    let error = sd_bus_message_get_error(reply)
                    let name = error?.pointee.name.map { String(cString: $0) } ?? "unknown error"
                    let message = error?.pointee.message.map { String(cString: $0) }
                    bus.matchState = .failed(name + (message.map { ": " + $0 } ?? ""))
                }
                return 0
            }, Unmanaged.passUnretained(self).toOpaque())
        guard r >= 0, let slot else {
            throw SystemdError(
                .bus,
                "cannot watch systemd's JobRemoved signals (sd_bus_match_signal_async: \(Self.errnoText(r))); check that dbus.service is running"
            )
        }
        do throws(SystemdError) {
            while case .pending = matchState {
                let left = deadline - .now
                guard left > .zero else {
                    throw SystemdError(
                        .timeout,
                        "the D-Bus daemon did not confirm the JobRemoved match in time (AddMatch); check `systemctl status dbus.service`"
                    )
                }
                try processPending()
                if case .pending = matchState { try wait(min(left, .seconds(1))) }
            }
            if case .failed(let reason) = matchState {
                throw SystemdError(
                    .bus,
                    "the D-Bus daemon refused the JobRemoved match (AddMatch: \(reason)); check `systemctl status dbus.service`")
            }
            jobRemovedSlot = slot
            _ = try managerCall("Subscribe", [], timeout: SystemdServiceManager.remaining(deadline))
        } catch {
            // Without a confirmed match and a subscription no signal would come: start over next time.
            sd_bus_slot_unref(slot)
            jobRemovedSlot = nil
            matchState = .pending
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
    func readString(_ type: Unicode.Scalar, what: String = "systemd's D-Bus reply") throws(SystemdError) -> String {
        var value: UnsafePointer<CChar>?
        let r = sd_bus_message_read_basic(handle, Bus.type(type), &value)
        guard r > 0, let value else { throw missing(type, r, what: what, "sd_bus_message_read_basic") }
        return String(cString: value)
    }

    func readUInt32(what: String = "systemd's D-Bus message") throws(SystemdError) -> UInt32 {
        var value: UInt32 = 0
        let r = sd_bus_message_read_basic(handle, Bus.type("u"), &value)
        guard r > 0 else { throw missing("u", r, what: what, "sd_bus_message_read_basic") }
        return value
    }

    func readInt32(what: String = "systemd's D-Bus message") throws(SystemdError) -> Int32 {
        var value: Int32 = 0
        let r = sd_bus_message_read_basic(handle, Bus.type("i"), &value)
        guard r > 0 else { throw missing("i", r, what: what, "sd_bus_message_read_basic") }
        return value
    }

    /// A `b` (sd-bus stores it in an `int`).
    func readBool(what: String) throws(SystemdError) -> Bool {
        var value: Int32 = 0
        let r = sd_bus_message_read_basic(handle, Bus.type("b"), &value)
        guard r > 0 else { throw missing("b", r, what: what, "sd_bus_message_read_basic") }
        return value != 0
    }

    /// An `ay`.
    func readBytes(what: String) throws(SystemdError) -> [UInt8] {
        var pointer: UnsafeRawPointer?
        var size = 0
        let r = sd_bus_message_read_array(handle, Bus.type("y"), &pointer, &size)
        guard r >= 0 else { throw missing("ay", r, what: what, "sd_bus_message_read_array") }
        guard let pointer, size > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: size))
    }

    /// An `a(sbbsi)`: a unit's conditions or asserts.
    func readChecks(what: String) throws(SystemdError) -> [UnitCheck] {
        try enter(Bus.type("a"), "(sbbsi)", what: what)
        var checks: [UnitCheck] = []
        while true {
            let r = sd_bus_message_enter_container(handle, Bus.type("r"), "sbbsi")
            guard r >= 0 else { throw missing("(sbbsi)", r, what: what, "sd_bus_message_enter_container") }
            if r == 0 { break }
            checks.append(
                UnitCheck(
                    type: try readString("s", what: what), trigger: try readBool(what: what),
                    negate: try readBool(what: what), parameter: try readString("s", what: what),
                    state: try readInt32(what: what)))
            try exit(what: what)
        }
        try exit(what: what)
        return checks
    }

    /// Enters a container (`v`, `a`, `r`) whose contents have `signature`.
    func enter(_ type: CChar, _ signature: String, what: String) throws(SystemdError) {
        let r = sd_bus_message_enter_container(handle, type, signature)
        guard r > 0 else {
            throw missing(
                Unicode.Scalar(UInt8(bitPattern: type)), r, what: what, "sd_bus_message_enter_container \(signature)")
        }
    }

    private func exit(what: String) throws(SystemdError) {
        let r = sd_bus_message_exit_container(handle)
        guard r >= 0 else {
            throw SystemdError(.bus, "\(what): systemd's reply is malformed (sd_bus_message_exit_container: \(Bus.errnoText(r)))")
        }
    }

    private func missing(_ type: Unicode.Scalar, _ r: Int32, what: String, _ function: String) -> SystemdError {
        missing(String(type), r, what: what, function)
    }

    private func missing(_ type: String, _ r: Int32, what: String, _ function: String) -> SystemdError {
        SystemdError(
            .bus,
            "\(what): systemd's D-Bus message has no '\(type)' value where one was expected (\(function): \(r < 0 ? Bus.errnoText(r) : "end of message"))"
        )
    }
}

/// One of a unit's `Conditions` or `Asserts` as systemd reports it (`a(sbbsi)`).
struct UnitCheck: Equatable, Sendable {
    /// `ConditionPathExists`, `AssertPathExists`, …
    var type: String
    /// A triggering check (`=|…`): one of them passing is enough.
    var trigger: Bool
    /// Negated (`=!…`).
    var negate: Bool
    var parameter: String
    /// > 0 passed, < 0 failed, 0 not checked.
    var state: Int32

    /// As in the unit file: `ConditionPathExists=!/etc/eks/kubelet/environment`.
    var text: String { type + "=" + (trigger ? "|" : "") + (negate ? "!" : "") + parameter }
}
