/// The credential chain nodeboot uses: environment first, then the instance role from IMDS.
public enum CredentialChain {
    /// The first provider that has credentials. Throws `AWSError(.noCredentials)` naming every
    /// place it looked when none has.
    public static func resolve(environment: [String: String], imds: IMDSClient?) async throws -> any CredentialProvider {
        if let provider = EnvironmentCredentialProvider(environment: environment) { return provider }
        var looked = ["environment: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY are not set"]
        if let imds {
            do {
                if let provider = try await InstanceRoleCredentialProvider.discover(imds: imds) {
                    _ = try await provider.credentials()
                    return provider
                }
                looked.append("instance role: IMDS at \(imds.endpoint) lists no role (no instance profile attached)")
            } catch {
                looked.append("instance role: \(error)")
            }
        } else {
            looked.append("instance role: the metadata service is not available")
        }
        throw AWSError(
            .noCredentials, operation: "credentials", endpoint: imds?.endpoint ?? "-",
            message: "no AWS credentials found; looked in: " + looked.joined(separator: "; "),
            hint:
                "attach an instance profile with the EKS node role to the instance, or set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    }
}
