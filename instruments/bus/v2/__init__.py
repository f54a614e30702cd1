"""The edge-bus protocol, version 2: the host's reference implementation.

The executable form of ``firmware/protocol/PROTOCOL.md`` (protocol 2.1) and
``firmware/protocol/protocol-2.json``; ``firmware/protocol/gen_vectors_v2.py`` writes the
golden vectors ``firmware/protocol/vectors/v2/`` from it. Protocol 1.1 (``PROTOCOL-1.md``)
stays in :mod:`instruments.bus.protocol` for the boards, client and firmware that speak it.

One module per part of the spec: :mod:`.constants`, :mod:`.framing` (frames of 7..254
bytes, version 2), :mod:`.payloads` (the command table, packing, quiet times),
:mod:`.slots` (the slot of each reply, discover's hash; the formulas are
:mod:`instruments.bus.timing`'s), :mod:`.actuator` (the state reached and the carried
residue), :mod:`.store` (the stored state and its generation), :mod:`.update` (firmware
update, A/B slots, rollback), :mod:`.reference` (:class:`ReferenceBoard`) and
:mod:`.protocol_json`. The rule's arithmetic is protocol 1.1's (:mod:`instruments.bus.rule`).

The host's side (imported on its own): :mod:`.client` (:class:`~.client.Bus`, one bus:
requests, broadcasts, the version-1 probe, scan, discover and assign, duplicates, state and
telemetry), :mod:`.link` (its port: a real serial port in real time, or an emulator's
pseudo-terminal in emulated time), :mod:`.host_update` (firmware update of every board of a
bus), :mod:`.rig` (several buses at once) and :mod:`.onwire` (protocol-2 boards on the
emulated wire).
"""

from .actuator import CAL_POINTS_UV, Actuator, GateCalibration  # noqa: F401
from .constants import *  # noqa: F401,F403
from .constants import __all__ as _constants
from .framing import (  # noqa: F401
    Frame, FrameError, FrameSplitter, decode_any, decode_frame, encode_frame, frame_bytes,
    line_frame, split_stream,
)
from .payloads import (  # noqa: F401
    COMMANDS, COMMANDS_BY_CODE, Cmd, CommandSpec, FieldSpec, PayloadError, Quiet, command_spec,
    pack_reply, pack_request, quiet_ms, reply_frame, request_frame, unpack_reply, unpack_request,
)
from .protocol_json import protocol_dict  # noqa: F401
from .reference import ReferenceBoard, Reply  # noqa: F401
from .slots import (  # noqa: F401
    REPLY_LATENCY_MAX_US, discover_hash, discover_slot, fmix32, listen_us, reply_start_us,
    slot_reply_payload, slot_us, unicast_reply_window_us, v1_probe_timeout_us,
)
from .store import Record, StateStore, StorageError  # noqa: F401
from .update import FirmwareUpdate, Image, crc32, image_blocks  # noqa: F401

__all__ = [
    *_constants, "Actuator", "GateCalibration", "CAL_POINTS_UV", "Frame", "FrameError", "FrameSplitter", "decode_any", "decode_frame",
    "encode_frame", "frame_bytes", "line_frame", "split_stream", "COMMANDS", "COMMANDS_BY_CODE",
    "Cmd", "CommandSpec", "FieldSpec", "PayloadError", "Quiet", "command_spec", "pack_reply",
    "pack_request", "quiet_ms", "reply_frame", "request_frame", "unpack_reply", "unpack_request",
    "protocol_dict", "ReferenceBoard", "Reply", "REPLY_LATENCY_MAX_US", "discover_hash",
    "discover_slot", "fmix32", "listen_us", "reply_start_us", "slot_reply_payload", "slot_us",
    "unicast_reply_window_us", "v1_probe_timeout_us", "Record", "StateStore", "StorageError",
    "FirmwareUpdate", "Image", "crc32", "image_blocks",
]
