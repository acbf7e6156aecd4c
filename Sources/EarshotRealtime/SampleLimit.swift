/// The largest sample magnitude the analysis takes as it is: 1000, i.e. +60 dBFS. The DSP's input guard
/// (`SampleGuard`) clamps beyond it, and so does the channel mix of capture and WAV reading
/// (`decodeChannelSample`), so a sum of channels can never overflow. One value for both modules.
public enum SampleLimit {
    public static let magnitude: Float = 1000
}
