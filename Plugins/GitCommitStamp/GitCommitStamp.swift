import Foundation
import PackagePlugin

/// Stamps the git commit of the checkout into the `EarshotBuildStamp` module (`BuildStamp.gitCommit`), so
/// `earshot --version` and the `earshot_build_info` metric name the commit the binary was built from.
///
/// A prebuild command (it runs before every build, so a new commit is always picked up): `/bin/sh
/// scripts/git-commit-stamp.sh PACKAGE_DIR OUTPUT_DIR` writes `GitCommit.swift` only when its content
/// changes (no rebuild otherwise). The commit is `git rev-parse --short=12 HEAD` of the package directory
/// itself (a tree that is not the top of a git work tree — an unpacked tarball — says `unknown`), with
/// `-dirty` when tracked files differ from it; `EARSHOT_GIT_COMMIT` in the environment overrides it (for
/// builds from a source archive).
@main
struct GitCommitStamp: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: any Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("GitCommit")
        let package = context.package.directoryURL
        let env = ProcessInfo.processInfo.environment
        return [
            .prebuildCommand(
                displayName: "Stamping the git commit into \(target.name)",
                executable: URL(fileURLWithPath: "/bin/sh"),
                arguments: [package.appendingPathComponent("scripts/git-commit-stamp.sh").path, package.path, output.path],
                environment: [
                    "PATH": env["PATH"] ?? "/usr/local/bin:/usr/bin:/bin",
                    "EARSHOT_GIT_COMMIT": env["EARSHOT_GIT_COMMIT"] ?? "",
                ],
                outputFilesDirectory: output),
        ]
    }
}
