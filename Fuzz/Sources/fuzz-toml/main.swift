import FuzzSupport
import TOML

/// The TOML reader on any text, and a property: what it accepts, written canonically, reads back
/// to the same canonical text (the containerd config is written that way and read again by the
/// next run's merge).
@_cdecl("fuzz_toml_main")
public func entry(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    fuzzMain(argc, argv, fuzzTOML)
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTOML(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    guard let data else { return 0 }
    let text = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
    guard let table = try? TOML.parse(text) else { return 0 }
    let canonical = TOML.canonical(table)
    guard let again = try? TOML.parse(canonical) else {
        fatalError("canonical TOML does not parse:\n\(canonical)")
    }
    guard TOML.canonical(again) == canonical else {
        fatalError("canonical TOML is not stable:\n\(canonical)\n---\n\(TOML.canonical(again))")
    }
    _ = table.merged(with: again)
    return 0
}
