# twinrig edge board: the bus frame codec (protocol version 1).
#
# CRC-16/CCITT-FALSE, COBS, frame checks in the spec's order with its error codes,
# a bounded stream splitter and the command table. Follows
# firmware/protocol/PROTOCOL.md and protocol.json; checked against the golden
# vectors (firmware/protocol/vectors). Runs unchanged on MicroPython and CPython.
#
# No exceptions on the receive path: decode functions return (error_code, data).

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

PROTOCOL_VERSION = const(1)
PROTOCOL_MINOR = const(1)    # identify's protocol_minor: 1 since firmware 1.2.0
HEADER_SIZE = const(5)
CRC_SIZE = const(2)
MAX_PAYLOAD = const(64)
MIN_FRAME_SIZE = const(7)    # header + CRC
MAX_FRAME_SIZE = const(71)   # header + 64 payload bytes + CRC
REPLY_BIT = const(0x80)

ADDR_HOST = const(0)
ADDR_BOARD_MIN = const(1)
ADDR_BOARD_MAX = const(247)
ADDR_BROADCAST = const(255)

# Offsets of the header fields in a decoded frame.
F_VERSION = const(0)
F_DST = const(1)
F_SRC = const(2)
F_SEQ = const(3)
F_CMD = const(4)

# Error codes (receive errors 1..5, reply statuses 0 and 6..11).
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
ERROR_NAMES = ("ok", "bad_cobs", "bad_crc", "too_short", "too_long", "bad_version",
               "unknown_command", "bad_length", "out_of_range", "wrong_kind",
               "broadcast_refused", "storage")

# Command codes.
CMD_IDENTIFY = const(1)
CMD_READ_STATE = const(2)
CMD_SET_STATE = const(3)
CMD_CONFIGURE_RULE = const(4)
CMD_SAMPLE_DROPS = const(5)
CMD_LEARN = const(6)
CMD_READ_TELEMETRY = const(7)
CMD_STORE_CALIBRATION = const(8)
CMD_READ_CALIBRATION = const(9)
CMD_RESET = const(10)

# Broadcast handling.
BC_SLOTTED = const(1)   # every board answers in its own slot
BC_SILENT = const(2)    # executed, never answered
BC_REFUSED = const(3)   # ignored (counted in last_error as broadcast_refused)

# code: (name, request struct format, reply struct format (status first), broadcast)
# Formats are little-endian; request sizes are the exact payload lengths.
COMMANDS = {
    1: ("identify", "<", "<B8sBBBBBB", BC_SLOTTED),
    2: ("read_state", "<", "<Bi", BC_SLOTTED),
    3: ("set_state", "<i", "<Bi", BC_SILENT),
    4: ("configure_rule", "<BIqq", "<B", BC_SILENT),
    5: ("sample_drops", "<", "<Bii", BC_REFUSED),
    6: ("learn", "<", "<BiB", BC_SILENT),
    7: ("read_telemetry", "<", "<BIIIIB", BC_REFUSED),
    8: ("store_calibration", "<iiii", "<B", BC_REFUSED),
    9: ("read_calibration", "<", "<Biiii", BC_REFUSED),
    10: ("reset", "<", "<B", BC_SILENT),
}
# Request payload sizes (struct.calcsize of the request formats).
REQUEST_SIZES = {1: 0, 2: 0, 3: 4, 4: 21, 5: 0, 6: 0, 7: 0, 8: 16, 9: 0, 10: 0}
SLOT_TIME_MS = const(2)

# ---------------------------------------------------------------- CRC-16/CCITT-FALSE


def _crc_table():
    t = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) if c & 0x8000 else (c << 1)
        t.append(c & 0xFFFF)
    return tuple(t)


_CRC_TABLE = _crc_table()


def crc16(data):
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0)."""
    crc = 0xFFFF
    t = _CRC_TABLE
    for b in data:
        crc = ((crc << 8) & 0xFF00) ^ t[(crc >> 8) ^ b]
    return crc


# ---------------------------------------------------------------- COBS


def cobs_encode(data):
    """COBS encoding of ``data`` (no delimiter); the result holds no 0x00."""
    out = bytearray()
    code_pos = 0
    out.append(0)
    code = 1
    for b in data:
        if b == 0:
            out[code_pos] = code
            code_pos = len(out)
            out.append(0)
            code = 1
        else:
            out.append(b)
            code += 1
            if code == 0xFF:
                out[code_pos] = code
                code_pos = len(out)
                out.append(0)
                code = 1
    out[code_pos] = code
    return bytes(out)


def cobs_decode(chunk):
    """Decode one COBS chunk (no delimiter; bytes or bytearray). Returns (OK, bytearray)
    or (BAD_COBS, None) when a 0x00 is inside the chunk or a code byte points past
    its end."""
    if b"\x00" in chunk:
        return BAD_COBS, None
    n = len(chunk)
    out = bytearray()
    i = 0
    while i < n:
        code = chunk[i]
        end = i + code
        if end > n:
            return BAD_COBS, None
        out.extend(chunk[i + 1:end])
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return OK, out


# ---------------------------------------------------------------- frames


def frame_bytes(dst, src, seq, cmd, payload=b"", version=PROTOCOL_VERSION):
    """Decoded frame: header, payload, big-endian CRC."""
    body = bytearray((version, dst, src, seq, cmd))
    body.extend(payload)
    c = crc16(body)
    body.append(c >> 8)
    body.append(c & 0xFF)
    return body


def encode_frame(dst, src, seq, cmd, payload=b"", version=PROTOCOL_VERSION):
    """Wire bytes: COBS of header + payload + CRC, then one 0x00."""
    return cobs_encode(frame_bytes(dst, src, seq, cmd, payload, version)) + b"\x00"


def check_frame(raw):
    """Checks 2..5 on decoded bytes: returns OK or the error code."""
    n = len(raw)
    if n < MIN_FRAME_SIZE:
        return TOO_SHORT
    if n > MAX_FRAME_SIZE:
        return TOO_LONG
    if crc16(raw[:n - 2]) != ((raw[n - 2] << 8) | raw[n - 1]):
        return BAD_CRC
    if raw[0] != PROTOCOL_VERSION:
        return BAD_VERSION
    return OK


def decode_frame(chunk):
    """Decode one chunk (the bytes between two delimiters; one trailing 0x00 is
    dropped, any other 0x00 is bad_cobs). Returns (OK, raw) with raw the decoded
    frame (header, payload, CRC), or (error code, None), checks in the spec's
    order: bad_cobs, too_short, too_long, bad_crc, bad_version."""
    if isinstance(chunk, memoryview):
        chunk = bytes(chunk)
    n = len(chunk)
    if n and chunk[n - 1] == 0:
        chunk = chunk[:n - 1]
    err, raw = cobs_decode(chunk)
    if err:
        return err, None
    err = check_frame(raw)
    if err:
        return err, None
    return OK, raw


def payload_of(raw):
    return raw[HEADER_SIZE:len(raw) - CRC_SIZE]


class FrameSplitter:
    """Stream receiver with bounded memory. ``feed(data)`` consumes received bytes
    and returns a list of (error code, raw) for every completed chunk; zero-length
    chunks (two delimiters in a row) are skipped. A chunk longer than ``max_chunk``
    (which no valid frame needs) is no longer stored: its COBS code bytes are only
    walked, and it ends as bad_cobs if a code byte points past its end, else
    too_long (a chunk cut from a stream holds no 0x00, so the walk is the whole
    COBS check, and any COBS-valid chunk of 73 bytes or more decodes to more than
    71)."""

    def __init__(self, max_chunk=96):
        if max_chunk < MAX_FRAME_SIZE + 2:
            max_chunk = MAX_FRAME_SIZE + 2
        self.max_chunk = max_chunk
        self.buf = bytearray()
        self.overflow = False
        self.length = 0      # bytes of an overflowed chunk so far
        self.next_code = 0   # position of its next code byte

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
            # switch to walking: replay what was stored, then the new bytes
            old = self.buf
            self.buf = bytearray()
            self.overflow = True
            self._walk(old, 0, len(old))
        self._walk(data, start, end)

    def _walk(self, data, start, end):
        base = self.length - start   # stream position of data[i] is base + i
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
            end = data.find(b"\x00", start) if hasattr(data, "find") else _find0(data, start)
            if end < 0:
                self._append(data, start, n)
                return out
            self._append(data, start, end)
            start = end + 1
            if self.overflow:
                if self.next_code != self.length:
                    out.append((BAD_COBS, None))
                else:
                    out.append((TOO_LONG, None))
            elif self.buf:
                out.append(decode_frame(self.buf))
            self.reset()
        return out


def _find0(data, start):
    for i in range(start, len(data)):
        if data[i] == 0:
            return i
    return -1
