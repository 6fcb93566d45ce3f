import ArgumentParser
import Bootstrap
import FoundationEssentials
import Support

/// `nodeboot token`: the kubelet's exec credential plugin.
struct Token: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Print an ExecCredential with an EKS bearer token (k8s-aws-v1) for the kubelet or kubectl.")

    @Option(help: "The EKS cluster name (the cluster ID on an Outpost).")
    var clusterName: String

    @Option(help: "Region of the STS endpoint (default: AWS_REGION, AWS_DEFAULT_REGION, else IMDS, else us-east-1).")
    var region: String?

    @Option(help: "Assume this IAM role first (sts:AssumeRole).")
    var roleArn: String?

    @Option(help: "Session name for --role-arn.")
    var sessionName: String = "EKSGetTokenAuth"

    func run() async throws {
        try await printToken(clusterName: clusterName, region: region, roleARN: roleArn, sessionName: sessionName)
    }
}

/// `aws-iam-authenticator token -i CLUSTER [--region R] [-r ROLE]`: nodeboot answering under
/// that name (a link named aws-iam-authenticator), for kubeconfigs written for AL2.
struct AuthenticatorCompatibility: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aws-iam-authenticator", abstract: "aws-iam-authenticator compatible token command (nodeboot).",
        subcommands: [AuthenticatorToken.self])

    struct AuthenticatorToken: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "token", abstract: "Print an ExecCredential.")

        @Option(name: [.customShort("i"), .customLong("cluster-id")], help: "The cluster name or ID.")
        var clusterID: String

        @Option(help: "Region of the STS endpoint.")
        var region: String?

        @Option(name: [.customShort("r"), .customLong("role")], help: "Assume this IAM role first.")
        var role: String?

        @Option(name: [.customShort("s"), .customLong("session-name")], help: "Session name for --role.")
        var sessionName: String = "EKSGetTokenAuth"

        func run() async throws {
            try await printToken(clusterName: clusterID, region: region, roleARN: role, sessionName: sessionName)
        }
    }
}

/// Prints the ExecCredential (stdout only ever holds the document; errors go to stderr).
func printToken(clusterName: String, region: String?, roleARN: String?, sessionName: String) async throws {
    let document: String
    do {
        document = try await TokenCommand.document(
            clusterName: clusterName, region: region, roleARN: roleARN, sessionName: sessionName,
            environment: ProcessInfo.processInfo.environment)
    } catch {
        throw Failure(error)
    }
    StandardStreams.output(document)
}
