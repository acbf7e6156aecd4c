#!/usr/bin/env python3
"""Live cost of the daemon on the path `earshot demo` uses: ALSA's `file` plugin reading a FIFO that is
written in real time (20 ms float32 chunks, like PacedFIFOWriter in the demo), default configuration.

Cases (each run in a fresh temp dir, fresh daemon):
  sub    one socket subscriber reading every frame (all fields) at full rate
  none   no client connected
  floor  `arecord` reading the same paced FIFO through the same `file` device (the path's own cost)

For each: CPU % of one core (utime+stime of the whole process from /proc/PID/stat over wall time, measured
for --seconds after --warmup), VmHWM, voluntary+involuntary context switches per second summed over
/proc/PID/task/*/status, and per-thread CPU % and context switches/s; the CPU also from each thread's
/proc/.../schedstat run time (`sched.`: nanoseconds, not 10 ms ticks — use it for a thread's share). Repeats --runs times and reports the
median of each figure. The daemon is the release binary `make release` ships (build it first:
`swift build -c release --static-swift-stdlib --product earshot`).

Usage: bench/live_cost.py [--seconds 60] [--warmup 5] [--runs 3] [--cases sub,none,floor] [--json OUT] [--smaps]
"""
import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

RATE = 48000
TICK = os.sysconf("SC_CLK_TCK")
SMAPS = False
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def material(seconds=10):
    """Deterministic float32 audio: pink-ish noise around -40 dBFS, tones, clicks (no numpy needed)."""
    import array, math, random
    rng = random.Random(1234)
    n = seconds * RATE
    x = array.array("f", bytes(4 * n))
    b0 = b1 = 0.0
    for i in range(n):
        w = rng.uniform(-1, 1)
        b0 = 0.997 * b0 + 0.03 * w
        b1 = 0.96 * b1 + 0.1 * w
        v = (b0 + b1 + 0.2 * w) * 0.01
        t = i / RATE
        if (i // RATE) % 3 == 1:
            v += 0.2 * math.sin(2 * math.pi * 440 * t)
        if i % 24000 == 0:
            v += 0.8
        x[i] = v
    return x.tobytes()


class Writer(threading.Thread):
    """Writes `data` into the FIFO in real time, looping, `chunk` bytes per write (atomic: <= PIPE_BUF, a
    whole number of frames); reopens the FIFO when its reader goes away (the daemon opens the device twice:
    a probe, then the capture)."""

    def __init__(self, fifo, data, chunk_ms):
        super().__init__(daemon=True)
        self.fifo, self.data = fifo, data
        self.chunk = int(RATE * chunk_ms / 1000) * 4
        assert self.chunk <= 4096
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                fd = os.open(self.fifo, os.O_WRONLY)
            except OSError:
                time.sleep(0.05); continue
            sent = pos = 0
            t0 = time.monotonic()
            try:
                while not self.stop.is_set():
                    n = min(self.chunk, len(self.data) - pos)
                    os.write(fd, self.data[pos:pos + n])
                    pos = (pos + n) % len(self.data)
                    sent += n
                    ahead = sent / (RATE * 4) - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(ahead)
            except (BrokenPipeError, OSError):
                pass
            finally:
                os.close(fd)

    def close(self):
        self.stop.set()
        try:  # unblock a pending open
            fd = os.open(self.fifo, os.O_RDONLY | os.O_NONBLOCK); time.sleep(0.05); os.close(fd)
        except OSError:
            pass


class Subscriber(threading.Thread):
    """A socket client reading every line of `streams` (default: every frame); with `ping_every` it also sends
    `ping` and `stats` commands that often (seconds)."""

    def __init__(self, path, streams=("frame",), ping_every=None):
        super().__init__(daemon=True)
        self.path, self.frames, self.lines, self.stop = path, 0, 0, threading.Event()
        self.streams, self.ping_every = list(streams), ping_every
        self.sock = None

    def run(self):
        s = socket.socket(socket.AF_UNIX)
        s.connect(self.path)
        self.sock = s
        f = s.makefile("rb")
        assert b'"hello"' in f.readline()
        s.sendall(('{"op":"subscribe","streams":%s,"every":1}\n' % json.dumps(self.streams)).encode())
        last = time.monotonic()
        for line in f:
            self.lines += 1
            if line.startswith(b'{"type":"frame"'):
                self.frames += 1
            if self.ping_every and time.monotonic() - last > self.ping_every:
                s.sendall(b'{"op":"ping","id":2}\n{"op":"stats","id":3}\n')
                last = time.monotonic()
            if self.stop.is_set():
                break

    def close(self):
        self.stop.set()
        if self.sock:
            try: self.sock.shutdown(socket.SHUT_RDWR)
            except OSError: pass


def paced_device(tmp, name):
    """A FIFO in `tmp` and an ALSA `file` PCM `name` reading it (over the `null` slave): (fifo path, environment
    for the process that opens it; the system's ALSA configuration is read first, hooks and all)."""
    fifo = os.path.join(tmp, "capture.fifo")
    os.mkfifo(fifo, 0o600)
    asoundrc = os.path.join(tmp, "asoundrc")
    with open(asoundrc, "w") as f:
        f.write(f'pcm.{name} {{ type file slave.pcm "null" file "/dev/null" infile "{fifo}" format "raw" }}\n')
    env = dict(os.environ, ALSA_CONFIG_PATH=f"/usr/share/alsa/alsa.conf:{asoundrc}")
    env.pop("EARSHOT_CONFIG", None)
    return fifo, env


def default_config(tmp, device, sock):
    """The default configuration except the device, its format and where the socket goes. As in `earshot demo`:
    the file plugin's capture times read ~90 ms early, so the end-to-end budget would only warn; it is off (the
    latency tracker still runs). Returns the file's path."""
    cfg = os.path.join(tmp, "earshot.yaml")
    with open(cfg, "w") as f:
        f.write(f"capture:\n  device: {device}\n  format: FLOAT_LE\nsocket:\n  path: {sock}\n"
                "budgets:\n  end_to_end_ms: null\n")
    return cfg


def stat_ticks(path):
    with open(path) as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return int(rest[11]) + int(rest[12])  # utime, stime


def run_ns(path):
    """Time on CPU in ns from /proc/.../schedstat (exact, unlike the 10 ms ticks of stat); 0 if missing."""
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0


def snapshot(pid):
    """(monotonic s, process ticks, {tid: (name, ticks, ctxsw, voluntary ctxsw, run ns)}, VmHWM kB)."""
    t = time.monotonic()
    total = stat_ticks(f"/proc/{pid}/stat")
    threads = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = open(f"/proc/{pid}/task/{tid}/comm").read().strip()
            ticks = stat_ticks(f"/proc/{pid}/task/{tid}/stat")
            cs = vol = 0
            for line in open(f"/proc/{pid}/task/{tid}/status"):
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    cs += int(line.split()[1])
                if line.startswith("voluntary_ctxt_switches"):
                    vol = int(line.split()[1])
            threads[tid] = (name, ticks, cs, vol, run_ns(f"/proc/{pid}/task/{tid}/schedstat"))
        except OSError:
            pass
    hwm = 0
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM"):
            hwm = int(line.split()[1])
    return t, total, threads, hwm


def rss_by_mapping(pid):
    """Resident kB per mapped file ([heap], [stack], anonymous, …) from /proc/PID/smaps, largest first."""
    out, name = {}, "?"
    for line in open(f"/proc/{pid}/smaps"):
        f = line.split()
        if not f[0].endswith(":") and "-" in f[0]:
            name = f[5] if len(f) > 5 else "[anon]"
        elif f[0] == "Rss:":
            out[name] = out.get(name, 0) + int(f[1])
    return sorted(out.items(), key=lambda kv: -kv[1])


def measure(pid, seconds):
    a = snapshot(pid)
    time.sleep(seconds)
    b = snapshot(pid)
    wall = b[0] - a[0]
    per = {}
    for tid, (name, ticks, cs, vol, ns) in b[2].items():
        t0, c0, v0, n0 = a[2][tid][1:] if tid in a[2] else (0, 0, 0, 0)
        key = name if name not in per else f"{name}#{tid}"
        per[key] = {"cpu_pct": (ticks - t0) / TICK / wall * 100, "ctxsw_per_s": (cs - c0) / wall,
                    "voluntary_per_s": (vol - v0) / wall, "run_pct": (ns - n0) / 1e9 / wall * 100}
    return {
        "cpu_pct": (b[1] - a[1]) / TICK / wall * 100,
        "ctxsw_per_s": sum(v["ctxsw_per_s"] for v in per.values()),
        "run_pct": sum(v["run_pct"] for v in per.values()),
        "voluntary_per_s": sum(v["voluntary_per_s"] for v in per.values()),
        "vmhwm_mb": b[3] / 1024,
        "threads": per,
        "wall_s": wall,
    }


def run_case(case, binary, seconds, warmup, chunk_ms, data):
    tmp = tempfile.mkdtemp(prefix="earshot-livecost.")
    try:
        fifo, env = paced_device(tmp, "livecost")
        writer = Writer(fifo, data, chunk_ms)
        writer.start()
        sub = None
        sock = os.path.join(tmp, "earshot.sock")
        if case == "floor":
            cmd = ["arecord", "-q", "-D", "livecost", "-f", "FLOAT_LE", "-r", str(RATE), "-c", "1",
                   "--period-size=480", "--buffer-size=3840", "-t", "raw", "/dev/null"]
        else:
            cmd = [binary, "run", "--config", default_config(tmp, "livecost", sock)]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "log"), "wb"))
        try:
            if case != "floor":
                deadline = time.monotonic() + 20
                while not os.path.exists(sock):
                    if proc.poll() is not None or time.monotonic() > deadline:
                        sys.exit(f"live_cost: daemon did not open its socket:\n{open(os.path.join(tmp, 'log')).read()}")
                    time.sleep(0.05)
            if case == "sub":
                sub = Subscriber(sock); sub.start()
            time.sleep(warmup)
            f0 = sub.frames if sub else 0
            r = measure(proc.pid, seconds)
            if SMAPS:
                r["rss_by_mapping_kb"] = rss_by_mapping(proc.pid)
            if sub:
                r["frames_per_s"] = (sub.frames - f0) / r["wall_s"]
            if proc.poll() is not None:
                sys.exit(f"live_cost: {case} exited early:\n{open(os.path.join(tmp, 'log')).read()}")
            r["load"] = open("/proc/loadavg").read().split()[:3]
            return r
        finally:
            if sub: sub.close()
            proc.send_signal(signal.SIGTERM)
            try: proc.wait(10)
            except subprocess.TimeoutExpired: proc.kill(); proc.wait()
            writer.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(ROOT, ".build/release/earshot"))
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--warmup", type=float, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--cases", default="sub,none,floor")
    ap.add_argument("--chunk-ms", type=float, default=20, help="FIFO write size (the demo writes 20 ms)")
    ap.add_argument("--json", help="write the results (every run and the medians) to this file")
    ap.add_argument("--smaps", action="store_true",
                    help="also print the resident memory per mapping (from /proc/PID/smaps) after each run")
    a = ap.parse_args()
    global SMAPS
    SMAPS = a.smaps
    if not os.access(a.binary, os.X_OK):
        sys.exit(f"live_cost: {a.binary} missing (swift build -c release --static-swift-stdlib --product earshot)")
    data = material()
    cases = a.cases.split(",")
    runs = {c: [] for c in cases}
    for i in range(a.runs):  # interleaved, so machine load hits every case alike
        for c in cases:
            r = run_case(c, a.binary, a.seconds, a.warmup, a.chunk_ms, data)
            runs[c].append(r)
            extra = f" frames/s {r['frames_per_s']:.1f}" if "frames_per_s" in r else ""
            print(f"run {i + 1} {c:<5}: CPU {r['cpu_pct']:.3f} % (schedstat {r['run_pct']:.3f} %)  ctxsw/s {r['ctxsw_per_s']:.0f} "
                  f"(voluntary {r['voluntary_per_s']:.0f})  "
                  f"VmHWM {r['vmhwm_mb']:.1f} MB{extra}  load {' '.join(r['load'])}", file=sys.stderr)
            for name, kb in r.get("rss_by_mapping_kb", [])[:16]:
                print(f"    {kb:>7} kB  {name}", file=sys.stderr)
    med = lambda v: statistics.median(v)
    summary = {}
    print(f"\nmedian of {a.runs} run(s), {a.seconds:.0f} s each after {a.warmup:.0f} s warm-up:")
    print(f"{'case':<6}{'CPU % core':>11}{'(sched.)':>9}{'ctxsw/s':>9}{'(vol.)':>8}{'VmHWM MB':>10}")
    for c in cases:
        rs = runs[c]
        s = {k: med([r[k] for r in rs]) for k in ("cpu_pct", "run_pct", "ctxsw_per_s", "voluntary_per_s", "vmhwm_mb")}
        names = sorted({n.split("#")[0] for r in rs for n in r["threads"]})
        s["threads"] = {}
        for n in names:
            cpu = [sum(v["cpu_pct"] for k, v in r["threads"].items() if k.split("#")[0] == n) for r in rs]
            cs = [sum(v["ctxsw_per_s"] for k, v in r["threads"].items() if k.split("#")[0] == n) for r in rs]
            run = [sum(v.get("run_pct", 0) for k, v in r["threads"].items() if k.split("#")[0] == n) for r in rs]
            s["threads"][n] = {"cpu_pct": med(cpu), "ctxsw_per_s": med(cs), "run_pct": med(run)}
        summary[c] = s
        print(f"{c:<6}{s['cpu_pct']:>11.3f}{s['run_pct']:>9.3f}{s['ctxsw_per_s']:>9.0f}{s['voluntary_per_s']:>8.0f}{s['vmhwm_mb']:>10.1f}")
        for n, v in sorted(s["threads"].items(), key=lambda kv: -kv[1]["cpu_pct"]):
            print(f"    {n:<16}{v['cpu_pct']:>8.3f} %{v['run_pct']:>9.3f} %{v['ctxsw_per_s']:>9.1f} cs/s")
    if "sub" in summary and "none" in summary:
        ok = lambda b: "MET" if b else "NOT MET"
        print(f"targets: sub <= 1.0 %: {ok(summary['sub']['cpu_pct'] <= 1.0)}; none <= 0.5 %: "
              f"{ok(summary['none']['cpu_pct'] <= 0.5)}; VmHWM <= 24 MB: "
              f"{ok(max(summary['sub']['vmhwm_mb'], summary['none']['vmhwm_mb']) <= 24)}; ctxsw <= 250/s: "
              f"{ok(max(summary['sub']['ctxsw_per_s'], summary['none']['ctxsw_per_s']) <= 250)}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"seconds": a.seconds, "warmup": a.warmup, "runs": runs, "median": summary,
                       "binary": a.binary}, f, indent=1)


if __name__ == "__main__":
    main()
