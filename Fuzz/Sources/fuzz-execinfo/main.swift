import ExecCredential
import FuzzSupport

/// `KUBERNETES_EXEC_INFO`, as kubectl or the kubelet hands it to `nodeboot token`.
@_cdecl("fuzz_execinfo_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzzMain(argc, argv, fuzzExecInfo)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzExecInfo(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    _ = try? ExecCredential.requestedAPIVersion(execInfo: text)
    return 0
}
