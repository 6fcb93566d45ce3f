import CSystemd

/// `sd_notify`: tells the service manager about this process when it runs as a unit with
/// `Type=notify` (`NOTIFY_SOCKET` set). Everywhere else each call is a no-op returning false.
public enum SystemdNotifier {
    /// Sends newline-separated `VARIABLE=value` assignments (`READY=1`, `STATUS=…`). Returns
    /// whether they were sent: false when `NOTIFY_SOCKET` is unset or the send failed (the
    /// manager then simply does not learn it; nothing else depends on it).
    @discardableResult
    public static func notify(_ assignments: String) -> Bool {
        sd_notify(0, assignments) > 0
    }

    /// `READY=1`: start-up finished (a `Type=notify` unit becomes `active`).
    @discardableResult
    public static func ready() -> Bool {
        notify("READY=1")
    }

    /// `STATUS=…`: one line shown by `systemctl status`. Newlines become spaces (a newline
    /// would start a new assignment).
    @discardableResult
    public static func status(_ text: String) -> Bool {
        notify("STATUS=" + String(text.map { $0.isNewline ? " " : $0 }))
    }
}

/// Facts about the host's init system.
public enum SystemdHost {
    /// Whether the host was booted with systemd as PID 1 (`sd_booted`: `/run/systemd/system/`
    /// exists). False on this kind of machine means: no units can be managed.
    public static var isBooted: Bool {
        sd_booted() > 0
    }
}
