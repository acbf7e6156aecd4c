import EarshotBuildStamp

/// The daemon version reported by `--version`, the socket `hello` and metrics.
public enum EarshotVersion {
    /// The release version; also the Debian package version (`make deb` reads it from this line).
    public static let string = "0.1.0"
    /// The short git commit the binary was built from (`-dirty` when tracked files were modified), or
    /// `unknown` for a build outside git (stamped at build time: Plugins/GitCommitStamp).
    public static let commit = BuildStamp.gitCommit
    /// `earshot --version`: `0.1.0 (commit 1a2b3c4d5e6f)`.
    public static let long = "\(string) (commit \(commit))"
}
