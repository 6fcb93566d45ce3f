import AWS
import FoundationEssentials
import IPAM
import Support
import Systemd

/// `nodeboot ipamd`: the IPAM daemon, run by nodeboot-ipamd.service (docs/ipamd.md).
enum IPAMD {
    static let command = Command(
        "ipamd", abstract: "Run the IPAM daemon: VPC addresses for pods, served to nodeboot-cni on /run/nodeboot/ipamd.sock.",
        discussion: "Settings come from aws-node's environment variables (WARM_ENI_TARGET, WARM_IP_TARGET, ...); "
            + "a refused setting exits with status 2.",
        options: [.value("root", "root", "Keep the socket, checkpoint and conflist under this directory (tests).")]
            + IMDSOptions.options)

    static func run(_ arguments: Arguments) async throws {
        let environment = ProcessInfo.processInfo.environment
        var policy = RetryPolicy.imds
        policy.deadline = try IMDSOptions.deadline(arguments)
        let session: AWSSession
        do {
            // EC2 calls give up after 30 s (the default's 120 s would outlast a unit stop): the loop tries again.
            var apiPolicy = RetryPolicy.aws(environment: environment)
            apiPolicy.deadline = .seconds(30)
            session = try AWSSession(environment: environment, imdsPolicy: policy, apiPolicy: apiPolicy)
        } catch {
            StandardStreams.error("ipamd: \(error)\n")
            throw ExitStatus(code: 1)
        }
        let status = await IPAMDaemon.run(
            environment: environment, paths: IPAMPaths(root: arguments.string("root")), session: session,
            notify: { _ = SystemdNotifier.notify($0) }, log: { StandardStreams.error($0 + "\n") })
        await session.shutdown()
        if status != 0 { throw ExitStatus(code: status) }
    }
}
