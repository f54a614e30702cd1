"""What every builder of protocol 1's vectors shares: the reference implementation, the
firmware version, the gains of PROTOCOL-1.md, the uids, request and reply frames."""

from __future__ import annotations

from instruments.bus import protocol as P
from instruments.bus.protocol import Frame

FW_VERSION = P.FIRMWARE_VERSION
GEN2_GAIN = 2559015  # the gain printed in PROTOCOL-1.md
GEN2_GAIN_FORMULA = P.gate_gain(200e-6, 1e3, 2.2e-6, 0.1)  # 2558863
# the largest gain of firmware 1.0.x: the cases written with it keep their results
GAIN_MAX_1_0 = (1 << 24) - 1
GAIN_MAX = P.GAIN_LIMIT - 1


def _hex(b: bytes) -> str:
    return bytes(b).hex()


def _req(dst, seq, cmd, **kw) -> Frame:
    return P.request_frame(dst, seq, cmd, **kw)


def _rep(src, seq, cmd, status=0, **kw) -> Frame:
    return P.reply_frame(src, seq, cmd, status, **kw)  # minor=... for an older board's layout


UID_A = bytes.fromhex("4a1c00e3b2770f01")
UID_B = bytes.fromhex("0000000000000000")
