#if canImport(Glibc)
    public import Glibc
#endif

/// glibc functions that Swift's Glibc module does not declare (they are `_GNU_SOURCE`), looked
/// up once at run time; nil where the C library lacks them.
public enum GNU {
    public typealias Pipe2 = @convention(c) (UnsafeMutablePointer<Int32>?, Int32) -> Int32
    public typealias AddCloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>?, Int32) -> Int32
    public typealias SyncFS = @convention(c) (Int32) -> Int32

    public static let pipe2: Pipe2? = symbol("pipe2")
    /// glibc 2.34+.
    public static let addCloseFrom: AddCloseFrom? = symbol("posix_spawn_file_actions_addclosefrom_np")
    /// Flushes the whole filesystem a descriptor is on (Linux 2.6.39+).
    public static let syncfs: SyncFS? = symbol("syncfs")

    static func symbol<T>(_ name: String) -> T? {
        guard let handle = dlopen(nil, RTLD_NOW), let address = dlsym(handle, name) else { return nil }
        return unsafeBitCast(address, to: T.self)
    }
}
