import AWS
import FuzzSupport

/// IMDS, EC2 and EKS answers through the real clients. Byte 0 picks the call, byte 1 the HTTP
/// status (so error bodies are parsed too), the rest is the body.
@_cdecl("fuzz_aws_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzzMain(argc, argv, fuzzAWS)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAWS(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let input = bytes(data, size)
    guard input.count >= 2 else { return 0 }
    let statuses = [200, 200, 200, 400, 401, 403, 404, 429, 500, 503]
    let status = statuses[Int(input[1]) % statuses.count]
    var headers: [(name: String, value: String)] = []
    if input[1] & 0x80 != 0 { headers.append(("x-amzn-ErrorType", "ResourceNotFoundException")) }
    let transport = FixedTransport(HTTPResponse(status: status, headers: headers, body: Array(input.dropFirst(2))))
    let call = input[0] % 6
    runBlocking {
        if call < 2 {
            let imds = IMDSClient(endpoint: "http://169.254.169.254", transport: transport, policy: oneAttempt)
            if call == 0 {
                _ = try? await imds.identity()
            } else {
                _ = try? await imds.instanceFacts()
            }
            return
        }
        guard
            let credentials = EnvironmentCredentialProvider(environment: [
                "AWS_ACCESS_KEY_ID": "AKIDFUZZ", "AWS_SECRET_ACCESS_KEY": "fuzz",
            ])
        else { return }
        let client = AWSClient(
            region: "us-west-2", credentials: credentials, transport: transport,
            endpoints: EndpointResolver(environment: [:]), policy: oneAttempt)
        switch call {
        case 2: _ = try? await client.describeInstance(id: "i-0123456789abcdef0")
        case 3: _ = try? await client.describeInstanceType("m5.large")
        case 4: _ = try? await client.describeCluster(name: "my-cluster")
        default: _ = try? await client.describeNetworkInterfaces(ids: ["eni-0123"])
        }
    }
    return 0
}
