"""A bus of reference boards that records every exchange, for the command and update vectors.

Every request is heard by every board (or by those ``heard_by`` names, to model a frame one
board's receiver lost); each board's reply is recorded with its earliest start after the
request's end of frame. Replies whose times on the wire overlap are marked ``collides``
and reach no other board; every other reply is heard by the other boards, as on a real bus
(that is how a board notices another at its address).

Exchange format: ``{request_hex, heard_by?, quiet_ms, replies: [{board, reply_hex, start_us,
collides}]}`` with ``request_hex`` one chunk (COBS and its 0x00; the host's line form adds a
0x00 before it); or an event ``{event, board, ...}``: ``power_cycle``, ``trigger``
(``width_us``), ``cut_power_during_next_store``.
"""

from __future__ import annotations

from instruments.bus import timing
from instruments.bus import v2
from instruments.bus.v2 import Frame, encode_frame

UID_A = bytes.fromhex("4a1c00e3b2770f01")
UID_B = bytes.fromhex("0123456789abcdef")
UID_C = bytes.fromhex("e6613c8a11d20a33")
MOSFET_NODES = (1_300_000, 1_000_000, 1_150_000, 1_000_000)
BAUD = v2.BAUD_DEFAULT
#: A MOSFET board's nominal gate table (an RC gate of 2.2 ms on a 6 V rail) and what its gate
#: measures when it calibrates (a 5 % larger RC, a little curvature, a slow leak).
GATE_NOMINAL = v2.GateCalibration.from_rc(2200, 6_000_000)
GATE_MEASURED = v2.GateCalibration((1_031_000, 2_030_500, 3_029_900, 4_029_100, 5_028_800),
                                   (2_151_830, 1_732_010, 1_301_470, 868_240, 431_905),
                                   (970_400, 1_969_800, 2_969_100, 3_968_700, 4_968_050),
                                   (441_270, 866_300, 1_297_040, 1_725_880, 2_160_430), -17)


def hexs(b: bytes) -> str:
    return bytes(b).hex()


def board_spec(*, uid=UID_A, kind="digipot", address=v2.ADDR_UNASSIGNED, state_min=None, state_max=None,
               initial_state=None, resolution=1, actuator_offset=0, node_uv=(1_200_000, 1_000_000, 1_100_000, 1_000_000),
               uptime_ms=123_456, supply_uv=3_300_000, temperature_mdegc=25_000, fw_version=v2.FIRMWARE_VERSION,
               calibration_uv=(0, 0, 0, 0), gate_nominal=GATE_NOMINAL, gate_measured=GATE_MEASURED,
               storage_fails=False, self_test_passes=True) -> dict:
    """A board's description as the vectors give it (every constructor argument)."""
    k = v2.Kind(v2.KINDS[kind])
    lo, hi = v2.DEFAULT_LIMITS[k]
    lo = lo if state_min is None else state_min
    hi = hi if state_max is None else state_max
    return {"uid_hex": hexs(uid), "kind": kind, "address": address, "state_min": lo, "state_max": hi,
            "initial_state": (lo + hi) // 2 if initial_state is None else initial_state,
            "resolution": resolution, "actuator_offset": actuator_offset, "node_uv": list(node_uv),
            "uptime_ms": uptime_ms, "supply_uv": supply_uv, "temperature_mdegc": temperature_mdegc,
            "fw_version": list(fw_version), "calibration_uv": list(calibration_uv),
            "gate_nominal": gate_nominal.fields(), "gate_measured": gate_measured.fields(),
            "storage_fails": storage_fails, "self_test_passes": self_test_passes}


def make_board(spec: dict, baud: int = BAUD) -> v2.ReferenceBoard:
    """The reference board a description names."""
    passes = spec["self_test_passes"]
    return v2.ReferenceBoard(
        bytes.fromhex(spec["uid_hex"]), v2.KINDS[spec["kind"]], address=spec["address"],
        state_min=spec["state_min"], state_max=spec["state_max"], initial_state=spec["initial_state"],
        resolution=spec["resolution"], actuator_offset=spec["actuator_offset"], node_uv=spec["node_uv"],
        uptime_ms=spec["uptime_ms"], supply_uv=spec["supply_uv"], temperature_mdegc=spec["temperature_mdegc"],
        fw_version=tuple(spec["fw_version"]), calibration_uv=spec["calibration_uv"],
        gate_nominal=v2.GateCalibration.from_fields(spec["gate_nominal"]),
        gate_measured=v2.GateCalibration.from_fields(spec["gate_measured"]),
        storage_fails=spec["storage_fails"], self_test=lambda image: passes, baud=baud)


class Bus:
    """Records exchanges between the host and reference boards built from ``specs``."""

    def __init__(self, name: str, *specs: dict, baud: int = BAUD) -> None:
        self.name, self.baud = name, baud
        self.specs = list(specs)
        self.boards = [make_board(s, baud) for s in specs]
        self.seq = 0
        self.exchanges: list[dict] = []

    def raw(self, wire: bytes, heard_by: list[int] | None = None, quiet_ms: int = 0) -> list[dict]:
        """Put one chunk on the bus; returns (and records) the replies."""
        hear = range(len(self.boards)) if heard_by is None else heard_by
        replies = []
        for i in hear:
            r = self.boards[i].handle(wire)
            if r is not None:
                replies.append((i, r))
        replies.sort(key=lambda ir: (ir[1].start_us, ir[0]))
        char = timing.char_us(self.baud)
        spans = [(r.start_us, r.start_us + len(r.wire) * char + timing.DE_HOLD_US) for _, r in replies]
        out = []
        for n, (i, r) in enumerate(replies):
            collides = any(a < spans[n][1] and spans[n][0] < b for m, (a, b) in enumerate(spans) if m != n)
            out.append({"board": i, "reply_hex": hexs(r.wire), "start_us": r.start_us, "collides": collides})
        for n, (i, r) in enumerate(replies):
            if not out[n]["collides"]:
                for j, b in enumerate(self.boards):
                    if j != i:
                        b.handle(r.wire)
        ex = {"request_hex": hexs(wire), "quiet_ms": quiet_ms, "replies": out}
        if heard_by is not None:
            ex["heard_by"] = list(heard_by)
        self.exchanges.append(ex)
        return out

    def frame(self, f: Frame, heard_by: list[int] | None = None, quiet_ms: int = 0) -> list[dict]:
        return self.raw(encode_frame(f), heard_by, quiet_ms)

    def __call__(self, cmd: str, dst: int, *, heard_by: list[int] | None = None, **fields) -> list[dict]:
        """Send protocol-2 command ``cmd`` to ``dst`` (the next sequence number)."""
        f = v2.request_frame(dst, self.seq, cmd, **fields)
        self.seq = (self.seq + 1) & 0xFF
        return self.frame(f, heard_by, v2.quiet_ms(cmd, **fields))

    def v1_identify(self, dst: int) -> list[dict]:
        """Protocol 1's identify probe to ``dst``."""
        f = Frame(v2.V1_VERSION, dst, 0, self.seq, 1, b"")
        self.seq = (self.seq + 1) & 0xFF
        return self.frame(f)

    def event(self, event: str, board: int = 0, **args) -> None:
        b = self.boards[board]
        if event == "power_cycle":
            b.power_cycle()
        elif event == "trigger":
            b.trigger(args["width_us"])
        elif event == "cut_power_during_next_store":
            b.cut_power_during_store = True
        else:
            raise ValueError(f"unknown event {event!r}")
        self.exchanges.append({"event": event, "board": board, **args})

    def json(self) -> dict:
        return {"name": self.name, "baud": self.baud, "boards": self.specs, "exchanges": self.exchanges}
