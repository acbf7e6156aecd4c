"""Messages, commands, windows and the schema without a daemon."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from earshot_client import (Dropped, Frame, GenericMessage, Hello, MessageFormatError, Rolling, Stats, Status,
                            LogMelWindows, parse_line, parse_message, schema_path, subscribe_command)
from earshot_client.messages import Disconnected

HELLO = {"type": "hello", "protocol": 1, "daemon_version": "0.1.0", "sample_rate": 48000, "n_fft": 1024, "hop": 480,
         "n_mels": 3, "n_mfcc": 2, "mel_band_edges_hz": [0, 10, 20, 30, 40], "level_unit": "dBFS", "device": "x",
         "onset_lookahead_ms": 10, "features": [{"name": "logmel", "unit": "dB", "summary": "s"}],
         "streams": ["frame"], "limits": {"max_line_bytes": 65536, "queue_messages": 4096, "queue_bytes": 1,
                                          "stall_limit_s": 10, "backfill_s": 600, "max_clients": 128,
                                          "max_clients_per_uid": 64, "queue_bytes_total": 1, "idle_timeout_s": 10},
         "health": "ok", "future_field": {"x": 1}}


def frame(seq, **extra):
    return Frame.from_obj({"type": "frame", "seq": seq, "t": 1000 + seq * 0.01, "logmel": [seq, seq + 0.5, None], **extra})


def test_messages_parse_and_keep_unknown_fields():
    h = parse_message(dict(HELLO))
    assert isinstance(h, Hello) and h.n_mels == 3 and h.hop_s == 0.01 and h.health == "ok" and h.raw["future_field"] == {"x": 1}
    f = parse_line('{"type":"frame","seq":5,"t":1.5,"discontinuity":true,"gap_samples":480,"cause":"xrun","laf":-20.5,"logmel":[1,2]}')
    assert isinstance(f, Frame) and f.discontinuity and f.cause == "xrun" and f["laf"] == -20.5 and f.logmel == [1, 2]
    assert isinstance(parse_line('{"type":"future_message","file":"x.wav"}'), GenericMessage)
    hm = parse_line('{"type":"health","kind":"silence","state":"start","t":1,"value":30.5,"threshold":30,"active":["silence"]}')
    assert hm.kind == "silence" and hm.active == ["silence"]
    s = parse_line('{"type":"status","event":"reload","t":1,"device":"d","plan":"live","failed_sinks":[]}')
    assert isinstance(s, Status) and s.details["plan"] == "live"
    st = parse_line('{"type":"stats","t":1,"frames":3,"xruns":0,"reconnects":0,"discontinuities":0,"subscribers":1,'
                    '"latency_ms":{},"over_budget":{},"new_counter":4}')
    assert isinstance(st, Stats) and st.counters["new_counter"] == 4
    with pytest.raises(MessageFormatError):
        parse_line('{"type":"frame","seq":"5","t":1}')
    with pytest.raises(MessageFormatError):
        parse_line('{"type":"dropped","stream":"frame"}')


def test_subscribe_command_is_built_correctly():
    line = subscribe_command(["frame", "rolling"], every=2, fields=["laf", "logmel"], backfill_s=30, id="a\"b")
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert json.loads(line) == {"op": "subscribe", "streams": ["frame", "rolling"], "every": 2,
                                "fields": ["laf", "logmel"], "backfill_s": 30, "id": "a\"b"}
    assert json.loads(subscribe_command("onset")) == {"op": "subscribe", "streams": ["onset"]}
    for bad in [dict(streams=[]), dict(streams=["frame"], every=0), dict(streams=["frame"], every=True),
                dict(streams=["frame"], fields="laf"), dict(streams=["frame"], backfill_s=-1),
                dict(streams=["frame"], id="x" * 300)]:
        with pytest.raises(ValueError):
            subscribe_command(**bad)


def test_windows_slide_and_reset_on_every_kind_of_gap():
    w = LogMelWindows(window=4, hop=2)
    w.push(parse_message(dict(HELLO)))
    out = []
    for s in range(10, 18):
        out += w.push(frame(s))
    assert [x.seq_first for x in out] == [10, 12, 14]
    assert out[0].data.shape == (4, 3) and out[0].data.dtype == np.float32 and np.isnan(out[0].data[0, 2])
    assert np.allclose(out[0].t, [1000.1, 1000.11, 1000.12, 1000.13])
    assert out[0].t_end == pytest.approx(1000.13 + 1024 / 48000)
    # seq gap
    assert w.push(frame(19)) == [] and w.resets["seq_gap"] == 1
    got = sum((w.push(frame(s)) for s in range(20, 23)), [])
    assert [x.seq_first for x in got] == [19]
    # discontinuity on a frame: the window restarts at that frame
    got = w.push(frame(23, discontinuity=True, gap_samples=10, cause="xrun"))
    assert got == [] and w.resets["discontinuity"] == 1
    got = sum((w.push(frame(s)) for s in range(24, 27)), [])
    assert [x.seq_first for x in got] == [23]
    # dropped frames
    w.push(Dropped.from_obj({"type": "dropped", "count": 3, "stream": "frame"}))
    assert w.resets["dropped"] == 1
    got = sum((w.push(frame(s)) for s in range(30, 34)), [])
    assert [x.seq_first for x in got] == [30]
    # dropped rolling lines do not matter; a disconnect does
    w.push(Dropped.from_obj({"type": "dropped", "count": 3, "stream": "rolling"}))
    assert w.resets["dropped"] == 1
    w.push(Disconnected(raw={"type": "disconnected"}))
    assert w.resets["disconnect"] == 1


def test_schema_accepts_the_docs_examples_and_rejects_broken_messages(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(schema_path().read_text())
    v = jsonschema.Draft202012Validator(schema)
    good = [HELLO, {"type": "frame", "seq": 1, "t": 2.5, "laf": None, "logmel": [1, None]},
            {"type": "rolling", "window_s": 1, "t": 1, "t_end": 2, "seq_first": 0, "seq_last": 99, "frames": 100,
             "complete": True, "level_unit": "dBFS", "weighting": "laf", "leq": -1, "lmax": 0, "lmin": -3, "l10": -1,
             "l50": -2, "l90": -3, "onsets": 0, "discontinuities": 0, "centroid_hz_mean": 5, "logmel_mean": [1],
             "laeq": -3.2, "bands": {"63": -40}},
            {"type": "future_message", "anything": 1}]
    for m in good:
        assert not list(v.iter_errors(m)), m
    bad = [{**HELLO, "sample_rate": "48000"}, {k: x for k, x in HELLO.items() if k != "n_mels"},
           {"type": "frame", "seq": 1}, {"type": "frame", "seq": -1, "t": 1}, {"type": "pong", "t": "now"},
           {"type": "dropped", "count": 0, "stream": "frame"}, {"type": "error", "code": "x"},
           {"type": "alert", "alert": "level", "t": 1, "state": "start"}, {"type": "status", "event": "xrun", "t": 1, "device": "d"},
           {"type": "frame", "seq": 1, "t": 1, "discontinuity": True}, {"kind": "frame"},
           {"type": "health", "kind": "silence", "state": "begin", "t": 1, "value": 1, "threshold": 1, "active": []}]
    for m in bad:
        assert list(v.iter_errors(m)), m
    # The command-line checker: exit 0 on good lines, 1 on a bad one or an undescribed type.
    f = tmp_path / "lines.ndjson"
    f.write_text("\n".join(json.dumps(m) for m in good[:3]) + "\n")
    checker = Path(__file__).resolve().parents[1] / "earshot_client" / "schema_check.py"
    r = subprocess.run([sys.executable, str(checker), str(f), "--require-types", "hello,frame,rolling"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    f.write_text(json.dumps(bad[0]) + "\n")
    r = subprocess.run([sys.executable, str(checker), str(f)], capture_output=True, text=True)
    assert r.returncode == 1 and "sample_rate" in r.stdout, r.stdout
