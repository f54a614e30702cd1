# twinrig edge board: the bus frame codec and timing of protocol version 2.
#
# Frames (version 2, payloads 0..247 bytes, CRC-16/CCITT-FALSE, COBS), the receive
# checks in the spec's order with its error codes, a bounded stream splitter that
# also says where each frame ended in the data it was given, the command table,
# CRC-32, the reply timing (turnaround, slots) and discover's hash. Follows
# firmware/protocol/PROTOCOL.md (protocol 2.1) and protocol-2.json; checked against
# the golden vectors firmware/protocol/vectors/v2. The CRC-16 and COBS coder are
# protocol 1's (tr_protocol). Runs unchanged on MicroPython and CPython.
#
# No exceptions on the receive path: decode returns (error_code, raw).

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

try:
    from binascii import crc32 as _crc32
except ImportError:  # pragma: no cover
    from zlib import crc32 as _crc32

import tr_protocol as P1

PROTOCOL_VERSION = const(2)
PROTOCOL_MINOR = const(1)   # 2.1: the actuator calibration (PROTOCOL.md "Versioning")
V1_VERSION = const(1)
HEADER_SIZE = const(5)
CRC_SIZE = const(2)
MAX_PAYLOAD = const(247)
MIN_FRAME_SIZE = const(7)
MAX_FRAME_SIZE = const(254)
REPLY_BIT = const(0x80)

ADDR_HOST = const(0)
ADDR_BOARD_MIN = const(1)
ADDR_BOARD_MAX = const(247)
ADDR_UNASSIGNED = const(248)
ADDR_BROADCAST = const(255)

OK = const(0)
BAD_COBS = const(1)
BAD_CRC = const(2)
TOO_SHORT = const(3)
TOO_LONG = const(4)
BAD_VERSION = const(5)
UNKNOWN_COMMAND = const(6)
BAD_LENGTH = const(7)
OUT_OF_RANGE = const(8)
WRONG_KIND = const(9)
BROADCAST_REFUSED = const(10)
STORAGE = const(11)
FW_SEQUENCE = const(12)
FW_INCOMPLETE = const(13)
FW_IMAGE_CRC = const(14)
BAD_BLOCK_CRC = const(15)
ERROR_NAMES = ("ok", "bad_cobs", "bad_crc", "too_short", "too_long", "bad_version",
               "unknown_command", "bad_length", "out_of_range", "wrong_kind",
               "broadcast_refused", "storage", "fw_sequence", "fw_incomplete",
               "fw_image_crc", "bad_block_crc")

# Broadcast handling.
BC_SLOTTED = const(1)
BC_HASHED = const(2)
BC_SELECTED = const(3)
BC_SILENT = const(4)
BC_REFUSED = const(5)

# code: (name, request format, reply format (status first), broadcast handling)
COMMANDS = {
    1: ("identify", "<", "<B8sBBBBBBBB", BC_SLOTTED),
    2: ("read_state", "<", "<BiiI", BC_SLOTTED),
    3: ("set_state", "<i", "<Bii", BC_SILENT),
    4: ("configure_rule", "<BIqq", "<B", BC_SILENT),
    5: ("sample_drops", "<", "<Bii", BC_REFUSED),
    6: ("learn", "<", "<BiiB", BC_SILENT),
    7: ("read_telemetry", "<", "<BIIIIIIBBBIiI", BC_SLOTTED),
    8: ("store_calibration", "<iiii", "<B", BC_REFUSED),
    9: ("read_calibration", "<", "<Biiii", BC_REFUSED),
    10: ("reset", "<B", "<B", BC_SILENT),
    11: ("store_state", "<", "<BI", BC_SILENT),
    12: ("read_actuator", "<", "<Biiii", BC_REFUSED),
    13: ("discover", "<IBB", "<B8sBBBBBBBB", BC_HASHED),
    14: ("assign_address", "<8sB", "<B", BC_SELECTED),
    15: ("fw_begin", "<IIBBB", "<BH", BC_SILENT),
    16: ("fw_block", "<IHI128s", "<B", BC_SILENT),
    17: ("fw_status", "<", "<BBBBBHH8H", BC_SLOTTED),
    18: ("fw_verify", "<", "<BB", BC_SILENT),
    19: ("fw_swap", "<", "<B", BC_SILENT),
    # protocol 2.1, "Actuator calibration": source u8, charge_gate_uv i32[5],
    # charge_nv_per_us i32[5], discharge_gate_uv i32[5], discharge_nv_per_us i32[5],
    # leak_uv_per_s i32
    20: ("calibrate_actuator", "<", "<BB21i", BC_SILENT),
    21: ("read_actuator_calibration", "<", "<BB21i", BC_REFUSED),
}
# Request payload sizes and the ok reply's payload size (the slot's reply).
REQUEST_SIZES = {1: 0, 2: 0, 3: 4, 4: 21, 5: 0, 6: 0, 7: 0, 8: 16, 9: 0, 10: 1, 11: 0,
                 12: 0, 13: 6, 14: 9, 15: 11, 16: 138, 17: 0, 18: 0, 19: 0, 20: 0, 21: 0}
REPLY_SIZES = {1: 17, 2: 13, 3: 9, 4: 1, 5: 9, 6: 10, 7: 40, 8: 1, 9: 17, 10: 1, 11: 5,
               12: 17, 13: 17, 14: 1, 15: 3, 16: 1, 17: 25, 18: 2, 19: 1, 20: 86, 21: 86}
CMD_CODES = {}
for _c in COMMANDS:
    CMD_CODES[COMMANDS[_c][0]] = _c

# Flash and update figures (PROTOCOL.md "Timing" and "Firmware update").
BLOCK_SIZE = const(128)
IMAGE_MAX_BYTES = 983040
SECTOR_BYTES = const(4096)
SECTOR_ERASE_MAX_MS = const(400)
PAGE_PROGRAM_MAX_MS = const(3)
STORE_WRITE_MS = const(403)
BOOT_MAX_MS = const(1000)
IMAGE_CRC_MAX_MS = const(1000)
BLOCK_CHECK_MAX_MS = const(1)
# Protocol 2.1 ("Actuator calibration"): the longest calibrate_actuator measurement
# before its record (a requirement on the firmware), the points per direction, and
# the shortest hold over which the leak is measured.
ACTUATOR_CAL_MAX_MS = const(3000)
GATE_CAL_POINTS = const(5)
GATE_LEAK_HOLD_MS = const(1000)
TRIGGER_MIN_US = const(20)
DISCOVER_SLOTS_MAX = const(247)

# Timing constants (instruments/bus/timing.py, normative).
BITS_PER_CHAR = const(10)
CLOCK_TOLERANCE_PPM = const(100)
DE_HOLD_US = const(100)
EOF_JITTER_US = const(50)
TURNAROUND_MIN_US = const(250)
TURNAROUND_CHARS = const(4)
ADDRESSES = const(247)
V1_SLOT_US = const(2000)
V1_LOOP_LATENCY_US = const(1000)
REPLY_LATENCY_MAX_US = const(2000)

M32 = 0xFFFFFFFF

# ---------------------------------------------------------------- CRCs


def crc16(data):
    return P1.crc16(data)


def crc32(data, crc=0):
    """CRC-32/ISO-HDLC (zlib's), continued from ``crc``."""
    return _crc32(data, crc) & M32


# ---------------------------------------------------------------- frames


def frame_bytes(dst, src, seq, cmd, payload=b"", version=PROTOCOL_VERSION):
    return P1.frame_bytes(dst, src, seq, cmd, payload, version)


def encode_frame(dst, src, seq, cmd, payload=b"", version=PROTOCOL_VERSION):
    """Wire bytes: COBS of header + payload + CRC, then one 0x00."""
    return P1.cobs_encode(P1.frame_bytes(dst, src, seq, cmd, payload, version)) + b"\x00"


def decode_any(chunk):
    """Every receive check but the version's, in the spec's order (bad_cobs,
    too_short, too_long, bad_crc); one trailing 0x00 is dropped. Returns (OK, raw)
    or (error, None)."""
    if isinstance(chunk, memoryview):
        chunk = bytes(chunk)
    n = len(chunk)
    if n and chunk[n - 1] == 0:
        chunk = chunk[:n - 1]
    err, raw = P1.cobs_decode(chunk)
    if err:
        return err, None
    n = len(raw)
    if n < MIN_FRAME_SIZE:
        return TOO_SHORT, None
    if n > MAX_FRAME_SIZE:
        return TOO_LONG, None
    if P1.crc16(raw[:n - 2]) != ((raw[n - 2] << 8) | raw[n - 1]):
        return BAD_CRC, None
    return OK, raw


def decode_frame(chunk):
    """decode_any, then bad_version unless the version byte is 2 (a host's view)."""
    err, raw = decode_any(chunk)
    if not err and raw[0] != PROTOCOL_VERSION:
        return BAD_VERSION, None
    return err, raw


def payload_of(raw):
    return raw[HEADER_SIZE:len(raw) - CRC_SIZE]


class Splitter:
    """Stream receiver with bounded memory: ``feed(data)`` returns, for every chunk a
    0x00 completed, (error, raw, end) with ``end`` the index in ``data`` just past
    that 0x00 (so the caller can date the end of frame); empty chunks are skipped.
    A chunk longer than ``max_chunk`` is only walked code byte by code byte: bad_cobs
    if a code byte points past its end, else too_long (it decodes to more than 254
    bytes)."""

    def __init__(self, max_chunk=256):
        if max_chunk < MAX_FRAME_SIZE + 2:
            max_chunk = MAX_FRAME_SIZE + 2
        self.max_chunk = max_chunk
        self.reset()

    def reset(self):
        self.buf = bytearray()
        self.overflow = False
        self.length = 0
        self.next_code = 0

    def pending(self):
        return self.length if self.overflow else len(self.buf)

    def _append(self, data, start, end):
        if start >= end:
            return
        if not self.overflow:
            if len(self.buf) + end - start <= self.max_chunk:
                self.buf.extend(data[start:end])
                return
            old = self.buf
            self.buf = bytearray()
            self.overflow = True
            self._walk(old, 0, len(old))
        self._walk(data, start, end)

    def _walk(self, data, start, end):
        base = self.length - start
        self.length += end - start
        nc = self.next_code
        while nc < self.length:
            nc += data[nc - base]
        self.next_code = nc

    def feed(self, data):
        out = []
        n = len(data)
        start = 0
        while start <= n:
            end = data.find(b"\x00", start) if hasattr(data, "find") else P1._find0(data, start)
            if end < 0:
                self._append(data, start, n)
                return out
            self._append(data, start, end)
            start = end + 1
            if self.overflow:
                out.append((BAD_COBS if self.next_code != self.length else TOO_LONG, None, start))
            elif self.buf:
                err, raw = decode_any(self.buf)
                out.append((err, raw, start))
            self.reset()
        return out


# ---------------------------------------------------------------- timing


def char_us(baud):
    return -(-BITS_PER_CHAR * 1000000 // baud)


def wire_bytes(payload_len):
    return payload_len + 9


def turnaround_us(baud):
    t = TURNAROUND_CHARS * char_us(baud)
    return t if t > TURNAROUND_MIN_US else TURNAROUND_MIN_US


def slot_us(baud, reply_payload):
    base = wire_bytes(reply_payload) * char_us(baud) + DE_HOLD_US + EOF_JITTER_US
    num = base * 1000000 + 2 * CLOCK_TOLERANCE_PPM * turnaround_us(baud)
    den = 1000000 - 2 * CLOCK_TOLERANCE_PPM * ADDRESSES
    return -(-num // den)


def reply_start_us(cmd, slot, baud):
    """Start of the reply of slotted or hashed command ``cmd`` in ``slot`` after the
    request's end of frame (us)."""
    return turnaround_us(baud) + (slot - 1) * slot_us(baud, REPLY_SIZES[cmd])


def listen_us(cmd, baud, slots=ADDRESSES):
    """How long a host listens after a slotted broadcast (the last slot's latest start
    and the slot)."""
    nominal = reply_start_us(cmd, slots, baud)
    drift = -(-nominal * CLOCK_TOLERANCE_PPM // 1000000)
    return nominal + drift + EOF_JITTER_US + slot_us(baud, REPLY_SIZES[cmd])


def v1_probe_timeout_us(baud):
    return V1_LOOP_LATENCY_US + wire_bytes(15) * char_us(baud) + DE_HOLD_US + EOF_JITTER_US


def quiet_ms(cmd, mode=0, size=0):
    """How long a host keeps the bus quiet after ``cmd`` (ms): ``mode`` is reset's,
    ``size`` fw_begin's."""
    name = COMMANDS[cmd][0]
    if name in ("store_calibration", "store_state", "assign_address"):
        return STORE_WRITE_MS
    if name == "reset":
        return BOOT_MAX_MS if mode == 0 else 2 * SECTOR_ERASE_MAX_MS + BOOT_MAX_MS
    if name == "fw_begin":
        if size > IMAGE_MAX_BYTES:
            size = IMAGE_MAX_BYTES
        return SECTOR_ERASE_MAX_MS * (-(-size // SECTOR_BYTES))
    if name == "fw_block":
        return BLOCK_CHECK_MAX_MS + PAGE_PROGRAM_MAX_MS
    if name == "fw_verify":
        return IMAGE_CRC_MAX_MS
    if name == "fw_swap":
        return STORE_WRITE_MS + 2 * BOOT_MAX_MS
    if name == "calibrate_actuator":
        return ACTUATOR_CAL_MAX_MS + STORE_WRITE_MS
    return 0


# ---------------------------------------------------------------- discover's hash


def fmix32(h):
    """MurmurHash3's 32-bit finaliser."""
    h &= M32
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & M32
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & M32
    h ^= h >> 16
    return h


def discover_hash(uid, salt):
    w0 = uid[0] | (uid[1] << 8) | (uid[2] << 16) | (uid[3] << 24)
    w1 = uid[4] | (uid[5] << 8) | (uid[6] << 16) | (uid[7] << 24)
    return fmix32(fmix32(fmix32(salt) ^ w0) ^ w1)


def discover_slot(uid, salt, slots):
    return 1 + discover_hash(uid, salt) % slots
