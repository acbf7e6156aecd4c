"""Typed messages of the Earshot socket protocol, version 1 (docs/protocol.md).

`parse_message(obj)` turns one decoded JSON line into one of the dataclasses below. Every message keeps the
whole decoded object in `raw`, so fields a newer daemon adds are never lost (the protocol lets servers add
fields to any message). A `type` this module does not know becomes a `GenericMessage`; a known type with a
missing or mistyped required key raises `MessageFormatError`.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Union

PROTOCOL_VERSION = 1

#: The streams of protocol v1 (a daemon may announce more in `hello.streams`).
STREAMS = ("frame", "rolling", "onset", "alert", "status", "stats")


class MessageFormatError(ValueError):
    """A message of a known type lacks a required key or has one of the wrong type."""


Number = Optional[float]
JSONId = Union[str, int, float, None]


def _req(obj: Mapping[str, Any], key: str, kinds: tuple) -> Any:
    if key not in obj:
        raise MessageFormatError(f"{obj.get('type')!r} message without {key!r}")
    v = obj[key]
    # bool is an int in Python: refuse it where a number is wanted, and vice versa.
    if not isinstance(v, kinds) or (isinstance(v, bool) and bool not in kinds):
        raise MessageFormatError(f"{obj.get('type')!r}.{key} has type {type(v).__name__}")
    return v


def _opt(obj: Mapping[str, Any], key: str, kinds: tuple, default: Any = None) -> Any:
    if key not in obj or obj[key] is None:
        return default
    return _req(obj, key, kinds)


_INT = (int,)
_NUM = (int, float)
_NUM_OR_NULL = (int, float, type(None))
_STR = (str,)
_BOOL = (bool,)
_LIST = (list,)


def _num(obj: Mapping[str, Any], key: str) -> Number:
    v = _req(obj, key, _NUM_OR_NULL)
    return None if v is None else float(v)


@dataclass
class Message:
    """Base of every message; `raw` is the decoded JSON object, unknown fields included."""

    raw: Dict[str, Any] = field(repr=False, compare=False)

    @property
    def type(self) -> str:
        return str(self.raw.get("type", ""))


@dataclass
class FeatureInfo:
    name: str
    unit: str
    summary: str


@dataclass
class Hello(Message):
    protocol: int
    daemon_version: str
    sample_rate: int
    n_fft: int
    hop: int
    n_mels: int
    n_mfcc: int
    mel_band_edges_hz: List[float]
    level_unit: str
    device: str
    onset_lookahead_ms: Number
    features: List[FeatureInfo]
    streams: List[str]
    limits: Dict[str, Any]
    #: Input health when the client connected: "ok" or the active faults ("silence,clipping"); None when off.
    health: Optional[str] = None

    @property
    def hop_s(self) -> float:
        """Seconds between consecutive frames."""
        return self.hop / self.sample_rate

    @property
    def frame_s(self) -> float:
        """Seconds of audio one frame covers (n_fft samples)."""
        return self.n_fft / self.sample_rate

    @property
    def feature_names(self) -> List[str]:
        return [f.name for f in self.features]

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Hello":
        feats = []
        for f in _req(o, "features", _LIST):
            if not isinstance(f, dict):
                raise MessageFormatError("hello.features must hold objects")
            feats.append(FeatureInfo(_req(f, "name", _STR), _req(f, "unit", _STR), _req(f, "summary", _STR)))
        return cls(
            raw=o, protocol=_req(o, "protocol", _INT), daemon_version=_req(o, "daemon_version", _STR),
            sample_rate=_req(o, "sample_rate", _INT), n_fft=_req(o, "n_fft", _INT), hop=_req(o, "hop", _INT),
            n_mels=_req(o, "n_mels", _INT), n_mfcc=_req(o, "n_mfcc", _INT),
            mel_band_edges_hz=[float(x) for x in _req(o, "mel_band_edges_hz", _LIST)],
            level_unit=_req(o, "level_unit", _STR), device=_req(o, "device", _STR),
            onset_lookahead_ms=_num(o, "onset_lookahead_ms"), features=feats,
            streams=list(_req(o, "streams", _LIST)), limits=dict(_req(o, "limits", (dict,))),
            health=_opt(o, "health", _STR))


#: Keys of a frame line that are not features.
FRAME_META = frozenset({"type", "seq", "t", "discontinuity", "gap_samples", "cause", "level_unit"})


@dataclass
class Frame(Message):
    """One analysis frame. `t` is the capture time (UNIX s) of the frame's first sample; `features` holds
    every feature the line carried (scalars, or lists for `logmel`/`mfcc`)."""

    seq: int
    t: float
    discontinuity: bool = False
    gap_samples: Optional[int] = None
    cause: Optional[str] = None
    level_unit: Optional[str] = None
    features: Dict[str, Any] = field(default_factory=dict)

    @property
    def logmel(self) -> Optional[List[Optional[float]]]:
        return self.features.get("logmel")

    @property
    def mfcc(self) -> Optional[List[Optional[float]]]:
        return self.features.get("mfcc")

    def __getitem__(self, name: str) -> Any:
        return self.features[name]

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Frame":
        disc = _opt(o, "discontinuity", _BOOL, False)
        return cls(
            raw=o, seq=_req(o, "seq", _INT), t=float(_req(o, "t", _NUM)), discontinuity=disc,
            gap_samples=_opt(o, "gap_samples", _INT), cause=_opt(o, "cause", _STR),
            level_unit=_opt(o, "level_unit", _STR),
            features={k: v for k, v in o.items() if k not in FRAME_META})


@dataclass
class Onset(Message):
    seq: int
    t: float
    strength: Number
    delay_ms: Number
    detected_seq: int

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Onset":
        return cls(raw=o, seq=_req(o, "seq", _INT), t=float(_req(o, "t", _NUM)), strength=_num(o, "strength"),
                   delay_ms=_num(o, "delay_ms"), detected_seq=_req(o, "detected_seq", _INT))


@dataclass
class Rolling(Message):
    """One completed tumbling window; fields a newer daemon adds (e.g. more levels or bands) are in `raw`."""

    window_s: float
    t: float
    t_end: float
    seq_first: int
    seq_last: int
    frames: int
    complete: bool
    level_unit: str
    weighting: str
    leq: Number
    lmax: Number
    lmin: Number
    l10: Number
    l50: Number
    l90: Number
    onsets: int
    discontinuities: int
    centroid_hz_mean: Number
    logmel_mean: List[Optional[float]]

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Rolling":
        return cls(
            raw=o, window_s=float(_req(o, "window_s", _NUM)), t=float(_req(o, "t", _NUM)),
            t_end=float(_req(o, "t_end", _NUM)), seq_first=_req(o, "seq_first", _INT),
            seq_last=_req(o, "seq_last", _INT), frames=_req(o, "frames", _INT), complete=_req(o, "complete", _BOOL),
            level_unit=_req(o, "level_unit", _STR), weighting=_req(o, "weighting", _STR),
            leq=_num(o, "leq"), lmax=_num(o, "lmax"), lmin=_num(o, "lmin"), l10=_num(o, "l10"), l50=_num(o, "l50"),
            l90=_num(o, "l90"), onsets=_req(o, "onsets", _INT), discontinuities=_req(o, "discontinuities", _INT),
            centroid_hz_mean=_num(o, "centroid_hz_mean"), logmel_mean=list(_req(o, "logmel_mean", _LIST)))


@dataclass
class Alert(Message):
    """`alert` is `level`, `onset` or `onset_summary` (or a kind a newer daemon adds); the other fields are
    set for the kinds that carry them."""

    alert: str
    t: float
    state: Optional[str] = None
    level_db: Number = None
    threshold_db: Number = None
    seq: Optional[int] = None
    decided_seq: Optional[int] = None
    duration_s: Number = None
    max_db: Number = None
    weighting: Optional[str] = None
    strength: Number = None
    suppressed: Optional[int] = None
    emitted: Optional[int] = None
    period_s: Number = None
    #: Level alert end: the sound exposure level over the alert, named by `sel` (LAE, LCE or LZE).
    sel_db: Number = None
    sel: Optional[str] = None
    #: Level alert end decided by a reload, not by the level: "reconfigured" (see docs/protocol.md).
    reason: Optional[str] = None

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Alert":
        def n(k: str) -> Number:
            v = _opt(o, k, _NUM_OR_NULL)
            return None if v is None else float(v)
        return cls(
            raw=o, alert=_req(o, "alert", _STR), t=float(_req(o, "t", _NUM)), state=_opt(o, "state", _STR),
            level_db=n("level_db"), threshold_db=n("threshold_db"), seq=_opt(o, "seq", _INT),
            decided_seq=_opt(o, "decided_seq", _INT), duration_s=n("duration_s"), max_db=n("max_db"),
            weighting=_opt(o, "weighting", _STR), strength=n("strength"), suppressed=_opt(o, "suppressed", _INT),
            emitted=_opt(o, "emitted", _INT), period_s=n("period_s"), sel_db=n("sel_db"), sel=_opt(o, "sel", _STR),
            reason=_opt(o, "reason", _STR))


@dataclass
class Status(Message):
    """A daemon event (`device_lost`, `device_recovered`, `xrun`, `discontinuity`, `reload`, `sink_failed`,
    `samples_sanitized`, …); the event's own fields are in `details`."""

    event: str
    t: float
    device: str
    details: Dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Status":
        return cls(raw=o, event=_req(o, "event", _STR), t=float(_req(o, "t", _NUM)), device=_req(o, "device", _STR),
                   details={k: v for k, v in o.items() if k not in ("type", "event", "t", "device")})


@dataclass
class Stats(Message):
    """Counters (totals since start) in `counters`; per-stage latency percentiles in `latency_ms`."""

    t: float
    counters: Dict[str, int]
    latency_ms: Dict[str, Dict[str, Any]]
    over_budget: Dict[str, int]

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Stats":
        for k in ("frames", "xruns", "reconnects", "discontinuities", "subscribers"):
            _req(o, k, _INT)
        counters = {k: v for k, v in o.items() if isinstance(v, int) and not isinstance(v, bool)}
        return cls(raw=o, t=float(_req(o, "t", _NUM)), counters=counters,
                   latency_ms=dict(_req(o, "latency_ms", (dict,))), over_budget=dict(_req(o, "over_budget", (dict,))))


@dataclass
class Subscribed(Message):
    streams: List[str]
    every: int
    fields: Optional[List[str]]
    backfill: int
    id: JSONId = None

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Subscribed":
        if "fields" not in o:
            raise MessageFormatError("'subscribed' message without 'fields'")
        return cls(raw=o, streams=list(_req(o, "streams", _LIST)), every=_req(o, "every", _INT),
                   fields=_opt(o, "fields", _LIST), backfill=_req(o, "backfill", _INT), id=o.get("id"))


@dataclass
class Unsubscribed(Message):
    streams: List[str]
    id: JSONId = None

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Unsubscribed":
        return cls(raw=o, streams=list(_req(o, "streams", _LIST)), id=o.get("id"))


@dataclass
class Pong(Message):
    t: float
    id: JSONId = None

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Pong":
        return cls(raw=o, t=float(_req(o, "t", _NUM)), id=o.get("id"))


@dataclass
class Dropped(Message):
    """`count` messages of `stream` were dropped from this client's queue (it read too slowly)."""

    count: int
    stream: str

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Dropped":
        return cls(raw=o, count=_req(o, "count", _INT), stream=_req(o, "stream", _STR))


#: Error codes after which the server closes the connection (docs/protocol.md).
CLOSING_ERROR_CODES = frozenset({"line_too_long", "too_many_clients", "idle_timeout", "stalled"})


@dataclass
class Error(Message):
    code: str
    message: str
    id: JSONId = None

    @property
    def closes_connection(self) -> bool:
        return self.code in CLOSING_ERROR_CODES

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Error":
        return cls(raw=o, code=_req(o, "code", _STR), message=_req(o, "message", _STR), id=o.get("id"))


@dataclass
class Health(Message):
    """An input-health fault (`kind`: silence, dc_offset, low_floor, clipping, clock_drift, no_data, …)
    starting or ending (`state`), on the `alert` stream; `active` lists the faults active after it."""

    kind: str
    state: str
    t: float
    value: Number
    threshold: Number
    active: List[str]

    @classmethod
    def from_obj(cls, o: Dict[str, Any]) -> "Health":
        return cls(raw=o, kind=_req(o, "kind", _STR), state=_req(o, "state", _STR), t=float(_req(o, "t", _NUM)),
                   value=_num(o, "value"), threshold=_num(o, "threshold"), active=list(_req(o, "active", _LIST)))


@dataclass
class GenericMessage(Message):
    """A message whose `type` this client does not know (a newer daemon), passed through untouched."""


@dataclass
class Disconnected(Message):
    """Not a wire message: the connection to the daemon was lost (`reason`); the client reconnects."""

    reason: str = ""


@dataclass
class Reconnected(Message):
    """Not a wire message: the client connected again after `down_s` seconds and `attempts` attempts and
    re-subscribed; stream state (seq continuity, windows) starts afresh."""

    down_s: float = 0.0
    attempts: int = 0


MESSAGE_TYPES = {
    "hello": Hello, "frame": Frame, "onset": Onset, "rolling": Rolling, "alert": Alert, "status": Status,
    "stats": Stats, "subscribed": Subscribed, "unsubscribed": Unsubscribed, "pong": Pong, "dropped": Dropped,
    "error": Error, "health": Health,
}


def parse_message(obj: Any) -> Message:
    """One decoded JSON line → its typed message (`GenericMessage` for an unknown `type`)."""
    if not isinstance(obj, dict):
        raise MessageFormatError(f"a message must be a JSON object, got {type(obj).__name__}")
    kind = obj.get("type")
    if not isinstance(kind, str):
        raise MessageFormatError("message without a string 'type'")
    cls = MESSAGE_TYPES.get(kind)
    if cls is None:
        return GenericMessage(raw=obj)
    return cls.from_obj(obj)


def parse_line(line: Union[str, bytes]) -> Message:
    """One NDJSON line → its typed message."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as e:
        raise MessageFormatError(f"not JSON: {e}") from None
    return parse_message(obj)


def subscribe_command(streams, every: Optional[int] = None, fields=None, backfill_s: Optional[float] = None,
                      id: JSONId = None) -> bytes:
    """The `subscribe` command line (trailing newline included), checked before it is sent."""
    streams = _stream_list(streams)
    cmd: Dict[str, Any] = {"op": "subscribe", "streams": streams}
    if every is not None:
        if isinstance(every, bool) or not isinstance(every, int) or not 1 <= every <= 1_000_000:
            raise ValueError("every must be an integer in 1...1000000")
        cmd["every"] = every
    if fields is not None:
        if isinstance(fields, str) or not all(isinstance(f, str) and f for f in fields):
            raise ValueError("fields must be a list of feature names")
        cmd["fields"] = list(fields)
    if backfill_s is not None:
        if isinstance(backfill_s, bool) or not isinstance(backfill_s, (int, float)) or not backfill_s >= 0:
            raise ValueError("backfill_s must be a number >= 0")
        cmd["backfill_s"] = backfill_s
    return _command(cmd, id)


def unsubscribe_command(streams, id: JSONId = None) -> bytes:
    return _command({"op": "unsubscribe", "streams": _stream_list(streams)}, id)


def ping_command(id: JSONId = None) -> bytes:
    return _command({"op": "ping"}, id)


def _stream_list(streams) -> List[str]:
    if isinstance(streams, str):
        streams = [streams]
    streams = list(streams)
    if not streams or not all(isinstance(s, str) and s for s in streams):
        raise ValueError("streams must be a non-empty list of stream names")
    return streams


def _command(cmd: Dict[str, Any], id: JSONId) -> bytes:
    if id is not None:
        if isinstance(id, bool) or not isinstance(id, (str, int, float)):
            raise ValueError("id must be a string, a number or None")
        if isinstance(id, str) and len(id.encode()) > 256:
            raise ValueError("id strings are at most 256 bytes")
        cmd["id"] = id
    return (json.dumps(cmd, separators=(",", ":"), ensure_ascii=False, allow_nan=False) + "\n").encode()
