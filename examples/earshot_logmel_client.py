#!/usr/bin/env python3
"""Read log-mel frames from the earshot socket into numpy windows.

Connects to the daemon's Unix socket, reads the `hello` line (for n_mels), subscribes to the `frame`
stream with `fields: ["logmel"]`, and fills a float32 array of shape (frames, n_mels) per window
(default 100 frames = 1 s at the default 10 ms hop). Python 3 standard library + numpy only.

    python3 earshot_logmel_client.py --socket /run/earshot/earshot.sock --frames 100 --windows 5
"""
import argparse
import json
import socket
import sys

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--socket", default="/run/earshot/earshot.sock", help="daemon socket path")
    ap.add_argument("--frames", type=int, default=100, help="frames per window (default 100 = 1 s)")
    ap.add_argument("--windows", type=int, default=0, help="exit after N windows (0: run forever)")
    args = ap.parse_args()
    if args.frames < 1:
        ap.error("--frames must be >= 1")

    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(args.socket)
    except OSError as e:
        print(f"cannot connect to {args.socket}: {e.strerror} (is the daemon running?)", file=sys.stderr)
        return 69
    f = s.makefile("rb")

    hello = json.loads(f.readline())
    if hello.get("type") != "hello" or hello.get("protocol") != 1:
        print(f"unexpected greeting: {hello}", file=sys.stderr)
        return 1
    n_mels = int(hello["n_mels"])
    hop_s = hello["hop"] / hello["sample_rate"]
    print(f"connected: {hello['device']} {hello['sample_rate']} Hz, hop {hop_s * 1000:.1f} ms, n_mels {n_mels}")

    s.sendall(b'{"op":"subscribe","streams":["frame"],"fields":["logmel"],"id":"logmel"}\n')

    window = np.empty((args.frames, n_mels), dtype=np.float32)
    filled = 0
    done = 0
    first_seq = None
    for raw in f:
        msg = json.loads(raw)
        kind = msg.get("type")
        if kind == "error":
            print(f"server error {msg['code']}: {msg['message']}", file=sys.stderr)
            return 1
        if kind == "dropped":
            print(f"warning: server dropped {msg['count']} {msg['stream']} messages (reading too slowly)", file=sys.stderr)
            continue
        if kind == "hello":  # configuration reload: the band count may change
            n_mels = int(msg["n_mels"])
            window = np.empty((args.frames, n_mels), dtype=np.float32)
            filled = 0
            continue
        if kind != "frame":
            continue
        logmel = msg["logmel"]
        if len(logmel) != n_mels:
            continue
        if filled == 0:
            first_seq = msg["seq"]
        window[filled] = logmel
        filled += 1
        if filled == args.frames:
            done += 1
            band_mean = window.mean(axis=0)
            print(f"window {done}: shape={window.shape} dtype={window.dtype} seq {first_seq}..{msg['seq']} "
                  f"mean={window.mean():.2f} dB min={window.min():.2f} max={window.max():.2f} "
                  f"loudest band={int(band_mean.argmax())}")
            filled = 0
            if args.windows and done >= args.windows:
                return 0
    print("connection closed by the daemon", file=sys.stderr)
    return 0 if args.windows == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
