"""The client against a live daemon (real ALSA capture from a paced FIFO)."""
import time

import numpy as np

from earshot_client import Client, Disconnected, Frame, Hello, LogMelWindows, Reconnected, Rolling, Status, Subscribed


def collect_windows(client, windows, count, timeout=15.0, on_message=None):
    out = []
    deadline = time.monotonic() + timeout
    for msg in client.messages(timeout=timeout):
        if on_message:
            on_message(msg)
        out.extend(windows.push(msg))
        if len(out) >= count or time.monotonic() > deadline:
            break
    return out


def test_windows_have_the_right_shape_and_timestamps(daemon):
    with Client(daemon.socket_path, streams=["frame"], fields=["logmel"]) as c:
        w = LogMelWindows(window=50, hop=25)
        got = collect_windows(c, w, 3)
        hello = c.hello
    assert hello is not None and hello.n_mels == 64 and hello.hop == 480
    assert len(got) == 3
    for win in got:
        assert win.data.shape == (50, 64) and win.data.dtype == np.float32
        assert np.isfinite(win.data).all() and (win.data <= 100).all()
        assert (np.diff(win.seq) == 1).all()
        # t is the capture time of each frame's first sample (from the capture clock, so with the jitter of
        # the 20 ms reads): increasing, about hop / sample_rate apart, spanning (window - 1) hops.
        d = np.diff(win.t)
        assert (d > 0).all() and np.allclose(d, 0.01, atol=4e-3) and abs(np.median(d) - 0.01) < 5e-4, d
        assert abs((win.t[-1] - win.t[0]) - 49 * 0.01) < 0.02
        assert abs(win.t_end - (win.t[-1] + 1024 / 48000)) < 1e-9
        assert abs(win.t[-1] - time.time()) < 5
    # hop 25: each window starts 25 frames after the previous one.
    assert got[1].seq_first == got[0].seq_first + 25 and got[2].seq_first == got[1].seq_first + 25
    # the overlapping rows are the same frames with the same values
    assert np.array_equal(got[0].data[25:], got[1].data[:25])


def test_forced_discontinuity_resets_the_window(daemon):
    with Client(daemon.socket_path, streams=["frame", "status"], fields=["logmel"]) as c:
        w = LogMelWindows(window=30, hop=30)
        got = collect_windows(c, w, 2)
        assert len(got) == 2
        # A re-plan (analysis.fmin changed): the next frame carries discontinuity/cause=reload.
        daemon.reload("analysis:\n  fmin: 50\n")
        reload_seq = None
        statuses = []
        after = []
        deadline = time.monotonic() + 20
        for msg in c.messages(timeout=20):
            if isinstance(msg, Status):
                statuses.append(msg)
            if isinstance(msg, Frame) and msg.discontinuity and reload_seq is None:
                assert msg.cause == "reload"
                reload_seq = msg.seq
            ws = w.push(msg)
            if reload_seq is not None:
                after.extend(ws)
            if len(after) >= 1 or time.monotonic() > deadline:
                break
    assert reload_seq is not None, daemon.stderr
    assert any(s.event == "reload" and s.details.get("plan") == "replan" for s in statuses), statuses
    assert w.resets["discontinuity"] + w.resets["hello"] >= 1, w.resets
    # The first window after the reload holds only frames from after it.
    assert after and after[0].seq_first >= reload_seq, (after[0].seq_first, reload_seq)
    assert (np.diff(after[0].seq) == 1).all()


def test_a_daemon_restart_is_survived(daemon):
    events = []
    with Client(daemon.socket_path, streams=["frame", "rolling"], fields=["logmel"], backoff_initial=0.05,
                backoff_max=0.5) as c:
        w = LogMelWindows(window=20, hop=20)
        before = collect_windows(c, w, 2)
        assert len(before) == 2
        assert daemon.stop() == 0
        time.sleep(1.0)
        daemon.start()
        after = collect_windows(c, w, 2, timeout=30, on_message=events.append)
        assert c.connections == 2
    kinds = [type(m) for m in events]
    assert Disconnected in kinds and Reconnected in kinds, kinds[:10]
    i = kinds.index(Disconnected)
    assert Hello in kinds[i:] and kinds.index(Reconnected) > kinds.index(Hello, i)
    assert any(isinstance(m, Subscribed) for m in events[i:]), "re-subscribed after the reconnect"
    assert w.resets["disconnect"] >= 1
    assert len(after) == 2 and after[0].data.shape == (20, 64)
    assert after[0].seq_first > before[-1].seq_last or after[0].t_start > before[-1].t_start


def test_client_outage_is_resumed_from_the_rolling_backfill(daemon):
    with Client(daemon.socket_path, streams=["rolling"], backoff_initial=0.05) as c:
        rolling = []
        for msg in c.messages(timeout=10):
            if isinstance(msg, Rolling):
                rolling.append(msg)
                if len(rolling) == 2:
                    break
        c.disconnect()
        time.sleep(2.6)  # away for more than two 1 s windows
        for msg in c.messages(timeout=10):
            if isinstance(msg, Rolling):
                rolling.append(msg)
                if rolling[-1].t_end - rolling[1].t_end >= 4:
                    break
    ends = [r.t_end for r in rolling]
    starts = [r.t for r in rolling]
    # Back to back, no window missing or repeated across the outage.
    assert ends == sorted(set(ends)), ends
    assert all(abs(s - e) < 1e-6 for s, e in zip(starts[1:], ends[:-1])), list(zip(starts, ends))
