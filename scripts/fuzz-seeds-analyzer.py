#!/usr/bin/env python3
"""Writes the seed corpus of the frame-analyzer fuzz target (Fuzz/corpus/analyzer).

Layout of an input (see Sources/EarshotFuzzTargets/FuzzFrameAnalyzer.swift): byte 0 = configuration (bits 0-1)
and path (bit 2: through FrameProcessor and SampleGuard), byte 1 = chunk size selector, then float32 LE samples.
"""
import math
import os
import random
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Fuzz", "corpus", "analyzer")
FMAX = struct.unpack("<f", struct.pack("<I", 0x7F7FFFFF))[0]
NAN_PAYLOADS = [0x7FC00000, 0xFFC00000, 0x7F800001, 0x7FBFFFFF]  # quiet, negative, signalling NaNs
INF, NINF = 0x7F800000, 0xFF800000


def f32(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def sine(n, amp=0.5, freq=0.05):
    return [f32(amp * math.sin(2 * math.pi * freq * i)) for i in range(n)]


def write(name, selector, chunk, bits):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(bytes([selector, chunk]) + b"".join(struct.pack("<I", b) for b in bits))


def main():
    rnd = random.Random(9)
    os.makedirs(OUT, exist_ok=True)
    for old in os.listdir(OUT):
        os.remove(os.path.join(OUT, old))
    noise = lambda n, a: [f32(rnd.uniform(-a, a)) for _ in range(n)]

    write("direct-small-sine", 0, 0, sine(1024))
    s = sine(1024); s[500] = f32(1e20)
    write("direct-small-spike-1e20", 0, 0, s)
    s = noise(1024, 0.1); s[300] = NAN_PAYLOADS[0]
    write("direct-usual-nan", 1, 0, s)
    s = sine(1024); s[100] = INF; s[700] = NINF
    write("direct-usual-inf", 1, 0, s)
    write("direct-odd-floatmax-alternating", 2, 0, [f32(FMAX if i % 2 else -FMAX) for i in range(256)])
    write("direct-wide-subnormals", 3, 0, [rnd.choice([1, 0x80000001, 0x007FFFFF, 0x807FFFFF, 0]) for _ in range(1024)])
    write("direct-usual-silence-short", 1, 0, [0] * 10)
    s = [0] * 1024
    for i in range(0, 1024, 100):
        s[i] = f32(0.9)
    write("direct-usual-clicks", 1, 0, s)
    write("direct-small-nan-payloads", 0, 0, NAN_PAYLOADS * 64)
    write("direct-small-negzero-zcr", 0, 0, [0x80000000 if i % 2 else f32(1e-12) for i in range(512)])
    write("direct-wide-full-scale-square", 3, 0, [f32(1.0 if (i // 7) % 2 else -1.0) for i in range(1024)])

    s = sine(512); s[200] = f32(1e20)
    write("processor-small-spike-1-sample-chunks", 4, 0, s)
    s = noise(1024, 0.3)
    for i in range(100, 1024, 97):
        s[i] = NAN_PAYLOADS[i % 4]
    write("processor-usual-nan-bursts", 5, 7, s)
    write("processor-odd-clamp-edges", 6, 1, [f32(v) for v in [999.0, 1000.0, 1000.0001, -1001.0, 1e6, -1e30, FMAX] * 40])
    s = noise(1024, 2.0); s[0] = INF; s[1023] = NINF
    write("processor-wide-mixed-edges", 7, 3, s)
    write("processor-usual-all-inf", 5, 255, [INF] * 1024)
    write("processor-small-over-full-scale", 4, 2, sine(1024, amp=4.0))


if __name__ == "__main__":
    main()
