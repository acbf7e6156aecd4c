#!/usr/bin/env python3
"""Generate librosa reference fixtures for the EarshotDSP tests.

For every test signal this writes, under Tests/EarshotDSPTests/Fixtures/:
  <name>.f32   the input samples, float32 little-endian raw (or the WAV is reused)
  <name>.json  the analysis config and librosa 0.11 outputs (center=False), frame-major,
               floats rounded to 6 significant digits.

Features (must match Sources/EarshotDSP):
  logmel   power_to_db(mel @ |stft|^2, ref=1, amin=1e-10, top_db=None)    [frames x n_mels]
  mfcc     feature.mfcc(S=logmel, n_mfcc, dct_type=2, norm='ortho')         [frames x n_mfcc]
  rms_db   20*log10(max(feature.rms(center=False), 1e-10))
  peak_db  20*log10(max(max|x|, 1e-10)) over the frame
  zcr      feature.zero_crossing_rate(center=False)
  centroid, bandwidth, rolloff, flatness: feature.spectral_* on S = |stft|
  flux     sqrt(sum_k max(0, S[k,t]-S[k,t-1])^2) / sum(window); frame 0 = 0
  onset    onset.onset_strength(S=logmel, lag=1, max_size=1, center=False)

The reference is computed in float64 from the float32 samples the Swift tests read.
Run:  python3 scripts/make_fixtures.py    (needs scripts/requirements.txt)
"""
import json
import os
import shutil

import librosa
import numpy as np
import scipy.signal

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "Tests", "EarshotDSPTests", "Fixtures")
WAV = "/usr/share/sounds/alsa/Front_Center.wav"


def r6(a):
    return [float(f"{v:.6g}") for v in np.asarray(a, dtype=np.float64).ravel()]


def analyze(y32, cfg):
    sr, n_fft, hop = cfg["sr"], cfg["n_fft"], cfg["hop"]
    y = y32.astype(np.float64)
    S = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop, window="hann", center=False))
    P = S**2
    fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=cfg["n_mels"], fmin=cfg["fmin"], fmax=cfg["fmax"])
    mel = fb @ P
    logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    mfcc = librosa.feature.mfcc(S=logmel, n_mfcc=cfg["n_mfcc"], dct_type=2, norm="ortho")
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop, center=False)[0]
    frames = librosa.util.frame(y, frame_length=n_fft, hop_length=hop)
    peak = np.max(np.abs(frames), axis=0)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop, center=False)[0]
    cent = librosa.feature.spectral_centroid(S=S, sr=sr, n_fft=n_fft)[0]
    bw = librosa.feature.spectral_bandwidth(S=S, sr=sr, n_fft=n_fft)[0]
    roll = librosa.feature.spectral_rolloff(S=S, sr=sr, n_fft=n_fft, roll_percent=0.85)[0]
    flat = librosa.feature.spectral_flatness(S=S)[0]
    wsum = scipy.signal.get_window("hann", n_fft).sum()
    flux = np.zeros(S.shape[1])
    flux[1:] = np.sqrt(np.sum(np.maximum(0.0, np.diff(S, axis=1)) ** 2, axis=0)) / wsum
    onset = librosa.onset.onset_strength(S=logmel, lag=1, max_size=1, center=False)
    n = S.shape[1]
    assert onset.shape[-1] == n and onset[0] == 0.0
    return {
        "frames": int(n),
        "logmel": r6(logmel.T),
        "mfcc": r6(mfcc.T),
        "rms_db": r6(20 * np.log10(np.maximum(rms, 1e-10))),
        "peak_db": r6(20 * np.log10(np.maximum(peak, 1e-10))),
        "zcr": r6(zcr),
        "centroid": r6(cent),
        "bandwidth": r6(bw),
        "rolloff": r6(roll),
        "flatness": r6(flat),
        "flux": r6(flux),
        "onset_strength": r6(onset),
        "mel_edges_hz": r6(librosa.mel_frequencies(n_mels=cfg["n_mels"] + 2, fmin=cfg["fmin"], fmax=cfg["fmax"])),
    }


def signals(sr):
    t1 = np.arange(int(1.0 * sr)) / sr
    rng = np.random.default_rng(20261123)
    out = {}
    out["tone"] = 0.5 * np.sin(2 * np.pi * 1000.0 * t1)
    out["noise"] = 0.1 * rng.standard_normal(len(t1))
    out["chirp"] = 0.5 * scipy.signal.chirp(t1, f0=50.0, t1=1.0, f1=0.45 * sr, method="logarithmic")
    click_times = [0.105, 0.32, 0.61, 0.83, 1.17, 1.38]
    clicks = librosa.clicks(times=click_times, sr=sr, click_freq=2000.0, click_duration=0.03, length=int(1.5 * sr))
    out["clicks"] = 0.8 * clicks + 0.003 * rng.standard_normal(len(clicks))
    st = np.zeros(int(1.0 * sr))
    st[sr // 2:] = 0.3 * np.sin(2 * np.pi * 440.0 * np.arange(sr - sr // 2) / sr)
    out["silence_tone"] = st
    return out, click_times


def main():
    os.makedirs(OUT, exist_ok=True)
    configs = {
        "48k": dict(sr=48000, n_fft=1024, hop=480, n_mels=64, fmin=0.0, fmax=8000.0, n_mfcc=13),
        "16k": dict(sr=16000, n_fft=512, hop=160, n_mels=40, fmin=0.0, fmax=8000.0, n_mfcc=13),
    }
    index = []
    for tag, cfg in configs.items():
        sigs, click_times = signals(cfg["sr"])
        for name, y in sigs.items():
            y32 = y.astype("<f4")
            base = f"{name}_{tag}"
            y32.tofile(os.path.join(OUT, base + ".f32"))
            doc = {"name": base, "input": base + ".f32", "config": cfg}
            if name == "clicks":
                doc["click_times"] = click_times
            doc.update(analyze(y32, cfg))
            with open(os.path.join(OUT, base + ".json"), "w") as f:
                json.dump(doc, f, separators=(",", ":"))
            index.append(base)
    # The real recording: 48 kHz mono PCM16, reused as is.
    shutil.copyfile(WAV, os.path.join(OUT, "front_center.wav"))
    import soundfile as sf
    y, sr = sf.read(WAV, dtype="float32")
    assert sr == 48000 and y.ndim == 1
    cfg = configs["48k"]
    doc = {"name": "front_center", "input": "front_center.wav", "config": cfg}
    doc.update(analyze(y, cfg))
    with open(os.path.join(OUT, "front_center.json"), "w") as f:
        json.dump(doc, f, separators=(",", ":"))
    index.append("front_center")
    with open(os.path.join(OUT, "index.json"), "w") as f:
        json.dump({"librosa": librosa.__version__, "fixtures": index}, f, indent=1)
    print("wrote", len(index), "fixtures to", os.path.normpath(OUT))


if __name__ == "__main__":
    main()
