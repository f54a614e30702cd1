"""When a board may drive the RS-485 bus: the reply timing of protocol 1 and protocol 2.

All times are integer microseconds, computed identically by the host, the emulator and the
firmware (PROTOCOL.md, "Timing"); a character is 10 bits on the wire (8N1: start, 8 data,
stop). The anchors:

- Modbus over Serial Line, Specification and Implementation Guide V1.02 (modbus.org, 2006),
  section 2.5.1.1: frames are separated by a silent interval of at least 3.5 character times;
  a reply may begin only after it. Protocol 2 takes four character times, and never less than
  :data:`TURNAROUND_MIN_US`, because a board's transceiver keeps its driver enabled after its
  last stop bit (:data:`DE_HOLD_US`) and the host's USB adapter turns its own driver off only
  after its last stop bit has left.
- A board's clock is a crystal (RP2040 datasheet section 2.16, XOSC, with the Pico's 12 MHz
  crystal; ESP32 datasheet section 3.1, 40 MHz crystal), within :data:`CLOCK_TOLERANCE_PPM`
  over temperature and ageing. Two boards timing their slots from the same end of frame drift
  apart by up to twice that times the slot's offset, so the slot grows by that much for the
  last address.
- The end of the request is stamped in the receive interrupt (RP2040 UART receive timeout
  interrupt, datasheet section 4.2.6, or the delimiter byte's interrupt), within
  :data:`EOF_JITTER_US` of the delimiter's stop bit.

Protocol 1 (``PROTOCOL-1.md``, version 1.1) gave every board a 2 ms slot after its main loop
noticed the end of the request; at 115200 baud an identify reply (a 15-byte payload: status
and 14 bytes) is ``wire_bytes(15)`` = 24 bytes on the wire (about 2.08 ms) plus the
driver-enable hold, longer than the slot before the loop's 0 to 1 ms lateness adds to it, so
neighbouring replies overlap: :func:`v1_reply_window_us` gives that timing for the emulator
to show the collisions (without the crystal's drift, which protocol 1 did not budget either;
the emulator's boards drift all the same).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Bits per character on the wire (8N1).
BITS_PER_CHAR = 10
#: Board clock tolerance (ppm), a crystal over temperature and ageing.
CLOCK_TOLERANCE_PPM = 100
#: How long a board's transceiver keeps its driver enabled after the last stop bit (us).
DE_HOLD_US = 100
#: Latest end-of-frame timestamp after the delimiter's stop bit (us).
EOF_JITTER_US = 50
#: Shortest silence before any reply (us).
TURNAROUND_MIN_US = 250
#: Character times of silence before any reply.
TURNAROUND_CHARS = 4
#: Highest board address: slots are sized so that all of them fit, whatever answers.
ADDRESSES = 247
#: Protocol 1's slot (us) and its main loop's latest notice of a request's end (us).
V1_SLOT_US = 2000
V1_LOOP_LATENCY_US = 1000


def char_us(baud: int) -> int:
    """One character's time on the wire at ``baud`` (us, rounded up)."""
    if not isinstance(baud, int) or baud <= 0:
        raise ValueError(f"baud must be a positive integer, got {baud!r}")
    return -(-BITS_PER_CHAR * 1_000_000 // baud)


def wire_bytes(payload_len: int) -> int:
    """Bytes on the wire of a reply with ``payload_len`` payload bytes: the 5-byte header, the
    payload and the 2-byte CRC, COBS-encoded (one overhead byte per 254), and the delimiter."""
    if not 0 <= payload_len <= 254 - 7:
        raise ValueError(f"payload length must be 0..247 bytes, got {payload_len}")
    return 5 + payload_len + 2 + 1 + 1


def turnaround_us(baud: int) -> int:
    """Protocol 2's silence before any reply, unicast or slotted (us)."""
    return max(TURNAROUND_CHARS * char_us(baud), TURNAROUND_MIN_US)


def slot_us(baud: int, longest_reply_payload: int) -> int:
    """Protocol 2's broadcast slot (us): the longest slotted reply on the wire, the driver-enable
    hold, the end-of-frame jitter, and the clock drift between neighbours at the last address.

    With ``base`` the first three, the slot ``s`` satisfies
    ``s >= base + 2 * tol * (turnaround + ADDRESSES * s)``, so
    ``s = ceil((base * 1e6 + 2 * tol_ppm * turnaround) / (1e6 - 2 * tol_ppm * ADDRESSES))``.
    """
    base = wire_bytes(longest_reply_payload) * char_us(baud) + DE_HOLD_US + EOF_JITTER_US
    num = base * 1_000_000 + 2 * CLOCK_TOLERANCE_PPM * turnaround_us(baud)
    den = 1_000_000 - 2 * CLOCK_TOLERANCE_PPM * ADDRESSES
    return -(-num // den)


def reply_start_us(address: int, baud: int, longest_reply_payload: int) -> int:
    """When board ``address`` starts its slotted reply, after the request's end of frame (us)."""
    if not 1 <= address <= ADDRESSES:
        raise ValueError(f"address must be 1..{ADDRESSES}, got {address}")
    return turnaround_us(baud) + (address - 1) * slot_us(baud, longest_reply_payload)


def broadcast_listen_us(baud: int, longest_reply_payload: int) -> int:
    """How long the host listens after a slotted broadcast's end of frame: every slot, with
    the last board's drift (us)."""
    last = reply_start_us(ADDRESSES, baud, longest_reply_payload)
    return last + slot_us(baud, longest_reply_payload)


@dataclass(frozen=True)
class ReplyWindow:
    """When a reply may start after the request's end of frame (us): earliest and latest, from
    the board's timestamp jitter, its loop latency and its clock drift."""

    earliest_us: int
    latest_us: int


def v1_reply_window_us(address: int) -> ReplyWindow:
    """Protocol 1's slotted reply window: ``address`` slots of 2 ms from whenever the main loop
    noticed the end of the request (0 to :data:`V1_LOOP_LATENCY_US` late)."""
    start = address * V1_SLOT_US
    return ReplyWindow(start, start + V1_LOOP_LATENCY_US)


def v2_reply_window_us(address: int, baud: int, longest_reply_payload: int) -> ReplyWindow:
    """Protocol 2's slotted reply window: the nominal start, early or late by the clock drift
    over the offset and late by the end-of-frame jitter."""
    nominal = reply_start_us(address, baud, longest_reply_payload)
    drift = -(-nominal * CLOCK_TOLERANCE_PPM // 1_000_000)
    return ReplyWindow(nominal - drift, nominal + drift + EOF_JITTER_US)
