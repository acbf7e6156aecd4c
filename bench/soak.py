#!/usr/bin/env python3
"""Soak: hours of varied audio pushed at full speed through ALSA's `file` plugin into the whole daemon.

The daemon runs with every sink on (socket, rolling, alerts, metrics HTTP + textfile, stdout, input health,
event clips into a temp dir, MQTT to a private mosquitto on a free port with levels every 10th frame) and these
clients on its socket:
  full     every stream, every frame, every field, reading as fast as Python can (it falls behind: the
           daemon drops for it and says so; the soak checks `dropped` notices == seq gaps);
  levels   frames with two fields + rolling + alerts;
  churn    reconnects every few seconds, subscribing with backfill_s each time;
  scraper  GET /metrics once a second.
The audio (float32 mono 48 kHz) is generated on the fly from varied material — noise at many levels, tones,
chirps, clicks, exact digital silence, near-full-scale bursts that trip the level alert, clipped passages,
and rare non-finite/huge samples — and written into a FIFO the `file` plugin reads; the writer reopens the
FIFO when the daemon reopens the device (it opens it twice: probe, then capture).

Pass/fail (exit 1 on failure):
  * RSS growth after warm-up (the first 25 % of the run, at least 90 s) under 1 MB while the audio flows
    (the RSS once the stream has stopped is reported too), no growth of fds or threads. Subscriber queues
    hold 512 messages here (default 4096): the Python readers fall behind at 100×, and with the default
    their queues' high-water mark (shared frames kept alive, up to ~8 MB) kept rising through the run
    and read as growth; with 512 it is reached during warm-up, and the readers' losses exercise the
    `dropped` accounting;
  * every `dropped` notice matches the seq gaps its client saw (drops = seq gaps);
  * frames × hop + ring-overrun samples + capture-gap samples accounts for every sample written
    (within one n_fft per discontinuity);
  * the daemon is alive at the end and exits 0 on SIGTERM.

  python3 bench/soak.py                         # the full soak: 24 h of audio at 100× (15 min), release binary
  python3 bench/soak.py --audio-hours 16 --binary .build/debug/earshot  # the 10-minute CI version (make test)
  python3 bench/soak.py --audio-hours 8 --heap-every 20       # glibc heap in use vs mapped over time (gdb)
  python3 bench/soak.py --audio-hours 8 --off mqtt,clips,scraper --env MALLOC_ARENA_MAX=8   # bisecting
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np

RATE = 48000
HOP = 480
N_FFT = 1024
PERIOD_BYTES = HOP * 4  # capture.period_frames defaults to one hop
SEQ_RE = re.compile(rb'"seq":(\d+)')
TYPE_RE = re.compile(rb'"type":"([a-z_]+)"')


def material(rng):
    """Two-second blocks of varied material (float32), each with its own character."""
    n = 2 * RATE
    t = np.arange(n) / RATE
    blocks = []
    for db in (-90, -70, -50, -35, -25, -12, -3):
        blocks.append(rng.standard_normal(n) * 10 ** (db / 20))                        # white noise
        pink = np.cumsum(rng.standard_normal(n)); pink -= np.convolve(pink, np.ones(256) / 256, "same")
        blocks.append(pink / (np.abs(pink).max() + 1e-9) * 10 ** (db / 20))           # reddish noise
    for f in (50, 440, 1000, 3150, 12000, 20000):
        blocks.append(0.3 * np.sin(2 * np.pi * f * t))                                 # tones
    blocks.append(0.2 * np.sin(2 * np.pi * (200 * t + 4000 * t * t)))                  # chirp
    clicks = np.zeros(n); clicks[::4800] = 0.9; blocks.append(clicks)                  # clicks
    blocks.append(np.zeros(n))                                                         # digital silence
    blocks.append(np.full(n, 0.25))                                                    # DC
    am = rng.standard_normal(n) * 0.1 * (1 + np.sin(2 * np.pi * 4 * t)); blocks.append(am)  # speech-like AM
    blocks.append(np.clip(rng.standard_normal(n) * 2.0, -1, 1))                         # hard clipping
    hostile = rng.standard_normal(n) * 0.05
    hostile[[100, 5000, 40000]] = [np.nan, np.inf, 1e20]; hostile[60000] = -np.inf     # non-finite, huge
    blocks.append(hostile)
    return [b.astype("<f4").tobytes() for b in blocks]


class Writer(threading.Thread):
    """Writes `total` samples into the FIFO at `speed` × real time; reopens on EPIPE."""

    def __init__(self, fifo, total, seed, speed):
        super().__init__(daemon=True)
        self.fifo, self.total, self.rng, self.speed = fifo, total, np.random.default_rng(seed), speed
        self.blocks = material(self.rng)
        self.session_samples = 0      # samples written into the current open of the FIFO
        self.sessions = 0
        self.done = threading.Event()
        self.stop = threading.Event()
        self.hold = None               # keeps the FIFO open after the last sample (reads then block)

    def run(self):
        hostile_every = 97
        while not self.stop.is_set():
            try:
                f = open(self.fifo, "wb", buffering=0)
            except OSError:
                time.sleep(0.05); continue
            self.sessions += 1
            self.session_samples = 0
            k = 0
            t0 = time.monotonic()
            try:
                while self.session_samples < self.total and not self.stop.is_set():
                    ahead = self.session_samples / RATE / self.speed - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
                    i = int(self.rng.integers(len(self.blocks)))
                    if i == len(self.blocks) - 1 and k % hostile_every:
                        i = 0  # the hostile block is rare
                    data = self.blocks[i]
                    left = (self.total - self.session_samples) * 4
                    data = data[:left]
                    # Period-sized writes (one hop, 1920 bytes <= PIPE_BUF, so atomic): the pipe then always
                    # holds whole periods. The `file` plugin pads a short read(2) of its infile with frames it
                    # never read (alsa-lib pcm_file.c ignores the byte count), which would insert silence.
                    for o in range(0, len(data), PERIOD_BYTES):
                        self.session_samples += f.write(data[o:o + PERIOD_BYTES]) // 4
                    k += 1
                self.hold = f
                self.done.set()
                self.stop.wait()
                return
            except BrokenPipeError:
                try: f.close()
                except OSError: pass


class Subscriber(threading.Thread):
    def __init__(self, path, name, command, reconnect_s=None, deadline=None):
        super().__init__(daemon=True)
        self.path, self.name, self.command, self.reconnect_s = path, name, command, reconnect_s
        self.frames = self.seq_gaps = self.dropped = self.connections = self.errors = 0
        self.last_stats = None
        self.stop = threading.Event()
        self.failure = None
        self.sock = None

    def close(self):
        self.stop.set()
        if self.sock:
            try: self.sock.shutdown(socket.SHUT_RDWR)
            except OSError: pass

    def run(self):
        while not self.stop.is_set():
            try:
                self.session()
            except OSError as e:
                if self.stop.is_set(): return
                self.failure = f"{self.name}: {e}"
                time.sleep(0.2)

    def session(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.path)
        self.sock = s
        self.connections += 1
        f = s.makefile("rb")
        hello = json.loads(f.readline())
        assert hello["type"] == "hello", hello
        s.sendall(json.dumps(self.command).encode() + b"\n")
        last = None
        started = time.monotonic()
        try:
            while not self.stop.is_set():
                if self.reconnect_s and time.monotonic() - started > self.reconnect_s:
                    return
                line = f.readline()
                if not line:
                    if self.stop.is_set(): return
                    raise OSError("daemon closed the connection")
                m = TYPE_RE.search(line)
                kind = m.group(1) if m else b""
                if kind == b"frame":
                    seq = int(SEQ_RE.search(line).group(1))
                    if last is not None and seq > last + 1 and not self.reconnect_s:
                        self.seq_gaps += seq - last - 1
                    last = seq
                    self.frames += 1
                elif kind == b"dropped":
                    d = json.loads(line)
                    if d.get("stream") == "frame":
                        self.dropped += d["count"]
                elif kind == b"stats":
                    self.last_stats = json.loads(line)
                elif kind == b"error":
                    self.errors += 1
        finally:
            s.close()


def fd_targets(pid):
    """What the daemon's descriptors point at, without the MQTT spool's segment files: a segment is open only
    while it holds unacknowledged messages (a drained one is closed and unlinked), so it comes and goes."""
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            t = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if not t.endswith(".spool"):
            out.append(re.sub(r"\[\d+\]", "", t))
    return sorted(out)


def proc_sample(pid):
    st = open(f"/proc/{pid}/status").read()
    rss = int(re.search(r"VmRSS:\s+(\d+)", st).group(1))
    threads = int(re.search(r"Threads:\s+(\d+)", st).group(1))
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    return rss, fds, threads


def heap_stats(pid, log_path):
    """glibc's malloc_stats() of the daemon (printed on its stderr, our log) via gdb: (arenas, mapped kB, in use kB)."""
    before = os.path.getsize(log_path)
    subprocess.run(["gdb", "-p", str(pid), "-batch", "-nx", "-ex", "call (void)malloc_stats()"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    with open(log_path, "rb") as f:
        f.seek(before); text = f.read().decode(errors="replace")
    total = re.search(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)", text)
    if not total:
        return None
    return len(re.findall(r"^Arena \d+:", text, re.M)), int(total.group(1)) // 1024, int(total.group(2)) // 1024


def metric(text, name):
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=".build/release/earshot")
    ap.add_argument("--audio-hours", type=float, default=24.0)
    ap.add_argument("--speed", type=float, default=100.0,
                    help="× real time (the capture → DSP ring overwrites what the DSP cannot keep up with)")
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between RSS/fd/thread samples")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", help="write the figures here as JSON")
    ap.add_argument("--clients", default="full,levels,churn",
                    help="which subscribers to run (comma-separated: full, levels, churn); for isolating growth")
    ap.add_argument("--reconnect-s", type=float, default=3.0, help="seconds between the churn client's reconnections")
    ap.add_argument("--off", default="",
                    help="sinks to turn off, comma-separated (mqtt, clips, health, alerts, stdout), or scraper (no "
                         "/metrics scrapes during the run); for bisecting growth")
    ap.add_argument("--heap-every", type=float, default=0,
                    help="every this many seconds, attach gdb and have the daemon print glibc's malloc_stats() "
                         "(heap in use vs mapped: a growing live heap is a leak, mapped growth with flat use is "
                         "fragmentation); 0: never. Pauses the daemon ~0.3 s each time")
    ap.add_argument("--env", action="append", default=[], help="KEY=VALUE for the daemon (e.g. MALLOC_ARENA_MAX=2)")
    a = ap.parse_args()
    off = set(filter(None, a.off.split(",")))
    binary = os.path.abspath(a.binary)
    if not os.access(binary, os.X_OK):
        sys.exit(f"soak: no binary at {binary} (make release)")
    total = int(a.audio_hours * 3600 * RATE)
    tmp = tempfile.mkdtemp(prefix="earshot-soak-")
    fifo = os.path.join(tmp, "audio.fifo"); os.mkfifo(fifo)
    asoundrc = os.path.join(tmp, "asoundrc")
    with open(asoundrc, "w") as f:
        f.write(f'pcm.soak {{ type file slave.pcm "null" file "/dev/null" infile "{fifo}" format "raw" }}\n')
    sock = os.path.join(tmp, "earshot.sock")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0)); port = probe.getsockname()[1]
    broker = None
    if "mqtt" not in off:
        # A private mosquitto on a free port (the MQTT sink with its spool, QoS 1 and decimated levels).
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0)); mqtt_port = probe.getsockname()[1]
        with open(os.path.join(tmp, "mosquitto.conf"), "w") as f:
            f.write(f"listener {mqtt_port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        try:
            broker = subprocess.Popen(["mosquitto", "-c", os.path.join(tmp, "mosquitto.conf")],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            sys.exit("soak: mosquitto is not installed (apt install mosquitto, or --off mqtt)")
    cfg = os.path.join(tmp, "earshot.yaml")
    with open(cfg, "w") as f:
        f.write(f"""capture: {{device: soak, sample_rate: {RATE}, channels: 1, format: FLOAT_LE, max_backlog_ms: 0, ring_seconds: 4}}
socket: {{path: {sock}, stall_limit_s: 30, queue_messages: 512}}
rolling: {{backfill_s: 60}}
alerts: {{level: {{threshold_db: -20, enabled: {str("alerts" not in off).lower()}}}, onset: {{enabled: {str("alerts" not in off).lower()}}}}}
metrics: {{enabled: true, listen: "127.0.0.1:{port}", textfile: {tmp}/earshot.prom, textfile_interval_s: 1}}
health: {{enabled: {str("health" not in off).lower()}}}
logging: {{level: notice}}
""")
        if "clips" not in off:
            f.write(f"clips: {{directory: {tmp}/clips, pre_roll_s: 1, post_roll_s: 1, max_clip_s: 10, max_files: 20, kinds: [level, health]}}\n")
        if broker:
            f.write(f"mqtt: {{broker: 'mqtt://127.0.0.1:{mqtt_port}', levels_every: 10, spool: {{directory: {tmp}/mqtt-spool, max_mb: 8}}}}\n")
    env = dict(os.environ, ALSA_CONFIG_PATH=f"/usr/share/alsa/alsa.conf:{asoundrc}")
    env.update(kv.split("=", 1) for kv in a.env)
    writer = Writer(fifo, total, a.seed, a.speed); writer.start()
    log = open(os.path.join(tmp, "daemon.log"), "wb")
    daemon = subprocess.Popen([binary, "run", "--config", cfg] + ([] if "stdout" in off else ["--stdout"]), env=env,
                              stdout=subprocess.DEVNULL, stderr=log)
    for _ in range(200):
        if os.path.exists(sock): break
        time.sleep(0.05)
    else:
        daemon.kill(); sys.exit("soak: the daemon did not create its socket")
    # fds and threads with no client connected, once audio flows: the end must come back to these.
    url = f"http://127.0.0.1:{port}/metrics"
    for _ in range(200):
        try:
            if (metric(urllib.request.urlopen(url, timeout=2).read().decode(), "earshot_frames_total") or 0) > 0: break
        except OSError:
            pass
        time.sleep(0.05)
    time.sleep(0.5)
    idle_start = proc_sample(daemon.pid)
    idle_start_fds = fd_targets(daemon.pid)
    subs = [
        Subscriber(sock, "full", {"op": "subscribe", "streams": ["frame", "rolling", "onset", "alert", "status", "stats"], "every": 1}),
        Subscriber(sock, "levels", {"op": "subscribe", "streams": ["frame", "rolling", "alert"], "fields": ["laf", "las"]}),
        Subscriber(sock, "churn", {"op": "subscribe", "streams": ["frame", "rolling"], "backfill_s": 60}, reconnect_s=a.reconnect_s),
    ]
    subs = [s for s in subs if s.name in a.clients.split(",")]
    for s in subs: s.start()
    scrapes = [0, 0]
    scraping = threading.Event(); scraping.set()

    def scraper():
        while scraping.is_set() and "scraper" not in off:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read(); scrapes[0] += 1
            except OSError:
                scrapes[1] += 1
            time.sleep(1)
    threading.Thread(target=scraper, daemon=True).start()

    samples = []
    heap = []  # (t, arenas, mapped kB, in use kB)
    next_heap = 0.0
    started = time.monotonic()
    while not writer.done.is_set():
        if a.heap_every > 0 and time.monotonic() - started >= next_heap:
            next_heap += a.heap_every
            h = heap_stats(daemon.pid, log.name)
            if h:
                heap.append((round(time.monotonic() - started, 1), *h))
                print(f"soak: heap  arenas {h[0]}  mapped {h[1]} kB  in use {h[2]} kB", flush=True)
        if daemon.poll() is not None:
            sys.exit(f"soak: daemon exited with {daemon.returncode}; log in {tmp}/daemon.log")
        samples.append((time.monotonic() - started, *proc_sample(daemon.pid)))
        pos = writer.session_samples / RATE / 3600
        print(f"soak: {samples[-1][0]:7.0f} s  audio {pos:6.2f} h  rss {samples[-1][1]/1024:6.1f} MB  "
              f"fds {samples[-1][2]}  threads {samples[-1][3]}", flush=True)
        writer.done.wait(a.sample_every)
    wall = time.monotonic() - started
    # Let the daemon analyse what is in flight: wait until the DSP's frame count (in `stats`, every 5 s)
    # stops moving.
    frames, still = -1, 0
    while still < 2:
        time.sleep(5.5)
        # The DSP's own count (`stats`, from a client subscribed to it), else /metrics (frames analysed).
        stats_now = next((s.last_stats for s in subs if s.last_stats), None)
        now = stats_now.get("frames", -1) if stats_now else \
            (metric(urllib.request.urlopen(url, timeout=5).read().decode(), "earshot_frames_total") or -1)
        still = still + 1 if now == frames else 0
        frames = now
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    after_stream = proc_sample(daemon.pid)  # reported; the growth check covers the time audio flows
    scraping.clear()
    for s in subs: s.close()
    for s in subs: s.join(3)
    time.sleep(2)
    # A leak stays; a descriptor still closing (a client socket, a spool segment being drained) goes: compare
    # the descriptors' targets for up to 10 s before calling it a leak.
    for _ in range(20):
        idle_end_fds = fd_targets(daemon.pid)
        if idle_end_fds == idle_start_fds: break
        time.sleep(0.5)
    idle_end = proc_sample(daemon.pid)

    overrun = metric(text, "earshot_ring_overrun_samples_total") or 0
    discont = metric(text, "earshot_discontinuities_total") or 0
    stats = next((s.last_stats for s in subs if s.last_stats), None) or {}
    gap = stats.get("capture_gap_samples", 0)
    written = writer.session_samples
    accounted = frames * HOP + overrun + gap
    slack = (discont + 1) * N_FFT + 4096

    # SIGTERM while the capture read blocks on the idle FIFO (the writer still holds it open).
    daemon.send_signal(signal.SIGTERM)
    try:
        code = daemon.wait(10)
    except subprocess.TimeoutExpired:
        daemon.kill(); code = "killed after 10 s"
    writer.stop.set()
    if broker:
        broker.terminate(); broker.wait(5)
    warm = [s for s in samples if s[0] >= max(0.25 * wall, 90)]
    base = warm[0] if warm else samples[0]
    end = samples[-1]
    rss_growth_kb = max(s[1] for s in warm) - base[1] if warm else 0
    result = {
        "audio_hours": written / RATE / 3600, "wall_s": round(wall, 1),
        "speed_x_realtime": round(written / RATE / wall, 1),
        "frames": frames, "expected_frames": written / HOP, "ring_overrun_samples": overrun,
        "capture_gap_samples": gap, "discontinuities": discont, "writer_sessions": writer.sessions,
        "rss_start_kb": samples[0][1], "rss_warm_kb": base[1], "rss_end_kb": end[1], "rss_growth_kb": rss_growth_kb,
        "rss_after_stream_kb": after_stream[0],
        "fds_idle_start": idle_start[1], "fds_idle_end": idle_end[1], "fds_warm": base[2], "fds_max_after_warm": max(x[2] for x in warm) if warm else base[2],
        "threads_idle_start": idle_start[2], "threads_idle_end": idle_end[2], "threads_warm": base[3], "threads_end": end[3],
        "clients": {s.name: {"frames": s.frames, "seq_gaps": s.seq_gaps, "dropped": s.dropped,
                             "connections": s.connections, "errors": s.errors, "failure": s.failure} for s in subs},
        "scrapes_ok": scrapes[0], "scrapes_failed": scrapes[1], "exit": code,
        "off": sorted(off), "env": a.env, "heap": heap,
    }
    if heap:
        hw = [h for h in heap if h[0] >= max(0.25 * wall, 90)] or heap
        result["heap_in_use_growth_kb"] = hw[-1][3] - hw[0][3]
        result["heap_mapped_growth_kb"] = hw[-1][2] - hw[0][2]
    print(json.dumps(result, indent=1))
    if a.json:
        with open(a.json, "w") as f: json.dump(result, f, indent=1)
    failures = []
    if rss_growth_kb >= 1024: failures.append(f"RSS grew {rss_growth_kb} kB after warm-up")
    if idle_end_fds != idle_start_fds:
        gone = [t for t in idle_start_fds if t not in idle_end_fds]
        new = [t for t in idle_end_fds if t not in idle_start_fds]
        failures.append(f"fds with no client (spool segments aside): {len(idle_start_fds)} at start, {len(idle_end_fds)} at the end; new {new}, gone {gone}")
    if idle_end[2] != idle_start[2]: failures.append(f"threads with no client: {idle_start[2]} at start, {idle_end[2]} at the end")
    if warm and max(x[2] for x in warm) > base[2] + 4: failures.append(f"fds grew during the run: {base[2]} -> {max(x[2] for x in warm)}")
    if warm and max(x[3] for x in warm) > base[3]: failures.append(f"threads grew during the run: {base[3]} -> {max(x[3] for x in warm)}")
    for s in subs:
        if s.name == "churn":
            if s.connections < 2: failures.append("churn client did not reconnect")
            continue
        if s.connections != 1: failures.append(f"{s.name}: connected {s.connections} times ({s.failure})")
        if s.seq_gaps != s.dropped: failures.append(f"{s.name}: seq gaps {s.seq_gaps} != dropped {s.dropped}")
        if s.frames == 0: failures.append(f"{s.name}: no frames")
    if abs(accounted - written) > slack:
        failures.append(f"samples not accounted: written {written}, frames*hop+overrun+gap {accounted:.0f}")
    if code != 0: failures.append(f"daemon exit {code}")
    if scrapes[0] == 0: failures.append("no /metrics scrape succeeded")
    for s in subs:
        if s.failure and s.connections == 0: failures.append(s.failure)
    if failures:
        print("soak: FAILED\n  " + "\n  ".join(failures) + f"\n  (daemon log: {tmp}/daemon.log)")
        sys.exit(1)
    print(f"soak: ok ({result['audio_hours']:.2f} h of audio in {wall:.0f} s)")


if __name__ == "__main__":
    main()
