import FuzzSupport
import NodeRender

/// `spec.kubelet.maxPodsExpression`: parsed, then evaluated with a few instance shapes.
@_cdecl("fuzz_maxpods_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzzMain(argc, argv, fuzzMaxPods)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzMaxPods(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let expression = try? MaxPodsExpression(text) else { return 0 }
    for (enis, ips, pods) in [(3, 10, 29), (0, 0, 0), (15, 50, 737), (Int.max, Int.max, Int.max), (-1, -1, -1)] {
        _ = try? expression.evaluate(defaultENIs: enis, ipsPerENI: ips, maxPods: pods)
    }
    return 0
}
