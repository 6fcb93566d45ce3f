import Bootstrap
import FoundationEssentials
import Support

/// `nodeboot token`: the kubelet's exec credential plugin.
enum Token {
    static let command = Command(
        "token", abstract: "Print an ExecCredential with an EKS bearer token (k8s-aws-v1) for the kubelet or kubectl.",
        options: [
            .value("cluster-name", "cluster-name", "The EKS cluster name (the cluster ID on an Outpost)."),
            .value(
                "region", "region",
                "Region of the STS endpoint (default: AWS_REGION, AWS_DEFAULT_REGION, else IMDS, else us-east-1)."),
            .value("role-arn", "role-arn", "Assume this IAM role first (sts:AssumeRole)."),
            .value("session-name", "session-name", "Session name for --role-arn (default: EKSGetTokenAuth)."),
        ])

    static func run(_ arguments: Arguments) async throws {
        try await printToken(
            clusterName: arguments.required("cluster-name"), region: arguments.string("region"),
            roleARN: arguments.string("role-arn"), sessionName: arguments.string("session-name") ?? "EKSGetTokenAuth")
    }
}

/// `aws-iam-authenticator token -i CLUSTER [--region R] [-r ROLE]`: nodeboot answering under
/// that name (a link named aws-iam-authenticator), for kubeconfigs written for AL2.
enum AuthenticatorCompatibility {
    static let command = Command(
        "aws-iam-authenticator", abstract: "aws-iam-authenticator compatible token command (nodeboot).",
        subcommands: [
            Command(
                "token", abstract: "Print an ExecCredential.",
                options: [
                    .value("cluster-id", short: "i", "cluster-id", "The cluster name or ID."),
                    .value("region", "region", "Region of the STS endpoint."),
                    .value("role", short: "r", "role", "Assume this IAM role first."),
                    .value("session-name", short: "s", "session-name", "Session name for --role (default: EKSGetTokenAuth)."),
                ])
        ])

    static func run(_ arguments: Arguments) async throws {
        try await printToken(
            clusterName: arguments.required("cluster-id"), region: arguments.string("region"),
            roleARN: arguments.string("role"), sessionName: arguments.string("session-name") ?? "EKSGetTokenAuth")
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
