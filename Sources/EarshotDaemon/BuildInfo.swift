extension EarshotVersion {
    /// The Swift compiler that built the binary (`earshot_build_info{swift=…}`).
    public static var swiftVersion: String {
        #if compiler(>=6.3)
        "6.3"
        #elseif compiler(>=6.2)
        "6.2"
        #elseif compiler(>=6.1)
        "6.1"
        #else
        "6.0"
        #endif
    }

    /// `earshot_build_info` labels.
    public static var buildInfo: [String: String] { ["version": string, "commit": commit, "swift": swiftVersion] }
}
