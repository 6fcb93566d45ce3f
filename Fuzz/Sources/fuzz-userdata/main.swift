import FuzzSupport
import NodeConfig

/// User data as IMDS returns it: base64 and gzip layers, MIME multipart, then each NodeConfig
/// document decoded, merged and validated, as `nodeboot init` does.
@_cdecl("fuzz_userdata_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzzMain(argc, argv, fuzzUserData)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUserData(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let input = Array(UnsafeBufferPointer(start: data, count: size))
    guard let documents = try? UserData.documents(input, source: "imds://user-data") else { return 0 }
    var merged: NodeConfig?
    for document in documents {
        guard let located = NodeConfigDecoder.decodeLocated(document).config else { continue }
        _ = NodeConfigValidation.validate(located)
        merged = merged.map { (try? $0.merged(with: located.config)) ?? $0 } ?? located.config
    }
    _ = merged
    return 0
}
