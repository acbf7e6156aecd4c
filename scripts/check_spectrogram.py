#!/usr/bin/env python3
"""Checks `earshot spectrogram` pictures with Pillow (run by the end-to-end tests).

usage: check_spectrogram.py EARSHOT_BINARY WORKDIR
       check_spectrogram.py --tone HZ PNG 'plot x=.. y=.. w=.. h=..' [MIN_FRACTION [linear]]

Writes a linear chirp and a steady tone as WAV, draws each as log-mel and as --linear, and checks that the PNG
decodes to the requested size, that the brightest row of every plot column lies within one bin of the
frequency the signal has there, and that the axes, title and colour bar are drawn outside the plot.
Prints one line per check; exits 1 on the first failure.
"""
import math
import re
import subprocess
import sys
import wave
import array

from PIL import Image

SR = 48000
N_FFT, HOP, N_MELS, FMIN, FMAX = 1024, 480, 64, 0.0, 8000.0


def write_wav(path, samples):
    data = array.array("h", (int(max(-1, min(1, s)) * 32767) for s in samples))
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SR)
        w.writeframes(data.tobytes())


def hz_to_mel(f):  # Slaney (librosa's default)
    return f / (200.0 / 3) if f < 1000 else 15.0 + math.log(f / 1000.0) / (math.log(6.4) / 27.0)


def mel_to_hz(m):
    return m * (200.0 / 3) if m < 15 else 1000.0 * math.exp((m - 15.0) * (math.log(6.4) / 27.0))


def mel_centres():
    lo, hi = hz_to_mel(FMIN), hz_to_mel(FMAX)
    edges = [mel_to_hz(lo + (hi - lo) * i / (N_MELS + 1)) for i in range(N_MELS + 2)]
    return edges[1:-1]


def render(binary, wav, png, extra):
    r = subprocess.run([binary, "spectrogram", wav, "-o", png] + extra, capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        sys.exit(f"FAIL earshot spectrogram {extra}: exit {r.returncode}: {r.stderr}")
    m = re.search(r"plot x=(\d+) y=(\d+) w=(\d+) h=(\d+)", r.stdout)
    if not m:
        sys.exit(f"FAIL no plot geometry in {r.stdout!r}")
    return tuple(int(v) for v in m.groups())


def luminance(px):
    r, g, b = px[:3]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def brightest_rows(img, plot):
    x0, y0, w, h = plot
    px = img.load()
    out = []
    for x in range(w):
        best, best_y = -1, 0
        for y in range(h):
            v = luminance(px[x0 + x, y0 + y])
            if v > best:
                best, best_y = v, y
        out.append(best_y)
    return out


def check(binary, workdir, name, wav, freq_at, duration, size):
    centres = mel_centres()
    bin_hz = SR / N_FFT
    for linear in (False, True):
        png = f"{workdir}/{name}{'-linear' if linear else ''}.png"
        extra = ["--width", str(size[0]), "--height", str(size[1]), "--level", "--onsets"] + (["--linear"] if linear else [])
        plot = render(binary, wav, png, extra)
        img = Image.open(png)
        img.load()
        if img.size != size:
            sys.exit(f"FAIL {png}: size {img.size}, asked for {size}")
        x0, y0, w, h = plot
        bins = N_FFT // 2 + 1 if linear else N_MELS
        rows = min(bins, h)  # more bins than pixels: rows are max-pooled, bin b is row b * rows // bins
        worst = 0
        checked = 0
        for x, y in enumerate(brightest_rows(img, plot)):
            t = (x + 0.5) / w * duration
            if t < 0.05 or t > duration - 0.05:  # no frame centre that close to the ends
                continue
            f = freq_at(t)
            row = (h - 1 - y) * rows // h
            if linear:
                expected = round(f / bin_hz)
            else:
                expected = min(range(N_MELS), key=lambda i: abs(hz_to_mel(centres[i]) - hz_to_mel(f)))
            expected = expected * rows // bins
            worst = max(worst, abs(row - expected))
            checked += 1
            if abs(row - expected) > 1:
                sys.exit(f"FAIL {png}: column {x} (t={t:.3f} s, {f:.0f} Hz): brightest row is bin {row}, expected {expected}")
        if checked < w * 0.9:
            sys.exit(f"FAIL {png}: only {checked} of {w} columns checked")
        # Axes, labels, title and colour bar: pixels outside the plot that are not the white background.
        px = img.load()
        W, H = img.size

        def inked(xs, ys):
            return sum(1 for xx in xs for yy in ys if px[xx, yy][:3] != (255, 255, 255))

        regions = {
            "frequency axis": inked(range(0, x0 - 2), range(y0, y0 + h)),
            "time axis": inked(range(x0, x0 + w), range(y0 + h + 2, H)),
            "colour bar": inked(range(x0 + w + 2, W), range(y0, y0 + h)),
            "title": inked(range(0, W), range(0, y0 - 12)),
        }
        for region, n in regions.items():
            if n < 50:
                sys.exit(f"FAIL {png}: nothing drawn in the {region} region ({n} pixels)")
        # Colour bar: brightest at the top, darkest at the bottom (magma is monotonic in lightness).
        bar = [luminance(px[x0 + w + 24, yy]) for yy in range(y0 + 2, y0 + h - 2)]
        if not bar[0] > bar[-1] + 100:
            sys.exit(f"FAIL {png}: colour bar is not a dark-to-bright scale ({bar[0]:.0f} at the top, {bar[-1]:.0f} at the bottom)")
        print(f"ok {png}: {img.size[0]}x{img.size[1]}, {checked} columns within {worst} bin(s) of the track")


def check_tone(freq, png, geometry, min_fraction, linear=False):
    """A log-mel (64 mels to 8 kHz) or linear picture whose brightest row is at `freq` in most columns."""
    plot = tuple(int(v) for v in re.search(r"plot x=(\d+) y=(\d+) w=(\d+) h=(\d+)", geometry).groups())
    img = Image.open(png)
    img.load()
    centres = mel_centres()
    x0, y0, w, h = plot
    bins = N_FFT // 2 + 1 if linear else N_MELS
    rows = min(bins, h)
    if linear:
        expected = round(freq / (SR / N_FFT)) * rows // bins
    else:
        expected = min(range(N_MELS), key=lambda i: abs(hz_to_mel(centres[i]) - hz_to_mel(freq))) * rows // N_MELS
    hits = sum(1 for y in brightest_rows(img, plot) if abs((h - 1 - y) * rows // h - expected) <= 1)
    if hits < min_fraction * w:
        sys.exit(f"FAIL {png}: the {freq} Hz row is brightest in {hits} of {w} columns")
    print(f"ok {png}: {img.size[0]}x{img.size[1]}, {freq} Hz brightest in {hits} of {w} columns")


def main():
    if sys.argv[1] == "--tone":
        check_tone(float(sys.argv[2]), sys.argv[3], sys.argv[4], float(sys.argv[5]) if len(sys.argv) > 5 else 0.8,
                   linear=len(sys.argv) > 6 and sys.argv[6] == "linear")
        return
    binary, workdir = sys.argv[1], sys.argv[2]
    # A linear chirp 300 Hz -> 7 kHz over 4 s.
    T, f0, f1 = 4.0, 300.0, 7000.0
    k = (f1 - f0) / T
    chirp = [0.5 * math.sin(2 * math.pi * (f0 * n / SR + 0.5 * k * (n / SR) ** 2)) for n in range(int(T * SR))]
    write_wav(f"{workdir}/chirp.wav", chirp)
    check(binary, workdir, "chirp", f"{workdir}/chirp.wav", lambda t: f0 + k * t, T, (1000, 560))
    # A 1 kHz tone, 2 s.
    tone = [0.3 * math.sin(2 * math.pi * 1000.0 * n / SR) for n in range(2 * SR)]
    write_wav(f"{workdir}/tone.wav", tone)
    check(binary, workdir, "tone", f"{workdir}/tone.wav", lambda t: 1000.0, 2.0, (800, 400))


if __name__ == "__main__":
    main()
