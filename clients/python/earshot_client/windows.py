"""Gap-aware sliding windows of per-frame vectors (log-mel by default) as numpy arrays.

    from earshot_client import Client, LogMelWindows
    client = Client(path, streams=["frame"], fields=["logmel"])
    windows = LogMelWindows(window=100, hop=50)
    for msg in client.messages():
        for w in windows.push(msg):
            model(w.data)            # float32, shape (window, n_mels); w.t / w.seq per row

A window is `window` consecutive frames; a new one is emitted every `hop` frames. Consecutive means: no
`discontinuity` on a frame (xrun, reconnect, overrun, reload, restart), no gap in `seq` (beyond the
decimation `every` the subscription reports), no `dropped` notice for the frame stream, no new `hello`
(a reload may change `n_mels`) and no disconnect in between. Any of those resets the window: frames from
before the gap never share a window with frames after it. `resets` counts the resets by reason.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from .messages import Disconnected, Dropped, Frame, Hello, Message, Reconnected, Subscribed


@dataclass
class Window:
    """`data[i]` is frame `seq[i]`, whose first sample was captured at `t[i]` (UNIX seconds)."""

    data: np.ndarray
    seq: np.ndarray
    t: np.ndarray
    #: Capture time of the last sample of the window (last frame's `t` + n_fft / sample_rate), if known.
    t_end: Optional[float]

    @property
    def seq_first(self) -> int:
        return int(self.seq[0])

    @property
    def seq_last(self) -> int:
        return int(self.seq[-1])

    @property
    def t_start(self) -> float:
        return float(self.t[0])


class FrameWindows:
    """Sliding windows of one vector feature of `frame` messages (`feature`, default `logmel`)."""

    def __init__(self, window: int, hop: int, feature: str = "logmel", dtype=np.float32):
        if not isinstance(window, int) or window < 1:
            raise ValueError("window must be an integer >= 1")
        if not isinstance(hop, int) or hop < 1:
            raise ValueError("hop must be an integer >= 1")
        self.window = window
        self.hop = hop
        self.feature = feature
        self.dtype = np.dtype(dtype)
        self.every = 1
        self.frame_s: Optional[float] = None
        self.resets: Counter = Counter()
        self.emitted = 0
        self._width: Optional[int] = None
        self._ring: Optional[np.ndarray] = None
        self._seq = np.zeros(window, dtype=np.int64)
        self._t = np.zeros(window, dtype=np.float64)
        self._count = 0          # frames since the last reset
        self._last_seq: Optional[int] = None

    def reset(self, reason: str) -> None:
        if self._count:
            self.resets[reason] += 1
        self._count = 0
        self._last_seq = None

    def push(self, msg: Message) -> List[Window]:
        """Feeds one message; returns the windows it completes (zero or one)."""
        if isinstance(msg, Hello):
            self.frame_s = msg.frame_s
            self.reset("hello")
            return []
        if isinstance(msg, Subscribed):
            if "frame" in msg.streams and msg.every != self.every:
                self.every = msg.every
                self.reset("every")
            return []
        if isinstance(msg, (Disconnected, Reconnected)):
            self.reset("disconnect")
            return []
        if isinstance(msg, Dropped):
            if msg.stream == "frame":
                self.reset("dropped")
            return []
        if not isinstance(msg, Frame):
            return []
        vec = msg.features.get(self.feature)
        if not isinstance(vec, list) or not vec:
            self.reset("missing_feature")
            return []
        if msg.discontinuity:
            self.reset("discontinuity")
        elif self._last_seq is not None and msg.seq != self._last_seq + self.every:
            self.reset("seq_gap")
        if self._width != len(vec):
            if self._width is not None:
                self.reset("width")
            self._width = len(vec)
            self._ring = np.empty((self.window, self._width), dtype=self.dtype)
        assert self._ring is not None
        i = self._count % self.window
        # null (a non-finite value on the wire) becomes NaN.
        self._ring[i] = np.asarray([np.nan if v is None else v for v in vec], dtype=self.dtype)
        self._seq[i] = msg.seq
        self._t[i] = msg.t
        self._count += 1
        self._last_seq = msg.seq
        if self._count < self.window or (self._count - self.window) % self.hop != 0:
            return []
        order = (np.arange(self.window) + self._count) % self.window
        self.emitted += 1
        t = self._t[order].copy()
        return [Window(data=self._ring[order].copy(), seq=self._seq[order].copy(), t=t,
                       t_end=None if self.frame_s is None else float(t[-1]) + self.frame_s)]


class LogMelWindows(FrameWindows):
    """Sliding windows of log-mel frames: arrays of shape (window, n_mels)."""

    def __init__(self, window: int, hop: int, dtype=np.float32):
        super().__init__(window, hop, feature="logmel", dtype=dtype)
