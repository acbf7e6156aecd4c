#!/usr/bin/env python3
"""librosa peer of `earshot analyze --features rms_dbfs,onset_strength`, for bench/run.sh.

Same analysis as scripts/make_fixtures.py (center=False, periodic Hann, n_fft 1024, hop 480,
64 slaney mels 0-8000 Hz, power_to_db ref=1 amin=1e-10 top_db=None), in librosa's default float32:
load -> melspectrogram -> power_to_db -> rms -> onset_strength(S=logmel).
Prints one JSON line: {"seconds": <load+compute wall, excluding interpreter start and imports>,
"compute_seconds": <wall without the load>, "cpu_seconds": <CPU of load+compute>, "frames": N, "maxrss_kb": ...}.
"""
import json
import resource
import sys
import time

try:
    import librosa
    import numpy as np
    import soundfile as sf
except ImportError as e:
    sys.exit(f"librosa_peer.py: {e}\n  pip install -r scripts/requirements.txt")


def main():
    path = sys.argv[1]
    n_fft, hop, n_mels, fmin, fmax = 1024, 480, 64, 0.0, 8000.0
    t0 = time.perf_counter()
    c0 = time.process_time()
    y, sr = sf.read(path, dtype="float32", always_2d=False)
    if y.ndim > 1:
        y = y.mean(axis=1)
    t1 = time.perf_counter()
    mel = librosa.feature.melspectrogram(
        y=y, sr=sr, n_fft=n_fft, hop_length=hop, window="hann", center=False, power=2.0,
        n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney")
    logmel = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop, center=False)[0]
    rms_db = 20 * np.log10(np.maximum(rms, 1e-10))
    onset = librosa.onset.onset_strength(S=logmel, lag=1, max_size=1, center=False)
    t2 = time.perf_counter()
    c2 = time.process_time()
    assert logmel.shape[1] == rms_db.shape[0] == onset.shape[-1]
    print(json.dumps({
        "seconds": t2 - t0, "compute_seconds": t2 - t1, "cpu_seconds": c2 - c0, "frames": int(logmel.shape[1]),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }))


if __name__ == "__main__":
    main()
