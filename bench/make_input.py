#!/usr/bin/env python3
"""Deterministic benchmark input for bench/run.sh and bench/capture.sh.

Writes a mono PCM16 WAV (default 600 s at 48 kHz) mixing, per 2-second block:
a steady tone pair, a slow chirp, noise bursts, clicks and a low noise floor. Seeded, so the
same arguments always give byte-identical output.

Usage: make_input.py OUT.wav [--seconds 600] [--rate 48000]
"""
import argparse
import sys

try:
    import numpy as np
    import soundfile as sf
except ImportError as e:  # pragma: no cover
    sys.exit(f"make_input.py: {e}; run: pip install -r scripts/requirements.txt")


def block(rng, sr, n, t0):
    t = (np.arange(n) + t0) / sr
    f1, f2 = rng.uniform(80, 2000), rng.uniform(2000, 7000)
    y = 0.15 * np.sin(2 * np.pi * f1 * t) + 0.05 * np.sin(2 * np.pi * f2 * t)
    # linear chirp across the block
    fa, fb = rng.uniform(100, 500), rng.uniform(3000, 12000)
    tl = np.arange(n) / sr
    dur = n / sr
    y += 0.1 * np.sin(2 * np.pi * (fa * tl + (fb - fa) * tl * tl / (2 * dur)))
    # noise bursts with amplitude envelopes
    for _ in range(rng.integers(1, 4)):
        s = rng.integers(0, n - sr // 4)
        ln = rng.integers(sr // 50, sr // 4)
        env = np.hanning(ln)
        y[s:s + ln] += rng.uniform(0.05, 0.4) * env * rng.standard_normal(ln)
    # clicks
    for _ in range(rng.integers(2, 8)):
        s = rng.integers(0, n - 64)
        y[s:s + 64] += rng.uniform(0.2, 0.7) * np.exp(-np.arange(64) / 8.0) * rng.choice([-1, 1])
    # gain riding (some quiet passages, some loud), plus a noise floor
    y *= rng.choice([0.05, 0.3, 1.0, 1.0, 1.5])
    y += 1e-3 * rng.standard_normal(n)
    return y


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--rate", type=int, default=48000)
    a = ap.parse_args()
    rng = np.random.default_rng(20240601)
    sr = a.rate
    total = int(round(a.seconds * sr))
    bl = 2 * sr
    out = np.empty(total, dtype=np.int16)
    pos = 0
    while pos < total:
        n = min(bl, total - pos)
        y = block(rng, sr, max(n, sr // 2), pos)[:n]
        out[pos:pos + n] = np.clip(np.round(y * 32767 * 0.5), -32768, 32767).astype(np.int16)
        pos += n
    sf.write(a.out, out, sr, subtype="PCM_16")


if __name__ == "__main__":
    main()
