#!/usr/bin/env python3
"""numpy model of Earshot's onset detector (the `superflux` function and the causal picker), for trying
variants on material kept by `bench/onset_eval.py --keep DIR` without a Swift build.

  python3 bench/onset_model.py --check DIR [--earshot BIN]   compare the model's strength with the binary's
  python3 bench/onset_model.py DIR [DIR ...] [--variant NAME=JSON ...]

A variant is JSON {"f": {function kwargs}, "p": {picker kwargs}}: function kwargs lag, m, margin, slew,
decay, top, fast (the analysis.onset.* defaults) and hold (frames a band's peak memory holds before it
decays; 0 = the daemon); picker kwargs delta, mw, pre_max, pre_avg, wait and mask = ["lin", a, b]
(a candidate must reach a * strength of the last onset - b * frames since it) or ["exp", a, tau]
(a * that strength * exp(-frames / tau)); no mask = the daemon. It prints clean / -50 / -30 dBFS F per
directory (micro-averaged over a condition's files, averaged over backgrounds, as onset_eval.py) and
their mean. The model follows Sources/EarshotDSP/OnsetStrength.swift and OnsetPicker.swift at 48 kHz,
n_fft 1024, hop 480; --check shows how closely (<= 6.4e-4 dB on dev and heldout files when it was written).
"""
import argparse, glob, json, os, subprocess, sys
import numpy as np
import soundfile as sf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from onset_eval import match  # noqa: E402  (the scoring of onset_eval.py itself)

SR, NFFT, HOP = 48_000, 1024, 480
FRAME = HOP / SR


def band_matrix():
    ny, last = SR / 2, NFFT // 2
    n = int(np.floor(np.log2(0.95 * ny / 30) * 12))
    e = []
    for i in range(n + 3):
        f = 30 * 2 ** (i / 12)
        if f > ny:
            break
        k = min(int(round(f * NFFT / SR)), last)
        if not e or k > e[-1]:
            e.append(k)
    W = np.zeros((len(e) - 2, last + 1))
    for b in range(len(e) - 2):
        lo, c, hi = e[b], e[b + 1], e[b + 2]
        for k in range(lo, hi + 1):
            W[b, k] = ((k - lo) / (c - lo) if c > lo else 1) if k <= c else (hi - k) / (hi - c)
    return W


W = band_matrix()


def band_power(path):
    y, sr = sf.read(path, dtype="float64")
    assert sr == SR, path
    if y.ndim > 1:
        y = y.mean(1)
    n = 1 + (len(y) - NFFT) // HOP
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(NFFT) / NFFT)
    idx = np.arange(NFFT)[None, :] + HOP * np.arange(n)[:, None]
    P = np.abs(np.fft.rfft(y[idx] * win, axis=1)) ** 2
    return P @ W.T * (2 / (NFFT / 2)) ** 2 + 1e-10


def strength(E, lag=2, m=1, margin=6, slew=10, decay=120, top=4, fast=20, hold=0):
    n, B = E.shape
    up, dec = 10 ** (slew * FRAME / 10), 10 ** (-decay * FRAME / 10)
    mf, a = 10 ** (margin / 10), np.exp(-HOP / (0.05 * SR))
    M, Fl, S = np.zeros((n, B)), np.zeros((n, B)), np.zeros(n)
    sm, fl, age = E[0].copy(), E[0].copy(), np.zeros(B)
    M[0], Fl[0] = E[0], fl
    for t in range(1, n):
        u = 10 ** (fast / t / 10) if t < fast / (slew * FRAME) else up
        held = M[t - 1] * np.where(age < hold, 1.0, dec)
        new = E[t] >= held
        M[t], age = np.where(new, E[t], held), np.where(new, 0, age + 1)
        sm = a * sm + (1 - a) * E[t]
        fl = np.where(sm > fl, np.minimum(fl * u, sm), np.maximum(fl / u, sm))
        Fl[t] = fl
    for t in range(lag, n):
        mx = M[t - lag].copy()
        for j in range(1, m + 1):
            mx[j:] = np.maximum(mx[j:], M[t - lag][:-j])
            mx[:-j] = np.maximum(mx[:-j], M[t - lag][j:])
        r = 10 * np.log10(np.maximum(E[t] / np.maximum(mx, Fl[t] * mf), 1))
        S[t] = np.sqrt((np.sort(r)[::-1][:top] ** 2).sum() / top)
    return S


def pick(s, delta=8.5, mw=1.5, pre_max=3, pre_avg=10, wait=5, mask=None):
    out, last, last_s = [], None, 0.0
    for t in range(1, len(s)):
        c = t - 1
        if c < max(pre_max, pre_avg) or s[c] < s[t] or np.any(s[c - pre_max:c] > s[c]):
            continue
        if s[c] < mw * s[c - pre_avg:c].mean() + delta or (last is not None and c - last < wait):
            continue
        if mask is not None and last is not None:
            kind, x, y = mask
            dt = c - last
            thr = last_s * x - y * dt if kind == "lin" else last_s * x * np.exp(-dt / y)
            if s[c] < thr:
                continue
        out.append(c)
        last, last_s = c, s[c]
    return np.array(out, dtype=float)


def conditions(d):
    out = {}
    for f in sorted(glob.glob(os.path.join(d, "*.wav"))):
        if os.path.exists(f[:-4] + ".json"):
            out.setdefault(os.path.basename(f)[:-4].split("-", 1)[1].rsplit("-", 1)[0], []).append(f)
    return out


def cached_power(f):
    npy = f[:-4] + ".bands.npy"
    if not os.path.exists(npy):
        np.save(npy, band_power(f))
    return np.load(npy)


def score(d, variant):
    res = {}
    for cond, files in conditions(d).items():
        tp = ne = nr = 0
        for f in files:
            ref = np.array(json.load(open(f[:-4] + ".json"))["refs"])
            est = pick(strength(cached_power(f), **variant.get("f", {})), **variant.get("p", {})) * FRAME
            tp, ne, nr = tp + len(match(ref, est)), ne + len(est), nr + len(ref)
        p, r = tp / max(ne, 1), tp / max(nr, 1)
        res[cond] = 2 * p * r / max(p + r, 1e-9)
    return (res["clean"], np.mean([v for k, v in res.items() if k.endswith("-50")]),
            np.mean([v for k, v in res.items() if k.endswith("-30")]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+")
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--earshot", default=".build/release/earshot")
    ap.add_argument("--variant", action="append", default=[], help='NAME=JSON, e.g. hold6={"f":{"hold":6}}')
    a = ap.parse_args()
    if a.check:
        worst = 0.0
        for d in a.dirs:
            for files in conditions(d).values():
                for f in files:
                    out = subprocess.run([a.earshot, "analyze", f, "--features", "onset_strength"],
                                         check=True, capture_output=True, text=True).stdout
                    s = np.array([json.loads(x)["onset_strength"] for x in out.splitlines() if '"frame"' in x])
                    S = strength(cached_power(f))
                    n = min(len(s), len(S))
                    worst = max(worst, float(np.abs(s[:n] - S[:n]).max()))
        print(f"largest |model - earshot| strength difference: {worst:.2e} dB")
        return
    variants = [("daemon", {})] + [(v.split("=", 1)[0], json.loads(v.split("=", 1)[1])) for v in a.variant]
    for name, v in variants:
        rows = [score(d, v) for d in a.dirs]
        mean = np.mean(rows, axis=0)
        print(f"{name:12s} clean/-50/-30 F mean {mean[0]:.4f} {mean[1]:.4f} {mean[2]:.4f}  | "
              + " ".join("%.3f/%.3f/%.3f" % r for r in rows), flush=True)


if __name__ == "__main__":
    sys.exit(main())
