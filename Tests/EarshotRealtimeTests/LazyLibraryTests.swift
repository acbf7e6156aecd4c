#if canImport(Glibc)
import Glibc
#endif
import CEarshotSupport
import Testing

/// `CEarshot_lazy_load`, the loader behind the Cairo and libmosquitto trampolines (CCairo, CMosquitto): a
/// present library and its functions resolve; a missing library or function fails with a message that
/// names the library, what needs it and the package to install, and stays failed.
@Suite struct LazyLibraryTests {
    static func load(soname: String, symbols: [String]) -> (loaded: Bool, error: String, slots: [UnsafeMutableRawPointer?]) {
        let names = symbols.map { strdup($0) }
        defer { names.forEach { free($0) } }
        var cNames = names.map { UnsafePointer<CChar>($0) }
        var slots = [UnsafeMutableRawPointer?](repeating: nil, count: symbols.count)
        let lib = UnsafeMutablePointer<CEarshot_lazy_library>.allocate(capacity: 1)
        defer { lib.deallocate() }
        return soname.withCString { so in
            "libexample1".withCString { pkg in
                "the example sink".withCString { purpose in
                    cNames.withUnsafeMutableBufferPointer { n in
                        slots.withUnsafeMutableBufferPointer { s in
                            memset(lib, 0, MemoryLayout<CEarshot_lazy_library>.size)
                            lib.pointee.soname = so; lib.pointee.package = pkg; lib.pointee.purpose = purpose
                            lib.pointee.symbols = UnsafePointer(n.baseAddress)
                            lib.pointee.slots = s.baseAddress
                            lib.pointee.count = UInt(symbols.count)
                            let ok = CEarshot_lazy_load(lib) == 1
                            #expect((CEarshot_lazy_load(lib) == 1) == ok, "a second load gives the same answer")
                            return (ok, String(cString: CEarshot_lazy_error(lib)), Array(s))
                        }
                    }
                }
            }
        }
    }

    @Test func presentLibraryResolvesEveryFunction() {
        let r = Self.load(soname: "libm.so.6", symbols: ["cos", "sin"])
        #expect(r.loaded)
        #expect(r.error == "")
        #expect(r.slots.allSatisfy { $0 != nil })
    }

    @Test func missingLibraryNamesWhatToInstall() {
        let r = Self.load(soname: "libearshot-not-there.so.9", symbols: ["cos"])
        #expect(!r.loaded)
        #expect(r.error.hasPrefix("cannot load libearshot-not-there.so.9"), "\(r.error)")
        #expect(r.error.contains("the example sink needs it; install the libexample1 package"), "\(r.error)")
    }

    @Test func missingFunctionIsAnError() {
        let r = Self.load(soname: "libm.so.6", symbols: ["cos", "earshot_no_such_function"])
        #expect(!r.loaded)
        #expect(r.error.contains("libm.so.6 has no earshot_no_such_function"), "\(r.error)")
    }
}
