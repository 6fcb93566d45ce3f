import FoundationEssentials
import IPAM
import Support
import Systemd

/// `nodeboot ipamd`: the IPAM daemon, run by nodeboot-ipamd.service (docs/ipamd.md). The same
/// binary: a `nodeboot-ipamd` of its own measured 35.7 MB stripped against 37.4 MB and 24.4 MB
/// idle RSS against 25.2 MB (IPAM's AWS, NIO and Foundation are most of both), no reason to split.
enum IPAMD {
    static let command = Command(
        "ipamd", abstract: "Run the IPAM daemon: VPC addresses for pods, served to nodeboot-cni on /run/nodeboot/ipamd.sock.",
        discussion: "Settings come from aws-node's environment variables (WARM_ENI_TARGET, WARM_IP_TARGET, ...); "
            + "a refused setting exits with status 2.",
        options: [.value("root", "root", "Keep the socket, checkpoint and conflist under this directory (tests).")]
            + IMDSOptions.options)

    static func run(_ arguments: Arguments) async throws {
        let status = await IPAMDaemon.main(
            root: arguments.string("root"), imdsDeadline: try IMDSOptions.deadline(arguments),
            environment: ProcessInfo.processInfo.environment, notify: { _ = SystemdNotifier.notify($0) },
            log: { StandardStreams.error($0 + "\n") })
        if status != 0 { throw ExitStatus(code: status) }
    }
}
