#!/usr/bin/env python3
"""Onset-detection evaluation: Earshot against librosa, aubio and essentia on the same files.

Builds seeded test material into a temporary directory (nothing is written to the repository):
real percussive hits from Debian's hydrogen-drumkits (kicks, snares, hi-hats, cymbals, toms, hand
percussion) and narrow-band bird-like chirps (2-7 kHz, 25-80 ms) placed at known times over RECORDED
backgrounds scaled to an RMS of -50 or -30 dBFS, plus a clean case (no background). Backgrounds:

  water     lincity-ng-data Water*.wav (running water: steady, recorded)
  traffic   lincity-ng-data TraficHigh*.wav (road traffic: passing cars, horns)
  speech    asterisk-core-sounds-en-wav prompts (a recorded voice), low-passed and reverberated
            ("distant speech", its own syllable onsets must NOT count)
  noise     alsa-utils /usr/share/sounds/alsa/Noise.wav (recorded steady noise)
  street    lincity-ng-data TraficLow*.wav + SportsCroud*.wav (light traffic and a crowd)
  espeak    espeak-ng sentences, low-passed and reverberated, over a -20 dB room tone

Splits, so that tuning on one does not report on it:
  dev      seed 1, kits ColomboAcousticDrumkit, Millo_MultiLayered2, ElectricEmpireKit,
           "Gimme A Hand 1.0", BJA_Pacific; backgrounds water, traffic, speech
  heldout  seed 2, kits ForzeeStereo, Millo_MultiLayered3, "The Black Pearl 1.0", VariBreaks,
           "circAfrique v4", HardElectro1; backgrounds noise, street, espeak
  test     seed 3, the held-out kits and backgrounds: new files, looked at only for the final table

Kit samples named *fx* (sound effects with several re-attacks) or *whistle* are left out: they are
not percussive hits.

Reference v2 (the default) also leaves out the kit samples that strike twice: flams ("Flink"), hi-hat
swishes and chokes, re-attacks, whose second strike the reference (one time per sample) does not list,
so a detector that reports it is charged a false positive. The criterion is computed on the isolated
sample alone, the same for every method (restrikes() below: its 25 ms RMS envelope re-rises >= 6 dB above
its post-peak minimum to within 20 dB of its peak); the script prints how many it drops per split.
--keep-restrikes gives reference v1 (every sample, the material of the earlier tables).

The reference time of a hit is where its sample first reaches -30 dB of its own peak (leading
silence of a sample file is not an onset); of a chirp, its start. Scoring is mir_eval's onset
evaluation: a one-to-one matching within +-50 ms (maximum matching; for a fixed window on sorted
times the greedy earliest match is maximal), F/P/R micro-averaged over the files of a condition, and
the median offset (estimate - reference, ms) of the matched pairs. "chirp R" is the recall of the
chirps alone; "hits only" is F with the chirps and the estimates matched to them left out.

Usage:
  python3 bench/onset_eval.py [--split dev|heldout|both] [--earshot BIN] [--label NAME=BIN ...]
                              [--files-per-condition 2] [--seconds 30] [--methods ...] [--set KEY=VAL ...]
                              [--keep-restrikes] [--list-dropped]
Needs: pip librosa aubio essentia soundfile scipy; apt hydrogen-drumkits lincity-ng-data
asterisk-core-sounds-en-wav espeak-ng alsa-utils; a release build of earshot.
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
from scipy import signal

SR = 48_000
KITS = "/usr/share/hydrogen/data/drumkits"
LINCITY = "/usr/share/games/lincity-ng/sounds"
ASTERISK = "/usr/share/asterisk/sounds/en_US_f_Allison"
SPLITS = {
    "dev": dict(seed=1, kits=["ColomboAcousticDrumkit", "Millo_MultiLayered2", "ElectricEmpireKit",
                              "Gimme A Hand 1.0", "BJA_Pacific"],
                backgrounds=["water", "traffic", "speech"]),
    "heldout": dict(seed=2, kits=["ForzeeStereo", "Millo_MultiLayered3", "The Black Pearl 1.0", "VariBreaks",
                                  "circAfrique v4", "HardElectro1"],
                    backgrounds=["noise", "street", "espeak"]),
}
# "test": fresh files (seed 3) from the held-out kits and backgrounds, generated only for the final report
SPLITS["test"] = dict(SPLITS["heldout"], seed=3)
ESPEAK_TEXT = [
    "The quick brown fox jumps over the lazy dog.", "Please leave your message after the tone.",
    "It is going to rain later this afternoon.", "Turn left at the next junction and keep going.",
    "Shall we meet at the station at half past seven?", "Nobody knows where the old key went.",
    "Bring two apples, some bread and a bottle of water.", "The meeting was moved to Thursday morning.",
]


def load(path):
    y, sr = sf.read(path, dtype="float64", always_2d=True)
    y = y.mean(axis=1)
    if sr != SR:
        y = signal.resample_poly(y, SR, sr)
    return y


def rms(y):
    return float(np.sqrt(np.mean(y * y) + 1e-30))


RESTRIKE_RISE_DB, RESTRIKE_WITHIN_DB, RESTRIKE_WINDOW_S, RESTRIKE_HOP_S = 6.0, 20.0, 0.025, 0.0025


def restrikes(y):
    """Reference v2's criterion, computed on the isolated (normalised) sample only, detector-independent:
    True when its envelope -- 10 log10 of the power averaged under a 25 ms Hann window (at least one period
    of a 40 Hz kick, so the cycles of a kick do not read as rises), every 2.5 ms -- re-rises at least 6 dB
    above its running minimum after the peak while within 20 dB of the peak: a second strike (flam,
    swish, choke, re-attack) that the one-time-per-sample reference does not list."""
    w = int(RESTRIKE_WINDOW_S * SR)
    h = int(RESTRIKE_HOP_S * SR)
    win = np.hanning(w)
    env = 10 * np.log10(np.convolve(y * y, win / win.sum(), mode="same")[::h] + 1e-20)
    p = int(np.argmax(env))
    after = env[p:]
    low = np.minimum.accumulate(after)
    return bool(np.any((after >= low + RESTRIKE_RISE_DB) & (after >= env[p] - RESTRIKE_WITHIN_DB)))


def kit_samples(kit, keep_restrikes=True, dropped=None):
    files = sorted(f for ext in ("wav", "flac", "aiff") for f in glob.glob(os.path.join(KITS, kit, "*." + ext)))
    out = []
    for f in files:
        low = os.path.basename(f).lower()
        if "empty" in low or "fx" in low or "whistle" in low:  # sound effects and whistles are not hits
            continue
        y = load(f)[: int(1.5 * SR)]
        peak = np.max(np.abs(y)) if len(y) else 0
        if peak < 1e-4:
            continue
        first = int(np.argmax(np.abs(y) >= peak * 10 ** (-30 / 20)))
        if first > 0.05 * SR:  # a sample that starts late is trimmed to 5 ms before its onset
            cut = first - int(0.005 * SR)
            y, first = y[cut:], first - cut
        fade = np.ones(len(y))
        nf = min(len(y), int(0.02 * SR))
        fade[-nf:] = np.linspace(1, 0, nf)
        y = y * fade / peak
        if not keep_restrikes and restrikes(y):
            if dropped is not None:
                dropped.append(f"{kit}/{os.path.basename(f)}")
            continue
        out.append((os.path.basename(f), y, first))
    return out


def chirp(rng):
    dur = rng.uniform(0.025, 0.08)
    n = int(dur * SR)
    t = np.arange(n) / SR
    f0 = rng.uniform(2000, 6000)
    f1 = np.clip(f0 * rng.uniform(0.7, 1.4), 1500, 7500)
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * dur))
    env = np.minimum(1, t / 0.003) * np.sin(np.pi * t / dur) ** 0.5 * np.exp(-t / (dur * 0.8))
    return np.sin(phase) * env / np.max(np.abs(env))


def distant(y, rng):
    b, a = signal.butter(2, 2500, fs=SR)
    y = signal.lfilter(b, a, y)
    ir_n = int(0.4 * SR)
    ir = rng.standard_normal(ir_n) * np.exp(-np.arange(ir_n) / (0.08 * SR))
    ir[0] = 4.0
    return signal.fftconvolve(y, ir)[: len(y)]


def loop_clips(paths, n, rng, xfade=0.05):
    clips = [load(p) for p in paths]
    out = np.zeros(n)
    pos = 0
    nx = int(xfade * SR)
    ramp = np.linspace(0, 1, nx)
    while pos < n:
        c = clips[rng.integers(len(clips))]
        start = rng.integers(0, max(1, len(c) // 3))
        seg = c[start:].copy()
        seg[:nx] *= ramp[: len(seg[:nx])]
        seg[-nx:] *= ramp[::-1][: len(seg[-nx:])]
        take = min(len(seg), n - pos)
        out[pos:pos + take] += seg[:take]
        pos += max(take - nx, 1)
    return out


def utterances(clips, n, rng, room):
    out = room.copy()
    pos = int(rng.uniform(0, 0.5) * SR)
    while pos < n:
        c = clips[rng.integers(len(clips))]
        take = min(len(c), n - pos)
        out[pos:pos + take] += c[:take]
        pos += take + int(rng.uniform(0.2, 1.5) * SR)
    return out


def background(name, n, rng, tmp):
    if name == "water":
        y = loop_clips(sorted(glob.glob(f"{LINCITY}/Water*.wav")), n, rng)
    elif name == "traffic":
        y = loop_clips(sorted(glob.glob(f"{LINCITY}/TraficHigh*.wav")), n, rng)
    elif name == "street":
        y = loop_clips(sorted(glob.glob(f"{LINCITY}/TraficLow*.wav")), n, rng) + loop_clips(
            sorted(glob.glob(f"{LINCITY}/SportsCroud*.wav")), n, rng) * 0.5
    elif name == "noise":
        y = loop_clips(["/usr/share/sounds/alsa/Noise.wav"], n, rng)
    elif name == "speech":
        files = sorted(glob.glob(f"{ASTERISK}/*.wav"))
        picks = [files[i] for i in rng.choice(len(files), 40, replace=False)]
        clips = [load(p) for p in picks]
        room = loop_clips(["/usr/share/sounds/alsa/Noise.wav"], n, rng)
        room *= 0.1 * max(rms(c) for c in clips) / rms(room)
        y = distant(utterances(clips, n, rng, room), rng)
    elif name == "espeak":
        clips = []
        for i, text in enumerate(ESPEAK_TEXT):
            path = os.path.join(tmp, f"espeak{i}.wav")
            voice = ["en", "en-us", "en+f3", "en+m3"][i % 4]
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(140 + 10 * (i % 4)), "-w", path, text], check=True)
            clips.append(load(path))
        room = loop_clips(["/usr/share/sounds/alsa/Noise.wav"], n, rng)
        room *= 0.1 * max(rms(c) for c in clips) / rms(room)
        y = distant(utterances(clips, n, rng, room), rng)
    else:
        raise ValueError(name)
    return y / rms(y)


def make_file(rng, kits, seconds, bg, bg_db):
    n = int(seconds * SR)
    y = np.zeros(n)
    refs, kinds, names = [], [], []
    t = rng.uniform(0.3, 0.6)
    while t < seconds - 1.0:
        start = int(t * SR)
        if rng.random() < 0.2:
            c = chirp(rng)
            level = (bg_db if bg is not None else -45) + rng.uniform(20, 28)
            y[start:start + len(c)] += c * 10 ** (level / 20) * np.sqrt(2)
            refs.append(start / SR)
            kinds.append("chirp")
            names.append("chirp")
        else:
            kit = kits[rng.integers(len(kits))]
            name, s, first = kit[rng.integers(len(kit))]
            level = rng.uniform(-20, -3)
            take = min(len(s), n - start)
            y[start:start + take] += s[:take] * 10 ** (level / 20)
            refs.append((start + first) / SR)
            kinds.append("hit")
            names.append(name)
        t += rng.uniform(0.15, 0.7)
    if bg is not None:
        y += bg * 10 ** (bg_db / 20)
    peak = np.max(np.abs(y))
    if peak > 0.99:
        y *= 0.99 / peak
    return y.astype(np.float32), np.array(refs), kinds, names


def match(ref, est, window=0.05):
    """mir_eval-style one-to-one matching within +-window; returns (pairs)."""
    pairs, j = [], 0
    est = np.sort(est)
    used = np.zeros(len(est), bool)
    for i, r in enumerate(ref):
        while j < len(est) and est[j] < r - window:
            j += 1
        k = j
        while k < len(est) and est[k] <= r + window:
            if not used[k]:
                used[k] = True
                pairs.append((i, k, est[k] - r))
                break
            k += 1
    return pairs


# --- detectors ---------------------------------------------------------------------------------

def earshot(binary, extra):
    def run(path, y):
        cmd = [binary, "analyze", path, "--features", "onset_strength"]
        for kv in extra:
            cmd += ["--set", kv]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        return np.array([json.loads(line)["t"] for line in out.splitlines() if line.startswith('{"type":"onset"')])
    return run


def librosa_default(path, y):
    import librosa
    return librosa.onset.onset_detect(y=y.astype(np.float32), sr=SR, units="time", backtrack=False)


def aubio_method(method):
    def run(path, y):
        import aubio
        hop, win = 512, 1024
        o = aubio.onset(method, win, hop, SR)
        out = []
        x = y.astype(np.float32)
        for i in range(0, len(x) - hop + 1, hop):
            if o(x[i:i + hop]):
                out.append(o.get_last_s())
        return np.array(out)
    return run


def essentia_method(method):
    def run(path, y):
        # essentia's Onsets is built for 44100/512 frames per second: run it at its home rate
        import essentia.standard as es
        win, hop, sr = 1024, 512, 44_100
        x = signal.resample_poly(y, 147, 160).astype(np.float32)
        od = es.OnsetDetection(method=method, sampleRate=sr)
        w, fft, c2p = es.Windowing(type="hann"), es.FFT(), es.CartesianToPolar()
        values = []
        for frame in es.FrameGenerator(x, frameSize=win, hopSize=hop, startFromZero=True):
            mag, ph = c2p(fft(w(frame)))
            values.append(od(mag, ph))
        import essentia
        return np.array(es.Onsets(frameRate=sr / hop)(essentia.array([values]), [1]))
    return run


PEERS = {
    "librosa": librosa_default,
    "aubio-hfc": aubio_method("hfc"), "aubio-specflux": aubio_method("specflux"),
    "aubio-complex": aubio_method("complex"),
    "essentia-hfc": essentia_method("hfc"), "essentia-complex": essentia_method("complex"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", default="both", choices=["dev", "heldout", "test", "both", "all"])
    ap.add_argument("--earshot", default=".build/release/earshot")
    ap.add_argument("--label", action="append", default=[], help="NAME=BIN: another earshot binary")
    ap.add_argument("--set", action="append", default=[], help="analysis.KEY=VAL for every earshot run")
    ap.add_argument("--files-per-condition", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--methods", default="all", help="comma list (earshot, librosa, aubio-hfc, ...) or all")
    ap.add_argument("--keep", help="write the material here instead of a temp dir")
    ap.add_argument("--json", help="write per-condition results here")
    ap.add_argument("--seed", type=int, help="override the split's seed (a second development set: --split dev --seed 11)")
    ap.add_argument("--keep-restrikes", action="store_true",
                    help="reference v1: keep the kit samples with a second strike (default v2 drops them)")
    ap.add_argument("--list-dropped", action="store_true", help="print the kit samples reference v2 drops")
    a = ap.parse_args()
    reference = "v1" if a.keep_restrikes else "v2"

    detectors = {"earshot": earshot(a.earshot, a.set)}
    for kv in a.label:
        name, binary = kv.split("=", 1)
        detectors[name] = earshot(binary, a.set)
    detectors.update(PEERS)
    if a.methods != "all":
        keep = a.methods.split(",")
        detectors = {k: v for k, v in detectors.items() if k in keep}

    tmp = a.keep or tempfile.mkdtemp(prefix="onset-eval-")
    os.makedirs(tmp, exist_ok=True)
    results = []
    chosen = {"both": ["dev", "heldout"], "all": ["dev", "heldout", "test"]}.get(a.split, [a.split])
    for split in chosen:
        cfg = SPLITS[split]
        rng = np.random.default_rng(cfg["seed"] if a.seed is None else a.seed)
        dropped, total = [], 0
        kits = []
        for k in cfg["kits"]:
            kits.append(kit_samples(k, keep_restrikes=a.keep_restrikes, dropped=dropped))
            total += len(kits[-1])
        total += len(dropped)
        print(f"{split}: reference {reference}: {total - len(dropped)} of {total} kit samples "
              f"({len(dropped)} with a second strike dropped)", flush=True)
        if a.list_dropped:
            for d in dropped:
                print(f"  dropped {d}")
        conditions = [("clean", None, None)] + [
            (f"{b}@{db}", b, db) for db in (-50, -30) for b in cfg["backgrounds"]]
        for cond, bgname, db in conditions:
            files = []
            for i in range(a.files_per_condition):
                bg = background(bgname, int(a.seconds * SR), rng, tmp) if bgname else None
                y, refs, kinds, names = make_file(rng, kits, a.seconds, bg, db)
                path = os.path.join(tmp, f"{split}-{cond.replace('@', '_')}-{i}.wav")
                sf.write(path, y, SR, subtype="FLOAT")
                if a.keep:
                    with open(path[:-4] + ".json", "w") as fh:
                        json.dump(dict(refs=refs.tolist(), kinds=kinds, names=names), fh)
                files.append((path, y, refs, kinds))
            for name, det in detectors.items():
                tp = fp = fn = 0
                offsets, chirp_hit, chirp_n = [], 0, 0
                htp = hfp = hfn = 0  # hits only: chirps and the estimates matched to them left out
                for path, y, refs, kinds in files:
                    est = det(path, y)
                    pairs = match(refs, est)
                    tp += len(pairs)
                    fp += len(est) - len(pairs)
                    fn += len(refs) - len(pairs)
                    offsets += [d for _, _, d in pairs]
                    matched = {i for i, _, _ in pairs}
                    chirp_n += sum(1 for k in kinds if k == "chirp")
                    chirp_hit += sum(1 for i, k in enumerate(kinds) if k == "chirp" and i in matched)
                    h_matched = sum(1 for i in matched if kinds[i] == "hit")
                    htp += h_matched
                    hfn += sum(1 for k in kinds if k == "hit") - h_matched
                    hfp += len(est) - len(pairs)
                p = tp / (tp + fp) if tp + fp else 0.0
                r = tp / (tp + fn) if tp + fn else 0.0
                f = 2 * p * r / (p + r) if p + r else 0.0
                hf = 2 * htp / (2 * htp + hfp + hfn) if htp else 0.0
                row = dict(split=split, condition=cond, method=name, F=f, P=p, R=r, hits_F=hf,
                           offset_ms=float(np.median(offsets) * 1000) if offsets else float("nan"),
                           chirp_R=chirp_hit / chirp_n if chirp_n else float("nan"), events=tp + fn)
                results.append(row)
                print(f"{split:8s} {cond:12s} {name:18s} F={f:.3f} P={p:.3f} R={r:.3f} "
                      f"off={row['offset_ms']:+6.1f}ms chirpR={row['chirp_R']:.2f} hitsF={hf:.3f} n={tp + fn}", flush=True)
    # summary: mean F per method and split over the conditions, and per background level
    print()
    print(f"reference {reference}")
    print("| split | method | clean F (hits only) | -50 dBFS F (P/R) | -30 dBFS F (P/R) | chirp R | median offset |")
    print("|---|---|---|---|---|---|---|")
    for split in dict.fromkeys(r["split"] for r in results):
        for name in detectors:
            rows = [r for r in results if r["split"] == split and r["method"] == name]

            def agg(sel):
                s = [r for r in rows if sel(r["condition"])]
                return (np.mean([r["F"] for r in s]), np.mean([r["P"] for r in s]), np.mean([r["R"] for r in s]))
            c = agg(lambda c: c == "clean")
            ch_hits = np.mean([r["hits_F"] for r in rows if r["condition"] == "clean"])
            m50 = agg(lambda c: c.endswith("@-50"))
            m30 = agg(lambda c: c.endswith("@-30"))
            ch = np.nanmean([r["chirp_R"] for r in rows])
            off = np.nanmedian([r["offset_ms"] for r in rows])
            print(f"| {split} | {name} | {c[0]:.3f} ({ch_hits:.3f}) | {m50[0]:.3f} ({m50[1]:.2f}/{m50[2]:.2f}) | "
                  f"{m30[0]:.3f} ({m30[1]:.2f}/{m30[2]:.2f}) | {ch:.2f} | {off:+.1f} ms |")
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(results, fh, indent=1)
    if not a.keep:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
