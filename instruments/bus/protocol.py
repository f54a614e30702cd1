"""The edge-bus protocol, version 1: the host's reference implementation.

This module is the executable form of ``firmware/protocol/PROTOCOL-1.md`` and
``firmware/protocol/protocol.json``. The golden vectors (``firmware/protocol/vectors/``)
are written from it by ``firmware/protocol/gen_vectors.py``; the C core and the MicroPython
firmware are checked against those vectors. Import it (``from instruments.bus import
protocol as p``) for every name below: the code lives in the modules beside it, one per
part of the spec, and this module re-exports every name of its ``__all__``.

Contents:

* constants (protocol version, addresses, kinds, rules, limits, error codes), written out
  literally (a test checks them against ``protocol.json``): :mod:`instruments.bus.constants`,
  the lowest module, which the others import;
* the frame codec (:mod:`instruments.bus.framing`): :class:`Frame`, :func:`encode_frame`,
  :func:`line_frame` (what the host sends: a 0x00 before the frame as well as after),
  :func:`decode_frame` (raises :class:`FrameError` with the spec's error code, checks in
  the spec's order) and the stream decoder :class:`FrameSplitter`; COBS is the ``cobs``
  package, the CRC is the ``crc`` package (CRC-16/CCITT-FALSE, which ``crc`` calls
  ``Crc16.IBM_3740``);
* the command table and payload packing per command (:mod:`instruments.bus.payloads`):
  :data:`COMMANDS`, :func:`pack_request`, :func:`unpack_request`, :func:`pack_reply`,
  :func:`unpack_reply`, and :func:`protocol_dict`;
* the rule arithmetic (:mod:`instruments.bus.rule`): :func:`xorshift32`,
  :func:`seed_from_uid`, :func:`drops_uv`, :func:`contrast_uv2`, :func:`gain_delta` (and
  :func:`gain_delta_int64`, the same in 64-bit steps, as the boards compute it),
  :func:`apply_rule`, :func:`learn_step`;
* :class:`ReferenceBoard`, a complete board in pure Python (:mod:`instruments.bus.reference`).

Units: voltages are integer microvolts (uV), contrasts integer uV^2, times milliseconds.
"""

from __future__ import annotations

import crc as _crc  # noqa: F401  (gen_vectors.py computes a wrong-CRC vector with it)

from .constants import (  # noqa: F401
    ADDR_BOARD_MAX, ADDR_BOARD_MIN, ADDR_BROADCAST, ADDR_HOST, ADDRESSES, BROADCAST_REFUSED,
    BROADCAST_SILENT, BROADCAST_SLOTTED, CONTRAST_LIMIT_UV2, CRC_INIT, CRC_POLY, CRC_SIZE,
    CRC_XOROUT, DEFAULT_LIMITS, ERRORS, FIRMWARE_VERSION, GAIN_LIMIT, GAIN_SHIFT, HEADER_SIZE,
    I32_MAX, I32_MIN, KINDS, MAX_FRAME_SIZE, MAX_PAYLOAD, MIN_FRAME_SIZE, PROBABILITY_ONE,
    PROTOCOL_MINOR, PROTOCOL_VERSION, REPLY_BIT, RULE_KINDS, RULES, SLOT_TIME_S, Error, Kind,
    Rule, minor_for_firmware,
)
from .framing import (  # noqa: F401
    CRC_CONFIG, Frame, FrameError, FrameSplitter, crc16, decode_frame, encode_frame,
    frame_bytes, line_frame, split_stream, wire_from_bytes,
)
from .payloads import (  # noqa: F401
    COMMANDS, COMMANDS_BY_CODE, MINOR_FIELDS, Cmd, CommandSpec, FieldSpec, PayloadError,
    command_spec, pack_reply, pack_request, protocol_dict, reply_frame, request_frame,
    unpack_reply, unpack_request,
)
from .reference import ReferenceBoard  # noqa: F401
from .rule import (  # noqa: F401
    GAIN_SPLIT_BITS, SEED_XOR, Xorshift32, apply_rule, contrast_uv2, drops_uv, gain_delta,
    gain_delta_int64, gate_gain, learn_step, seed_from_uid, should_update, xorshift32,
)

__all__ = [
    # constants
    "PROTOCOL_VERSION", "PROTOCOL_MINOR", "MINOR_FIELDS", "minor_for_firmware", "HEADER_SIZE", "CRC_SIZE", "MIN_FRAME_SIZE", "MAX_PAYLOAD",
    "MAX_FRAME_SIZE", "REPLY_BIT", "CRC_POLY", "CRC_INIT", "CRC_XOROUT", "CRC_CONFIG",
    "ADDR_HOST", "ADDR_BOARD_MIN", "ADDR_BOARD_MAX", "ADDR_BROADCAST", "ADDRESSES",
    "KINDS", "Kind", "RULES", "Rule", "RULE_KINDS", "GAIN_SHIFT", "CONTRAST_LIMIT_UV2",
    "GAIN_LIMIT", "FIRMWARE_VERSION", "PROBABILITY_ONE", "ERRORS", "Error", "COMMANDS", "Cmd", "CommandSpec",
    "FieldSpec", "COMMANDS_BY_CODE", "BROADCAST_SLOTTED", "BROADCAST_SILENT",
    "BROADCAST_REFUSED", "SLOT_TIME_S", "DEFAULT_LIMITS", "I32_MIN", "I32_MAX",
    "protocol_dict",
    # frames
    "Frame", "FrameError", "PayloadError", "crc16", "frame_bytes", "wire_from_bytes",
    "encode_frame", "line_frame", "decode_frame", "FrameSplitter", "split_stream",
    # payloads
    "pack_request", "unpack_request", "pack_reply", "unpack_reply", "request_frame",
    "reply_frame", "command_spec",
    # rule
    "xorshift32", "seed_from_uid", "SEED_XOR", "Xorshift32", "drops_uv", "contrast_uv2", "should_update",
    "GAIN_SPLIT_BITS", "gain_delta", "gain_delta_int64", "apply_rule", "learn_step", "gate_gain",
    # board
    "ReferenceBoard",
]
