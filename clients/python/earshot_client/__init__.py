"""Python client for the Earshot audio analyzer's socket protocol (version 1).

- `earshot_client.messages`: typed messages (`Hello`, `Frame`, `Onset`, `Rolling`, `Alert`, `Status`, `Stats`,
  `Subscribed`, `Unsubscribed`, `Pong`, `Dropped`, `Error`, `Health`; `GenericMessage` for types this client does not
  know) and the command builders.
- `earshot_client.connection`: `Client`, a connection that reconnects with backoff and resumes its
  subscription (rolling backfill over the outage).
- `earshot_client.windows`: `LogMelWindows`, gap-aware sliding windows as numpy arrays with timestamps.
- `earshot_client.schema_path()`: the JSON Schema of every server message (`schema/protocol-v1.json`).
"""
from pathlib import Path

from .connection import DEFAULT_SOCKET, Client, ConnectionFailed
from .messages import (MESSAGE_TYPES, Alert, Disconnected, Dropped, Error, Frame, GenericMessage, Health, Hello, Message,
                       MessageFormatError, Onset, Pong, Reconnected, Rolling, Stats, Status, Subscribed, Unsubscribed,
                       parse_line, parse_message, ping_command, subscribe_command, unsubscribe_command)

__version__ = "0.1.0"


def schema_path() -> Path:
    """Path of the JSON Schema (draft 2020-12) of every server message."""
    return Path(__file__).with_name("schema") / "protocol-v1.json"


def __getattr__(name):
    # numpy is only needed for the windows: import it on first use.
    if name in ("LogMelWindows", "FrameWindows", "Window"):
        from . import windows
        return getattr(windows, name)
    raise AttributeError(name)


__all__ = [
    "Client", "ConnectionFailed", "DEFAULT_SOCKET", "LogMelWindows", "FrameWindows", "Window", "Message", "Hello",
    "Frame", "Health", "Onset", "Rolling", "Alert", "Status", "Stats", "Subscribed", "Unsubscribed", "Pong", "Dropped", "Error",
    "GenericMessage", "Disconnected", "Reconnected", "MessageFormatError", "MESSAGE_TYPES", "parse_line",
    "parse_message", "subscribe_command", "unsubscribe_command", "ping_command", "schema_path",
]
