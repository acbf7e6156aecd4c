"""A real `earshot run` for the tests: capture through ALSA's `file` plugin reading a FIFO that a thread
fills in real time (20 ms chunks on a monotonic schedule; the daemon's reads block until it delivers, as
with a sound card), a configuration and the socket in a temp dir. The same rig as the Swift end-to-end
tests' PacedFIFODevice (Tests/EarshotEndToEndTests/ServiceSupport.swift)."""
from __future__ import annotations

import errno
import math
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[3]
RATE = 48_000


def earshot_binary() -> str:
    env = os.environ.get("EARSHOT_BIN")
    if env:
        return env
    return str(REPO / ".build" / "debug" / "earshot")


def test_signal(seconds: float = 4.0) -> np.ndarray:
    """Tones with a tremolo, clicks every 0.37 s and low noise (levels, spectra and onsets vary)."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    x = 0.25 * np.sin(2 * math.pi * 440 * t) + 0.08 * (1 + 0.5 * np.sin(2 * math.pi * 1.5 * t)) * np.sin(2 * math.pi * 3000 * t)
    rng = np.random.default_rng(7)
    x += 0.003 * rng.standard_normal(n)
    every = int(0.37 * RATE)
    for start in range(every // 2, n - 96, every):
        x[start:start + 96] += 0.6 * np.exp(-np.arange(96) / 20) * rng.standard_normal(96)
    return np.clip(x, -0.99, 0.99).astype("<f4")


class PacedFIFO:
    """Writes `samples` (looped) into a FIFO in real time; reopens it when the reader goes away (the daemon
    opens the device twice, and a restarted daemon opens it again)."""

    def __init__(self, path: Path, samples: np.ndarray, chunk_s: float = 0.02):
        self.path = path
        os.mkfifo(path, 0o600)
        self.data = samples.tobytes()
        self.chunk = int(chunk_s * RATE) * 4
        self.chunk_s = chunk_s
        self._stop = threading.Event()
        self._pause = threading.Event()
        self._thread = threading.Thread(target=self._run, name="paced-fifo", daemon=True)
        self._thread.start()

    def _open(self):
        while not self._stop.is_set():
            try:
                return os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as e:
                if e.errno != errno.ENXIO:  # no reader yet
                    raise
                time.sleep(0.01)
        return None

    def _run(self) -> None:
        pos = 0
        while not self._stop.is_set():
            fd = self._open()
            if fd is None:
                return
            os.set_blocking(fd, True)
            next_at = time.monotonic()
            try:
                while not self._stop.is_set():
                    if self._pause.is_set():
                        time.sleep(0.01)
                        next_at = time.monotonic()
                        continue
                    piece = self.data[pos:pos + self.chunk]
                    if len(piece) < self.chunk:
                        piece += self.data[:self.chunk - len(piece)]
                    pos = (pos + self.chunk) % len(self.data)
                    os.write(fd, piece)
                    next_at += self.chunk_s
                    delay = next_at - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                    elif delay < -1:
                        next_at = time.monotonic()
            except (BrokenPipeError, OSError):
                pass
            finally:
                os.close(fd)

    def pause(self) -> None:
        self._pause.set()

    def resume(self) -> None:
        self._pause.clear()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class Daemon:
    """`earshot run --config DIR/earshot.yaml` on the paced FIFO; `start()`, `stop()`, `reload(yaml)`."""

    def __init__(self, directory: Path, extra_yaml: str = ""):
        self.dir = directory
        self.socket_path = str(directory / "earshot.sock")
        self.fifo = PacedFIFO(directory / "capture.fifo", test_signal())
        self.asoundrc = directory / "asoundrc"
        self.asoundrc.write_text(f'pcm.paced {{ type file slave.pcm "null" file "/dev/null" infile "{self.fifo.path}" format "raw" }}\n')
        self.config = directory / "earshot.yaml"
        self.extra_yaml = extra_yaml
        self.write_config()
        self.proc: subprocess.Popen | None = None
        self.stderr_lines: list[str] = []
        self.starts = 0

    def write_config(self, analysis_yaml: str = "") -> None:
        self.config.write_text(
            "capture:\n  device: paced\n  format: FLOAT_LE\n  sample_rate: 48000\n"
            f"socket:\n  path: {self.socket_path}\n"
            "rolling:\n  windows_s: [1]\n"
            "budgets:\n  end_to_end_ms: null\n"
            f"{analysis_yaml}{self.extra_yaml}")

    def start(self, timeout: float = 20.0) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("EARSHOT_", "ALSA_", "PULSE_", "NOTIFY_", "LISTEN_", "WATCHDOG_"))}
        env.pop("JOURNAL_STREAM", None)
        env["ALSA_CONFIG_PATH"] = f"/usr/share/alsa/alsa.conf:{self.asoundrc}"
        self.stderr_lines = []
        self.proc = subprocess.Popen([earshot_binary(), "run", "--config", str(self.config)], env=env,
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.starts += 1
        ready = threading.Event()

        def pump(p: subprocess.Popen) -> None:
            assert p.stderr is not None
            for line in p.stderr:
                self.stderr_lines.append(line.rstrip("\n"))
                if "ready: frames are flowing" in line:
                    ready.set()
        threading.Thread(target=pump, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready.is_set() and os.path.exists(self.socket_path):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError(f"earshot did not come up: {self.stderr}")

    @property
    def stderr(self) -> str:
        return "\n".join(self.stderr_lines)

    def reload(self, analysis_yaml: str) -> None:
        """Rewrites the configuration and sends SIGHUP."""
        assert self.proc is not None
        self.write_config(analysis_yaml)
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout: float = 10.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.fifo.stop()
