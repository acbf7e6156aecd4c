/// What the ``LevelMeter`` saw over a run of consecutive samples, in mean-square units of full scale
/// (`1.0` = a full-scale square wave; dBFS = `10*log10(value)` with the RMS convention): the sums that make
/// integrated levels exact (energy, sample count) and the per-sample extremes of the time-weighted levels.
///
/// Merging two runs (``merge(_:)``) gives the run that spans both, so a rolling window integrates its
/// hops exactly: `LAeq,T = 10*log10(energyA / samples)`, `LAFmax = 10*log10(maxAF)`, and so on.
///
/// The minima start only once the exponential has settled after a reset (5 time constants: 0.625 s for
/// Fast, 5 s for Slow, each < 0.03 dB from its input); before that they hold `+infinity` ("none").
public struct LevelSums: BitwiseCopyable, Sendable, Equatable {
    /// Samples in the run.
    public var samples: Int
    /// `Σ y²` of the A-, C- and Z-weighted samples (Z with the DC block).
    public var energyA: Double
    public var energyC: Double
    public var energyZ: Double
    /// Per-sample maximum / minimum of the Fast (F) and Slow (S) exponential mean squares.
    public var maxAF: Double, minAF: Double
    public var maxAS: Double, minAS: Double
    public var maxCF: Double, minCF: Double
    public var maxZF: Double, minZF: Double
    /// Largest `|y|` of the C-weighted signal (LCpeak = `20*log10(peakC)`; a full-scale sine reads 0 dB).
    public var peakC: Double

    /// The empty run (no samples; maxima 0, minima +infinity).
    public static let empty = LevelSums(
        samples: 0, energyA: 0, energyC: 0, energyZ: 0, maxAF: 0, minAF: .infinity, maxAS: 0, minAS: .infinity,
        maxCF: 0, minCF: .infinity, maxZF: 0, minZF: .infinity, peakC: 0)

    public init(samples: Int, energyA: Double, energyC: Double, energyZ: Double, maxAF: Double, minAF: Double,
                maxAS: Double, minAS: Double, maxCF: Double, minCF: Double, maxZF: Double, minZF: Double,
                peakC: Double) {
        self.samples = samples; self.energyA = energyA; self.energyC = energyC; self.energyZ = energyZ
        self.maxAF = maxAF; self.minAF = minAF; self.maxAS = maxAS; self.minAS = minAS
        self.maxCF = maxCF; self.minCF = minCF; self.maxZF = maxZF; self.minZF = minZF; self.peakC = peakC
    }

    /// Adds `other` (a run before or after this one) to this run.
    @inline(__always)
    public mutating func merge(_ o: LevelSums) {
        samples &+= o.samples
        energyA += o.energyA; energyC += o.energyC; energyZ += o.energyZ
        maxAF = max(maxAF, o.maxAF); minAF = min(minAF, o.minAF)
        maxAS = max(maxAS, o.maxAS); minAS = min(minAS, o.minAS)
        maxCF = max(maxCF, o.maxCF); minCF = min(minCF, o.minCF)
        maxZF = max(maxZF, o.maxZF); minZF = min(minZF, o.minZF)
        peakC = max(peakC, o.peakC)
    }
}

/// The level data of one frame's new samples, split at most once at a wall-clock boundary so that rolling
/// windows can integrate to the sample: `head` holds the samples captured before `splitWallNs`, `tail` those
/// from it on (empty when no boundary fell inside the hop). Set by ``FrameAnalyzer`` / the frame processor.
public struct LevelInterval: BitwiseCopyable, Sendable, Equatable {
    /// UNIX capture time of the first new sample (the head's start).
    public var startWallNs: Int64
    /// The boundary where `tail` starts (a multiple of the processor's level grid); meaningful when
    /// `tail.samples > 0`.
    public var splitWallNs: Int64
    public var head: LevelSums
    public var tail: LevelSums

    public static let empty = LevelInterval(startWallNs: 0, splitWallNs: 0, head: .empty, tail: .empty)

    public init(startWallNs: Int64, splitWallNs: Int64, head: LevelSums, tail: LevelSums) {
        self.startWallNs = startWallNs; self.splitWallNs = splitWallNs; self.head = head; self.tail = tail
    }

    /// Head and tail together.
    public var total: LevelSums { var s = head; s.merge(tail); return s }
}
