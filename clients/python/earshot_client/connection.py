"""A connection to the Earshot daemon's Unix socket with reconnect and resume.

    from earshot_client import Client
    with Client("/run/earshot/earshot.sock", streams=["frame", "rolling"], fields=["laf", "logmel"]) as c:
        for msg in c.messages():
            ...

`messages()` yields typed messages (earshot_client.messages). When the daemon goes away (restart, crash,
socket closed) it yields `Disconnected`, reconnects with exponential backoff (`backoff_initial` doubling up
to `backoff_max`, with jitter), reads the new `hello`, subscribes again with the same streams/every/fields,
and yields the new `Hello` and then `Reconnected`. With `rolling` subscribed, the re-subscription asks for
the daemon's rolling backfill covering the time the client was away (at most `hello.limits.backfill_s`),
and rolling lines it already delivered are skipped: a short client-side outage loses no rolling window.
Frames and onsets lost meanwhile are not replayed by the daemon (there is no frame backfill); windows
restart (see earshot_client.windows).
"""
from __future__ import annotations

import errno
import json
import random
import socket
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence

from .messages import (Disconnected, Error, Hello, Message, MessageFormatError, GenericMessage, Reconnected, Rolling,
                       parse_message, ping_command, subscribe_command, unsubscribe_command)

DEFAULT_SOCKET = "/run/earshot/earshot.sock"


class ConnectionFailed(OSError):
    """The daemon could not be reached (and reconnecting is off, or `give_up_after_s` passed)."""


class Client:
    def __init__(self, socket_path: str = DEFAULT_SOCKET, streams: Sequence[str] = ("frame",),
                 every: Optional[int] = None, fields: Optional[Sequence[str]] = None,
                 backfill_s: Optional[float] = None, reconnect: bool = True, backoff_initial: float = 0.1,
                 backoff_max: float = 5.0, give_up_after_s: Optional[float] = None, connect_timeout: float = 5.0,
                 max_line_bytes: int = 64 << 20):
        # Validates the arguments once, before any connection.
        subscribe_command(streams, every=every, fields=fields, backfill_s=backfill_s)
        self.socket_path = socket_path
        self.streams: List[str] = [streams] if isinstance(streams, str) else list(streams)
        self.every = every
        self.fields = list(fields) if fields is not None else None
        self.backfill_s = backfill_s
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.give_up_after_s = give_up_after_s
        self.connect_timeout = connect_timeout
        self.max_line_bytes = max_line_bytes
        self.hello: Optional[Hello] = None
        self.connections = 0
        self._sock: Optional[socket.socket] = None
        self._buf = bytearray()
        self._pending: List[Message] = []
        # Resume state: the end of the newest rolling window delivered per window length, and when the
        # connection was lost.
        self._rolling_seen: Dict[float, float] = {}
        self._lost_at: Optional[float] = None

    # -- connection -------------------------------------------------------------------------------------

    def connect(self) -> Hello:
        """Connects (once, no retry), reads `hello` and subscribes. Raises ConnectionFailed."""
        self.close()
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.connect_timeout)
        try:
            s.connect(self.socket_path)
        except OSError as e:
            s.close()
            raise ConnectionFailed(e.errno or errno.ECONNREFUSED,
                                   f"cannot connect to {self.socket_path}: {e.strerror or e} (is the daemon running?)") from None
        self._sock = s
        self._buf = bytearray()
        try:
            first = self._read_message(deadline=time.monotonic() + self.connect_timeout)
        except (OSError, EOFError) as e:
            self.close()
            raise ConnectionFailed(errno.ECONNRESET, f"no hello from {self.socket_path}: {e}") from None
        if isinstance(first, Error):
            self.close()
            raise ConnectionFailed(errno.ECONNREFUSED, f"refused by the daemon: {first.code}: {first.message}")
        if not isinstance(first, Hello):
            self.close()
            raise ConnectionFailed(errno.EPROTO, f"expected hello, got {first.type!r}")
        if first.protocol != 1:
            self.close()
            raise ConnectionFailed(errno.EPROTO, f"unsupported protocol {first.protocol}")
        self.hello = first
        self.connections += 1
        self._send(subscribe_command(self.streams, every=self.every, fields=self.fields,
                                     backfill_s=self._resume_backfill(first), id="earshot-client"))
        s.settimeout(None)
        return first

    def _resume_backfill(self, hello: Hello) -> Optional[float]:
        if "rolling" not in self.streams:
            return None
        wanted = self.backfill_s
        if self._lost_at is not None and self._rolling_seen:
            # Cover the outage (plus the longest window: a window that ended while we were away started
            # before), capped by what the daemon keeps.
            away = time.time() - min(self._rolling_seen.values()) + max(self._rolling_seen)
            wanted = max(wanted or 0.0, away)
        if wanted is None:
            return None
        cap = hello.limits.get("backfill_s")
        if isinstance(cap, (int, float)):
            wanted = min(wanted, float(cap))
        return round(max(wanted, 0.0), 3)

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            finally:
                self._sock = None

    def disconnect(self) -> None:
        """Drops the current connection (as a network failure would); `messages()` then reconnects."""
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # -- commands ---------------------------------------------------------------------------------------

    def ping(self, id: Any = None) -> None:
        self._send(ping_command(id))

    def subscribe(self, streams: Sequence[str], every: Optional[int] = None, fields: Optional[Sequence[str]] = None,
                  backfill_s: Optional[float] = None, id: Any = None) -> None:
        """Adds streams (also after a reconnect); the reply arrives as `Subscribed` or `Error`."""
        self._send(subscribe_command(streams, every=every, fields=fields, backfill_s=backfill_s, id=id))
        for s in ([streams] if isinstance(streams, str) else streams):
            if s not in self.streams:
                self.streams.append(s)
        if every is not None:
            self.every = every
        if fields is not None:
            self.fields = list(fields)

    def unsubscribe(self, streams: Sequence[str], id: Any = None) -> None:
        self._send(unsubscribe_command(streams, id))
        gone = [streams] if isinstance(streams, str) else list(streams)
        self.streams = [s for s in self.streams if s not in gone]

    def _send(self, line: bytes) -> None:
        if self._sock is None:
            raise ConnectionFailed(errno.ENOTCONN, "not connected")
        self._sock.sendall(line)

    # -- reading ----------------------------------------------------------------------------------------

    def _read_message(self, deadline: Optional[float] = None) -> Message:
        """The next message; EOFError at the end of the stream, socket.timeout at `deadline`."""
        assert self._sock is not None
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                line = bytes(self._buf[:nl])
                del self._buf[:nl + 1]
                if not line.strip():
                    continue
                try:
                    return parse_message(json.loads(line))
                except (ValueError, MessageFormatError) as e:
                    # A line this client cannot read is passed on, never fatal.
                    g = GenericMessage(raw={"type": "invalid", "line": line[:1000].decode("utf-8", "replace"),
                                            "problem": str(e)})
                    return g
            if len(self._buf) > self.max_line_bytes:
                raise EOFError(f"line longer than {self.max_line_bytes} bytes")
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise socket.timeout("timed out")
                self._sock.settimeout(left)
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                raise EOFError("the daemon closed the connection")
            self._buf += chunk

    def messages(self, timeout: Optional[float] = None) -> Iterator[Message]:
        """Yields messages until `timeout` seconds without one (None: forever), reconnecting as described
        in the module documentation. Connects first if needed."""
        if self._sock is None:
            if self.hello is None and self._lost_at is None:
                try:
                    yield self.connect()
                except ConnectionFailed:
                    if not self.reconnect:
                        raise
                    self._lost_at = time.time()
                    yield Disconnected(raw={"type": "disconnected"}, reason="daemon not reachable")
                    yield from self._reconnect()
            else:
                yield from self._reconnect()
        while True:
            try:
                msg = self._read_message(None if timeout is None else time.monotonic() + timeout)
            except socket.timeout:
                return
            except (EOFError, OSError) as e:
                self.close()
                self._lost_at = time.time()
                yield Disconnected(raw={"type": "disconnected"}, reason=str(e))
                if not self.reconnect:
                    return
                yield from self._reconnect()
                continue
            if isinstance(msg, Hello):
                self.hello = msg
            elif isinstance(msg, Rolling):
                key = msg.window_s
                if self._rolling_seen.get(key, float("-inf")) >= msg.t_end:
                    continue  # a backfilled line already delivered before the reconnect
                self._rolling_seen[key] = msg.t_end
            yield msg

    def _reconnect(self) -> Iterator[Message]:
        started = time.monotonic()
        delay = self.backoff_initial
        attempts = 0
        while True:
            attempts += 1
            try:
                hello = self.connect()
            except ConnectionFailed as e:
                if self.give_up_after_s is not None and time.monotonic() - started > self.give_up_after_s:
                    raise ConnectionFailed(e.errno, f"gave up after {attempts} attempts: {e}") from None
                time.sleep(delay * random.uniform(0.8, 1.2))
                delay = min(delay * 2, self.backoff_max)
                continue
            down = time.time() - (self._lost_at or time.time())
            self._lost_at = None
            yield hello
            yield Reconnected(raw={"type": "reconnected"}, down_s=down, attempts=attempts)
            return
