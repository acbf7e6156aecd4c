/// The daemon version reported by `--version`, the socket `hello` and metrics.
public enum EarshotVersion {
    public static let string = "0.1.0"
}
