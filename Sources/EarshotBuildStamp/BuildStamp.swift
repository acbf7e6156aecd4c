/// Facts about the build, generated at build time by the GitCommitStamp plugin (Plugins/GitCommitStamp):
/// `BuildStamp.gitCommit` is the short git commit of the checkout (`-dirty` with modified tracked files),
/// `EARSHOT_GIT_COMMIT` if that was set, or `unknown` for a tree outside git.
public enum BuildStamp {}
