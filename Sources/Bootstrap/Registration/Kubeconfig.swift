import FoundationEssentials
import Support
import WireJSON
import YAML

#if canImport(Glibc)
    import Glibc
#endif

/// What a kubeconfig says about reaching the API server: the current context's cluster (server,
/// CA) and user (exec plugin or token). Paths are as written (node paths).
struct Kubeconfig: Sendable, Equatable {
    /// `users[].user.exec`: a credential plugin, run as client-go runs it.
    struct Exec: Sendable, Equatable {
        var command: String
        var args: [String]
        /// `env` entries, in order (later ones win).
        var env: [Variable]
        var apiVersion: String
    }

    struct Variable: Sendable, Equatable {
        var name: String
        var value: String
    }

    var server: String
    var certificateAuthority: String?
    var certificateAuthorityData: [UInt8]?
    var exec: Exec?
    var token: String?

    /// Parses kubeconfig YAML; `source` names the file in errors.
    static func parse(_ text: String, source: String) throws(NodeBootError) -> Kubeconfig {
        func invalid(_ message: String) -> NodeBootError {
            NodeBootError(
                .input, "kubeconfig \(source): \(message)",
                hint: "nodeboot init writes this file; run it again, or fix the file by hand")
        }
        let root: YAMLNode
        do {
            guard let document = try YAML.compose(text) else { throw invalid("the file is empty") }
            root = document
        } catch let error as NodeBootError {
            throw error
        } catch {
            throw invalid("not YAML: \(error)")
        }
        guard case .mapping = root else { throw invalid("not a mapping") }
        let current = root["current-context"]?.string ?? ""
        let contexts = root["contexts"]?.items ?? []
        let context = contexts.first { $0["name"]?.string == current }?["context"] ?? contexts.first?["context"]
        if !current.isEmpty && contexts.first(where: { $0["name"]?.string == current }) == nil {
            throw invalid("current-context '\(current)' is not in contexts")
        }
        let clusterName = context?["cluster"]?.string
        let userName = context?["user"]?.string
        let clusters = root["clusters"]?.items ?? []
        let users = root["users"]?.items ?? []
        let clusterEntry = clusterName.flatMap { name in clusters.first { $0["name"]?.string == name } } ?? clusters.first
        guard let cluster = clusterEntry?["cluster"] else { throw invalid("no cluster (clusters[].cluster)") }
        guard let server = cluster["server"]?.string, !server.isEmpty else {
            throw invalid("the cluster has no server (clusters[].cluster.server)")
        }
        var config = Kubeconfig(server: server)
        config.certificateAuthority = cluster["certificate-authority"]?.string.flatMap { $0.isEmpty ? nil : $0 }
        if let data = cluster["certificate-authority-data"]?.string, !data.isEmpty {
            guard let bytes = Data(base64Encoded: data.filter { !$0.isWhitespace }) else {
                throw invalid("certificate-authority-data is not base64")
            }
            config.certificateAuthorityData = Array(bytes)
        }
        let userEntry = userName.flatMap { name in users.first { $0["name"]?.string == name } } ?? users.first
        let user = userEntry?["user"]
        if let exec = user?["exec"] {
            guard let command = exec["command"]?.string, !command.isEmpty else {
                throw invalid("the user's exec block has no command")
            }
            var env: [Variable] = []
            for entry in exec["env"]?.items ?? [] {
                guard let name = entry["name"]?.string, !name.isEmpty else {
                    throw invalid("an exec env entry has no name")
                }
                env.append(Variable(name: name, value: entry["value"]?.string ?? ""))
            }
            config.exec = Exec(
                command: command, args: (exec["args"]?.items ?? []).compactMap(\.string), env: env,
                apiVersion: exec["apiVersion"]?.string ?? "client.authentication.k8s.io/v1beta1")
        } else if let token = user?["token"]?.string, !token.isEmpty {
            config.token = token
        } else {
            throw invalid("the user has neither an exec plugin nor a token (users[].user.exec)")
        }
        return config
    }

    /// The directory a kubeconfig-relative path (CA, exec command) is taken in: `path`'s own.
    static func directory(of path: String) -> String {
        path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
    }

    /// The cluster name the exec plugin asks a token for (`--cluster-name`, `--cluster-id`, `-i`).
    var clusterName: String? {
        guard let args = exec?.args else { return nil }
        for (index, arg) in args.enumerated() {
            for flag in ["--cluster-name", "--cluster-id", "-i"] {
                if arg == flag, index + 1 < args.count { return args[index + 1] }
                if arg.hasPrefix(flag + "=") { return String(arg.dropFirst(flag.count + 1)) }
            }
        }
        return nil
    }
}

extension YAMLNode {
    fileprivate subscript(key: String) -> YAMLNode? {
        guard case .mapping(let pairs, _) = self else { return nil }
        return pairs.first { $0.key.string == key }?.value
    }

    fileprivate var items: [YAMLNode]? {
        guard case .sequence(let items, _) = self else { return nil }
        return items
    }
}

/// The bearer token from the kubeconfig's exec plugin, run exactly as kubectl runs it, and kept
/// for the run: one execution, another only after ``invalidate()`` (a 401) or when the credential
/// says it expires.
actor ExecTokenSource {
    let exec: Kubeconfig.Exec
    /// The program to run (the command resolved: node root, kubeconfig directory, `PATH`).
    let program: String
    let environment: [String: String]
    /// Bound on one run of the plugin.
    let timeout: Duration
    /// The caller's deadline (`--register-timeout`): a run is also killed there.
    let deadline: ContinuousClock.Instant?
    /// How long a token is reused at most.
    let maxAge: Duration
    private var cached: (token: String, until: ContinuousClock.Instant)?
    private(set) var executions = 0

    init(
        exec: Kubeconfig.Exec, kubeconfigPath: String, paths: NodePaths, environment: [String: String],
        timeout: Duration = .seconds(60), deadline: ContinuousClock.Instant? = nil, maxAge: Duration = .seconds(300)
    ) {
        self.exec = exec
        self.program = Self.resolve(exec.command, kubeconfigPath: kubeconfigPath, paths: paths, environment: environment)
        self.environment = environment
        self.timeout = timeout
        self.deadline = deadline
        self.maxAge = maxAge
    }

    /// The command line for messages: the command and its arguments (no environment: it may hold secrets).
    var commandLine: String { ([exec.command] + exec.args).joined(separator: " ") }

    func invalidate() { cached = nil }

    func token() async throws(NodeBootError) -> String {
        if let cached, ContinuousClock.now < cached.until { return cached.token }
        let credential = try await run()
        var lifetime = maxAge
        if let expiration = credential.expiration {
            let remaining = Duration.seconds(expiration.timeIntervalSinceNow) - .seconds(30)
            lifetime = min(lifetime, max(remaining, .zero))
        }
        cached = (credential.token, ContinuousClock.now + lifetime)
        return credential.token
    }

    /// `KUBERNETES_EXEC_INFO`, as client-go sets it for a non-interactive run.
    var execInfo: String {
        #"{"kind":"ExecCredential","apiVersion":"\#(exec.apiVersion)","spec":{"interactive":false}}"#
    }

    /// The plugin's environment: ours, then the kubeconfig's `env`, then `KUBERNETES_EXEC_INFO`.
    var childEnvironment: [String: String] {
        var result = environment
        for variable in exec.env { result[variable.name] = variable.value }
        result["KUBERNETES_EXEC_INFO"] = execInfo
        return result
    }

    func run() async throws(NodeBootError) -> (token: String, expiration: Date?) {
        // The plugin's own bound, or what is left until the caller's deadline when that is sooner.
        let remaining = deadline.map { max($0 - ContinuousClock.now, .zero) }
        let limit = min(timeout, remaining ?? timeout)
        let limitText =
            limit < timeout ? "\(limit.tenthsOfSeconds) s (the rest of the registration timeout)" : "\(limit.tenthsOfSeconds) s"
        guard limit > .zero else {
            throw NodeBootError(
                .kube,
                "no time left to run the kubeconfig's exec plugin '\(commandLine)': the registration timeout has passed",
                hint: "raise --register-timeout")
        }
        executions += 1
        let output: ExternalCommand.Output
        do {
            if let request = Self.ownTokenCommand(program: program, args: exec.args) {
                output = await Self.tokenInProcess(request, environment: childEnvironment)
            } else {
                output = try await ExternalCommand.run(program, exec.args, environment: childEnvironment, timeout: limit)
            }
        } catch {
            // The program is missing or not executable: the node's image, not the API server.
            throw NodeBootError(
                .io, "cannot run the kubeconfig's exec plugin '\(commandLine)': \(error)",
                hint: hint(notFound: true))
        }
        let stderr = Self.tail(output.stderr)
        if output.timedOut {
            // The token helpers get credentials from IMDS and sign with them: an AWS-side failure.
            throw NodeBootError(
                .aws,
                "the kubeconfig's exec plugin '\(commandLine)' did not finish within \(limitText)"
                    + (stderr.isEmpty ? "" : ": \(stderr)"), hint: hint(notFound: false))
        }
        guard output.status == 0 else {
            throw NodeBootError(
                .aws,
                "the kubeconfig's exec plugin '\(commandLine)' exited with status \(output.status)"
                    + (stderr.isEmpty ? "" : ": \(stderr)"), hint: hint(notFound: false))
        }
        struct Credential {
            struct Status {
                var token: String?
                var expirationTimestamp: String?
            }
            var kind: String?
            var apiVersion: String?
            var status: Status?
        }
        let credential: Credential
        do {
            let json = try JSONObject(parsing: output.stdout)
            let status = try json.optionalObject("status")
            credential = Credential(
                kind: try json.optionalString("kind"), apiVersion: try json.optionalString("apiVersion"),
                status: try status.map { (status) throws(JSONShapeError) in
                    Credential.Status(
                        token: try status.optionalString("token"),
                        expirationTimestamp: try status.optionalString("expirationTimestamp"))
                })
        } catch {
            throw NodeBootError(
                .kube,
                "the kubeconfig's exec plugin '\(commandLine)' printed no ExecCredential JSON (\(output.stdout.count) bytes on stdout)",
                hint: hint(notFound: false))
        }
        if let kind = credential.kind, kind != "ExecCredential" {
            throw NodeBootError(
                .kube, "the exec plugin '\(commandLine)' printed a \(kind), not an ExecCredential",
                hint: hint(notFound: false))
        }
        if let version = credential.apiVersion, version != exec.apiVersion {
            throw NodeBootError(
                .kube,
                "the exec plugin '\(commandLine)' answered apiVersion \(version); the kubeconfig asks for \(exec.apiVersion)",
                hint: "set users[].user.exec.apiVersion to what the plugin speaks")
        }
        guard let token = credential.status?.token, !token.isEmpty else {
            throw NodeBootError(
                .kube, "the exec plugin '\(commandLine)' printed an ExecCredential without status.token",
                hint: hint(notFound: false))
        }
        return (token, credential.status?.expirationTimestamp.flatMap(Self.timestamp))
    }

    /// The plugin is this very executable's `token --cluster-name NAME [--region REGION]`, the command line init
    /// writes with the default `--token-helper nodeboot` (the same file: device and inode, so a binary replaced on
    /// disk since this one started runs as a process). Its answer is computed in process: another start of the
    /// static binary costs more than the rest of the register phase under emulation (docs/boot.md).
    static func ownTokenCommand(program: String, args: [String]) -> (cluster: String, region: String?)? {
        guard args.count == 3 || (args.count == 5 && args[3] == "--region"), args[0] == "token",
            args[1] == "--cluster-name", program.split(separator: "/").last != "aws-iam-authenticator"
        else { return nil }
        var plugin = stat()
        var running = stat()
        // The running executable's path, then its file: a binary replaced since the start reads "… (deleted)".
        guard let executable = NodeFileSystem.executablePath, stat(program, &plugin) == 0, stat(executable, &running) == 0,
            plugin.st_dev == running.st_dev, plugin.st_ino == running.st_ino
        else { return nil }
        return (args[2], args.count == 5 ? args[4] : nil)
    }

    /// What `nodeboot token` prints and exits with, computed in process with the plugin's environment: the
    /// document on stdout and status 0, or the error line `main` prints and the error's exit status.
    static func tokenInProcess(_ request: (cluster: String, region: String?), environment: [String: String]) async
        -> ExternalCommand.Output
    {
        do {
            let document = try await TokenCommand.document(
                clusterName: request.cluster, region: request.region, roleARN: nil, sessionName: "EKSGetTokenAuth",
                environment: environment)
            return ExternalCommand.Output(status: 0, stdout: Array(document.utf8), stderr: [], timedOut: false)
        } catch {
            return ExternalCommand.Output(
                status: error.code.exitStatus, stdout: [], stderr: Array("nodeboot: error: \(error)\n".utf8),
                timedOut: false)
        }
    }

    /// An RFC 3339 `expirationTimestamp`, with or without fractional seconds; nil when it is not
    /// one (the token is then kept for `maxAge` at most, and a 401 runs the plugin again).
    static func timestamp(_ text: String) -> Date? {
        for style in [Date.ISO8601FormatStyle(), Date.ISO8601FormatStyle(includingFractionalSeconds: true)] {
            do {
                return try Date(text, strategy: style)
            } catch {
                continue  // the other style, then nil
            }
        }
        return nil
    }

    func hint(notFound: Bool) -> String {
        let name = (exec.command.split(separator: "/").last).map(String.init) ?? exec.command
        var text = "run '\(commandLine)' on the node to see why"
        if name == "aws" {
            text += notFound ? "; install the AWS CLI v2, or use --token-helper nodeboot" : ""
            text += "; the AWS CLI needs the instance role's credentials (IMDS) and the region"
        } else if name == "nodeboot" || name == "aws-iam-authenticator" {
            text += "; the token helper signs with the instance role's credentials from IMDS"
        }
        return text
    }

    /// The last lines of a plugin's stderr, for a message.
    static func tail(_ bytes: [UInt8]) -> String {
        let lines = String(decoding: bytes.suffix(2000), as: UTF8.self).split(whereSeparator: \.isNewline)
        return lines.suffix(5).joined(separator: " / ")
    }

    /// Where the command is: a node path under the root when that exists; relative to the
    /// kubeconfig's directory when it has a `/` but is relative (client-go); else on `PATH`.
    static func resolve(_ command: String, kubeconfigPath: String, paths: NodePaths, environment: [String: String])
        -> String
    {
        if command.hasPrefix("/") {
            let underRoot = paths.node(command)
            return !paths.root.isEmpty && ExternalCommand.isExecutable(underRoot) ? underRoot : command
        }
        if command.contains("/") {
            return Kubeconfig.directory(of: kubeconfigPath) + "/" + command
        }
        return ExternalCommand.find(command, environment: environment) ?? command
    }
}
