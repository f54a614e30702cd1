"""How long a protocol-2 host waits after each request, from its end of frame (us).

``firmware/protocol/PROTOCOL.md``, "Timing": the host's side of it, in one place for the
client (:class:`~.client.Bus`, which waits so) and the emulated wire
(:class:`~.onwire.V2Wire`, which takes a host in another process to wait so).

- A unicast reply starts after the turnaround and within the reply latency and the
  command's quiet time (:func:`~.slots.unicast_reply_window_us`); the host listens until
  the latest start and the longest reply with its driver hold. Once the reply has come the
  host goes on, except after ``reset`` and ``fw_swap``, which restart the board once they
  have answered: their whole window is waited.
- A slotted broadcast is heard until :func:`~.slots.listen_us`; ``discover`` until its last
  hashed slot; ``assign_address`` (selected) as a unicast; a silent broadcast is followed by
  its quiet time (:func:`~.payloads.quiet_ms`).
- Protocol 1's identify probe: :func:`~.slots.v1_probe_timeout_us`.
"""

from __future__ import annotations

from .. import timing
from .constants import (
    BROADCAST_HASHED, BROADCAST_SELECTED, BROADCAST_SILENT, BROADCAST_SLOTTED, DISCOVER_SLOTS_MAX,
)
from .payloads import command_spec, quiet_ms
from .slots import listen_us, unicast_reply_window_us, v1_probe_timeout_us

__all__ = ["RESTARTS", "quiet_us", "unicast_window_us", "broadcast_window_us", "probe_window_us"]

#: Commands after which a board restarts once it has answered.
RESTARTS = frozenset({"reset", "fw_swap"})


def quiet_us(command: str, **fields) -> int:
    """The command's quiet time (us; 0 for a command that does not block)."""
    return 1000 * quiet_ms(command, **fields) if command_spec(command).blocks else 0


def unicast_window_us(command: str, baud: int, **fields) -> int:
    """How long after a unicast request's end of frame its reply may still be arriving (us)."""
    spec = command_spec(command)
    q = quiet_ms(spec.name, **fields) if spec.blocks else 0
    reply = timing.wire_bytes(spec.reply_size) * timing.char_us(baud) + timing.DE_HOLD_US
    return unicast_reply_window_us(spec.name, baud, q).latest_us + reply


def broadcast_window_us(command: str, baud: int, **fields) -> int:
    """How long the host waits after a broadcast's end of frame (us): a slotted one's last
    slot, ``discover``'s last hashed slot (``slots`` 1..247; 0 for any other, which no
    board answers), a selected one as a unicast, a silent one's quiet time."""
    spec = command_spec(command)
    if spec.broadcast == BROADCAST_SLOTTED:
        return listen_us(spec.name, baud)
    if spec.broadcast == BROADCAST_HASHED:
        slots = int(fields.get("slots", 0))
        return listen_us(spec.name, baud, slots) if 1 <= slots <= DISCOVER_SLOTS_MAX else 0
    if spec.broadcast == BROADCAST_SELECTED:
        return unicast_window_us(spec.name, baud, **fields)
    if spec.broadcast == BROADCAST_SILENT:
        return quiet_us(spec.name, **fields)
    return 0


def probe_window_us(baud: int) -> int:
    """How long the host waits for the reply to protocol 1's identify probe (us)."""
    return v1_probe_timeout_us(baud)
