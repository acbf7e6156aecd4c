"""examples/onnx_live.py against a live daemon: builds its CNN, runs it on windows, prints latencies."""
import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import require

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "onnx_live.py"


def test_onnx_example_runs_a_cnn_on_live_windows(daemon, tmp_path):
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        have = True
    except ImportError:
        have = False
    require(have, "onnx/onnxruntime not installed (pip install onnx onnxruntime)")
    model = tmp_path / "cnn.onnx"
    # The installed package, or this checkout's.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(EXAMPLE.parents[1]), os.environ.get("PYTHONPATH")])))
    r = subprocess.run([sys.executable, str(EXAMPLE), "--socket", daemon.socket_path, "--window", "50", "--hop", "25",
                        "--windows", "4", "--save-model", str(model)], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert model.stat().st_size > 1000
    lines = [l for l in r.stdout.splitlines() if l.startswith("window ")]
    assert len(lines) == 4, r.stdout
    lat = [float(m.group(1)) for m in (re.search(r"latency ([\d.]+) ms", l) for l in lines) if m]
    assert len(lat) == 4
    # From the capture of the window's last sample to the model's output: positive, and well under a second
    # (the daemon publishes a frame within milliseconds; the paced FIFO delivers 20 ms chunks).
    assert all(0 < x < 1000 for x in lat), lat
    seqs = [tuple(map(int, re.search(r"seq (\d+)\.\.(\d+)", l).groups())) for l in lines]
    assert all(b - a == 49 for a, b in seqs) and all(s2[0] - s1[0] == 25 for s1, s2 in zip(seqs, seqs[1:])), seqs
    assert "median" in r.stdout
