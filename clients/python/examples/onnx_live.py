#!/usr/bin/env python3
"""Run a small CNN (ONNX, onnxruntime) on live log-mel windows and print its latency from capture to result.

The model is built here with `onnx.helper` (no torch needed): log-mel window (1, 1, window, n_mels) →
Conv 3×3 (8 filters) → ReLU → MaxPool 2×2 → Conv 3×3 (16) → ReLU → global average pool → Gemm → softmax over
`--classes` classes, with fixed random weights (seed 0): a stand-in for your trained classifier — swap in
your own `.onnx` file with `--model`. Windows come from `earshot_client.LogMelWindows` (gap-aware: a window
never spans a discontinuity, a seq gap, dropped frames or a reconnect).

Latency, per window: from the capture of the window's last sample (the last frame's `t` + n_fft /
sample_rate, the daemon's capture clock) to the moment the model's output is available here, and the
inference time alone.

    pip install ./clients/python onnx onnxruntime
    python3 clients/python/examples/onnx_live.py --socket /run/earshot/earshot.sock --window 100 --hop 50
    # window 1 seq 1200..1299 class 2 p=0.31 latency 41.3 ms (inference 0.42 ms)
"""
import argparse
import statistics
import sys
import time

import numpy as np


def build_model(window: int, n_mels: int, classes: int, path: str) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def init(name, shape, scale):
        return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)

    inits = [init("w1", (8, 1, 3, 3), 0.3), init("b1", (8,), 0.1), init("w2", (16, 8, 3, 3), 0.1),
             init("b2", (16,), 0.1), init("w3", (classes, 16), 0.2), init("b3", (classes,), 0.1),
             numpy_helper.from_array(np.array([1, 1, window, n_mels], dtype=np.int64), "shape")]
    nodes = [
        helper.make_node("Reshape", ["logmel", "shape"], ["x0"]),
        # Scale dB (about -100..0) to about -1..1 before the convolutions.
        helper.make_node("Constant", [], ["k"], value=numpy_helper.from_array(np.array(0.02, dtype=np.float32))),
        helper.make_node("Mul", ["x0", "k"], ["x1"]),
        helper.make_node("Conv", ["x1", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["logits"], transB=1),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "earshot_logmel_cnn",
        [helper.make_tensor_value_info("logmel", TensorProto.FLOAT, [window, n_mels])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, classes])], inits)
    model = helper.make_model(graph, producer_name="earshot onnx_live.py", opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8  # readable by onnxruntime >= 1.12
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default="/run/earshot/earshot.sock")
    ap.add_argument("--window", type=int, default=100, help="frames per window (default 100 = 1 s)")
    ap.add_argument("--hop", type=int, default=50, help="frames between windows (default 50)")
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--windows", type=int, default=0, help="exit after N windows (0: run forever)")
    ap.add_argument("--model", default="", help="an existing .onnx file taking a (window, n_mels) float32 'logmel'")
    ap.add_argument("--save-model", default="", help="where to write the generated model (default: a temp file)")
    args = ap.parse_args()
    if args.window < 3 or args.hop < 1 or args.classes < 1:
        ap.error("--window >= 3, --hop >= 1, --classes >= 1")

    import onnxruntime as ort
    from earshot_client import Client, ConnectionFailed, LogMelWindows

    client = Client(args.socket, streams=["frame"], fields=["logmel"], reconnect=True, give_up_after_s=60)
    try:
        hello = client.connect()
    except ConnectionFailed as e:
        print(e.strerror, file=sys.stderr)
        return 69
    path = args.model
    if not path:
        import os
        import tempfile
        path = args.save_model or os.path.join(tempfile.mkdtemp(prefix="earshot-onnx-"), "cnn.onnx")
        build_model(args.window, hello.n_mels, args.classes, path)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    print(f"model {path}: input (window={args.window}, n_mels={hello.n_mels}) -> {args.classes} classes; "
          f"daemon {hello.daemon_version} {hello.sample_rate} Hz hop {hello.hop_s * 1000:.1f} ms", flush=True)

    # Frames queued while the model was built would arrive late: start the stream afresh (messages()
    # reconnects and subscribes again).
    client.close()
    windows = LogMelWindows(window=args.window, hop=args.hop)
    latencies = []
    done = 0
    for msg in client.messages():
        for w in windows.push(msg):
            if w.data.shape[1] != session.get_inputs()[0].shape[1]:
                print(f"n_mels changed to {w.data.shape[1]}: restart with a matching model", file=sys.stderr)
                return 1
            t0 = time.time()
            probs = session.run(None, {"logmel": w.data})[0][0]
            t1 = time.time()
            latency_ms = (t1 - w.t_end) * 1000
            latencies.append(latency_ms)
            done += 1
            cls = int(np.argmax(probs))
            print(f"window {done} seq {w.seq_first}..{w.seq_last} class {cls} p={probs[cls]:.2f} "
                  f"latency {latency_ms:.1f} ms (inference {(t1 - t0) * 1000:.2f} ms)", flush=True)
            if args.windows and done >= args.windows:
                print(f"latency from capture to result: median {statistics.median(latencies):.1f} ms, "
                      f"max {max(latencies):.1f} ms over {done} windows; resets {dict(windows.resets)}")
                client.close()
                return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
