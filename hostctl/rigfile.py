"""The rig file: how a bench is wired, in TOML.

::

    name = "gen2-bench"
    edge_kind = "mosfet"                    # or "digipot": the kind of every edge board
    calibration = "gen2-bench.cal.h5"       # optional: this rig's calibration store, relative
                                            # to this file (default: RIG.calibration.h5 beside it)

    [network]
    builtin = "gen2"                        # "gen2" (Gen-2 lattice) or "gen1" (digipot grid)
    # file = "lattice.toml"                 # or a network file, relative to this file

    [daq]
    learn_line = "PXI1Slot3/ctr0"           # a counter (hardware-timed pulse) or port0/lineN
    devices = { PXI1Slot2 = "PXIe-6738", PXI1Slot3 = "PXIe-6363" }

    [[outputs]]                             # one per analog output
    channel = "PXI1Slot2/ao0"
    node = "r0c0"
    twin = "both"                           # both | free | clamped
    min_v = 0.0                             # limits (V), inside the device's range
    max_v = 0.45
    safe_v = 0.0                            # optional, default 0 (must be inside the limits)
    max_step_v = 0.45                       # optional ramp limit per write, default none

    [[inputs]]                              # one per analog input
    channel = "PXI1Slot3/ai0"
    node = "r1c1"
    twin = "free"                           # optional, default free
    range_v = 1.0                           # an input range of the device (half-width, V)

    [[cross_limits]]                        # optional: |V(a) - V(b)| <= max_diff_v
    a = "PXI1Slot2/ao0"
    b = "PXI1Slot2/ao1"
    max_diff_v = 0.3

    [boards]
    port = "/dev/ttyUSB0"                   # the edge bus (optional on a simulated bench)
    first_address = 1                       # edge j on address first_address + j, or
    # addresses = [1, 2, 3, ...]            # the address of the board on each edge, in order

    [timing]                                # all optional
    settle_s = 1e-3
    sample_rate_hz = 1e5
    n_average = 10
    pulse_s = 1e-4
    watchdog_s = 2.0

    [instruments.smu]                       # optional, likewise dmm and psu
    kind = "keithley2450"
    address = "USB0::0x05E6::0x2450::04096331::INSTR"
    compliance_a = 1e-3                     # further keys: the driver's and the safety
    voltage_protection_v = 2.0              # layer's options (max_v, max_step_v, ...)

Reading a file checks its form (every problem one :class:`RigFileError` naming the file,
the field and the value); :meth:`instruments.wiring.Wiring.problems` then checks that the
wiring is sound (what ``hostctl rig check`` reports). :func:`dumps_rig` writes a wiring back
as a rig file (the built-in benches are a starting point for a real one).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import tomli_w
from pydantic import ConfigDict, Field, model_validator

from instruments.sim.netfile import NetworkFileError, load_network_file
from instruments.tomlspec import Number, SpecProblem, Strict, parse_toml, read_text, validate_spec
from instruments.wiring import (
    CrossLimit,
    Input,
    Instrument,
    Output,
    Timing,
    Wiring,
    default_wiring,
    gen1_grid,
)
from instruments.sim.network import gen2_lattice

AnyVolts = Field(ge=-100.0, le=100.0)  # beyond any DAQ's range: the device check names it


class RigFileError(ValueError):
    """A rig file is malformed; the message names the file, the field and the value."""

    def __init__(self, source: str, field: str, problem: str):
        self.source = source
        self.field = field
        super().__init__(f"{source}: {field}: {problem}" if field else f"{source}: {problem}")


class NetworkSpec(Strict):
    builtin: Literal["gen2", "gen1"] | None = None
    file: str | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.builtin is None) == (self.file is None):
            raise ValueError("give exactly one of builtin or file")
        return self


class DaqSpec(Strict):
    learn_line: str
    devices: dict[str, str] = Field(min_length=1)


class OutputSpec(Strict):
    channel: str
    node: str
    twin: Literal["both", "free", "clamped"]
    min_v: Number = AnyVolts
    max_v: Number = AnyVolts
    safe_v: Number = Field(0.0, ge=-100.0, le=100.0)
    max_step_v: Number = Field(math.inf, gt=0, le=200.0)


class InputSpec(Strict):
    channel: str
    node: str
    twin: Literal["free", "clamped"] = "free"
    range_v: Number = Field(gt=0, le=100.0)


class CrossSpec(Strict):
    a: str
    b: str
    max_diff_v: Number = Field(gt=0, le=200.0)


class BoardsSpec(Strict):
    port: str | None = None
    first_address: int | None = Field(default=None, ge=1, le=247)
    addresses: list[int] | None = None

    @model_validator(mode="after")
    def _one(self):
        if (self.first_address is None) == (self.addresses is None):
            raise ValueError("give exactly one of first_address or addresses")
        return self


class TimingSpec(Strict):
    settle_s: Number = Field(Timing.settle_s, gt=0, le=10.0)
    sample_rate_hz: Number = Field(Timing.sample_rate_hz, ge=1.0, le=1e8)
    n_average: int = Field(Timing.n_average, ge=1, le=100_000)
    pulse_s: Number = Field(Timing.pulse_s, gt=0, le=1.0)
    watchdog_s: Number = Field(Timing.watchdog_s, gt=0, le=3600.0)


class InstrumentSpec(Strict):
    model_config = ConfigDict(extra="allow", strict=True)
    kind: str
    address: str


class SmuOptions(Strict):
    """A source-measure unit's options (Keithley 2450 ranges, reference manual ch. 12)."""

    compliance_a: Number | None = Field(None, ge=1e-9, le=1.05)
    nplc: Number = Field(1.0, ge=0.01, le=10.0)
    # the overvoltage protection (V); the 2450 rounds it up to its next level, 2 .. 180 V
    voltage_protection_v: Number | None = Field(None, gt=0.0, le=210.0)
    # the safety layer's (instruments/safe_instruments.py): the levels allowed (V), default
    # 0 .. the node range of the network's edge boards, and the ramp per write
    max_v: Number | None = Field(None, ge=0.0, le=210.0)
    min_v: Number = Field(0.0, ge=-210.0, le=0.0)
    max_step_v: Number = Field(0.05, gt=0.0, le=210.0)
    step_delay_s: Number = Field(0.0, ge=0.0, le=10.0)


class DmmOptions(Strict):
    """A multimeter's options (Keysight 34465A: DC ranges and integration times)."""

    range_v: Literal[0.1, 1, 1.0, 10, 10.0, 100, 100.0, 1000, 1000.0] | None = None
    nplc: Number | None = Field(None, ge=0.001, le=100.0)
    # integration as a time instead of power-line cycles (s), 20 us .. 1 s
    aperture_s: Number | None = Field(None, ge=20e-6, le=1.0)
    autozero: Literal["ON", "OFF", "ONCE"] = "ON"
    # auto: 10 GOhm on the 0.1 .. 10 V ranges, the meter does not load the node it measures
    input_impedance: Literal["auto", "10M"] = "auto"


class PsuOptions(Strict):
    """A power supply's options (Keysight E36312A: channel 1 0..6 V 0..5 A, channels 2 and 3
    0..25 V 0..1 A)."""

    channel: int = Field(1, ge=1, le=3)
    voltage_v: Number | None = Field(None, ge=0.0, le=25.0)
    current_limit_a: Number | None = Field(None, ge=0.0, le=5.0)
    # the safety layer's: the highest level and current limit allowed (default voltage_v and
    # current_limit_a, else the channel's rating) and the ramp per write
    max_v: Number | None = Field(None, ge=0.0, le=25.0)
    max_current_a: Number | None = Field(None, ge=0.0, le=5.0)
    max_step_v: Number | None = Field(None, gt=0.0, le=25.0)
    step_delay_s: Number = Field(0.0, ge=0.0, le=10.0)

    @model_validator(mode="after")
    def _per_channel(self):
        v_max, i_max = (6.0, 5.0) if self.channel == 1 else (25.0, 1.0)
        if self.voltage_v is not None and self.voltage_v > v_max:
            raise ValueError(f"voltage_v {self.voltage_v} V is beyond channel {self.channel}'s {v_max:g} V")
        if self.current_limit_a is not None and self.current_limit_a > i_max:
            raise ValueError(f"current_limit_a {self.current_limit_a} A is beyond channel {self.channel}'s {i_max:g} A")
        return self


_OPTIONS = {"smu": SmuOptions, "dmm": DmmOptions, "psu": PsuOptions}


class InstrumentsSpec(Strict):
    smu: InstrumentSpec | None = None
    dmm: InstrumentSpec | None = None
    psu: InstrumentSpec | None = None


class RigSpec(Strict):
    name: str
    edge_kind: Literal["mosfet", "digipot"] = "mosfet"
    calibration: str | None = Field(None, min_length=1)  # read by hostctl.calibrating.store_path
    network: NetworkSpec
    daq: DaqSpec
    outputs: list[OutputSpec] = Field(min_length=1)
    inputs: list[InputSpec] = Field(min_length=1)
    cross_limits: list[CrossSpec] = []
    boards: BoardsSpec
    timing: TimingSpec = TimingSpec()
    instruments: InstrumentsSpec = InstrumentsSpec()


def _instrument(spec: InstrumentSpec | None) -> Instrument | None:
    if spec is None:
        return None
    return Instrument(spec.kind, spec.address, dict(spec.model_extra or {}))


def loads_rig(text: str, source: str = "<rig file>", base: Path | None = None) -> Wiring:
    """A :class:`Wiring` from the text of a rig file (its form checked, not its soundness).

    Args:
        base: folder that a relative ``network.file`` is read from (default: the current one).

    Raises:
        RigFileError: a syntax error, a missing or unknown field, a bad value, or a network
            file that cannot be read.
    """
    data = parse_toml(text, source, RigFileError)
    try:
        spec = validate_spec(RigSpec, data)
        for role, options in _OPTIONS.items():
            inst = getattr(spec.instruments, role)
            if inst is not None:
                validate_spec(options, dict(inst.model_extra or {}), f"instruments.{role}")
    except SpecProblem as p:
        raise RigFileError(source, p.field, p.problem) from None
    if spec.network.builtin == "gen2":
        network = gen2_lattice()
    elif spec.network.builtin == "gen1":
        network = gen1_grid()
    else:
        path = Path(spec.network.file)
        if not path.is_absolute() and base is not None:
            path = base / path
        try:
            network = load_network_file(path).network
        except OSError as exc:
            raise RigFileError(source, "network.file", f"cannot read {path}: {exc.strerror or exc}") from None
        except NetworkFileError as exc:
            raise RigFileError(source, "network.file", str(exc)) from None
    b = spec.boards
    addresses = b.addresses if b.addresses is not None else [b.first_address + e for e in range(network.n_edges)]
    boards: dict[int, int] = {}
    for edge, addr in enumerate(addresses):
        if addr in boards:
            raise RigFileError(source, f"boards.addresses[{edge}]",
                               f"address {addr} is already the board of edge {boards[addr]}")
        boards[addr] = edge
    return Wiring(
        name=spec.name,
        network=network,
        daq_devices=dict(spec.daq.devices),
        outputs=tuple(Output(**o.model_dump()) for o in spec.outputs),
        inputs=tuple(Input(**i.model_dump()) for i in spec.inputs),
        learn_line=spec.daq.learn_line,
        boards=boards,
        edge_kind=spec.edge_kind,
        cross_limits=tuple(CrossLimit(**c.model_dump()) for c in spec.cross_limits),
        timing=Timing(**spec.timing.model_dump()),
        bus_port=b.port,
        smu=_instrument(spec.instruments.smu),
        dmm=_instrument(spec.instruments.dmm),
        psu=_instrument(spec.instruments.psu),
    )


def load_rig(path: str | Path) -> Wiring:
    """Read the rig file at ``path`` (see the module's description).

    Raises:
        OSError: the file cannot be read.
        RigFileError: it is not a valid rig file.
    """
    path = Path(path)
    return loads_rig(read_text(path, RigFileError), str(path), path.parent)


def rig_dict(wiring: Wiring, builtin: str) -> dict[str, Any]:
    """The rig file's table for ``wiring``, whose network is the built-in ``builtin``."""

    def finite(d: dict) -> dict:
        return {k: v for k, v in d.items() if not (isinstance(v, float) and math.isinf(v))}

    def inst(i: Instrument | None):
        return None if i is None else {"kind": i.kind, "address": i.address, **i.options}

    addrs = {e: a for a, e in wiring.boards.items()}
    data: dict[str, Any] = {
        "name": wiring.name,
        "edge_kind": wiring.edge_kind,
        "network": {"builtin": builtin},
        "daq": {"learn_line": wiring.learn_line, "devices": dict(wiring.daq_devices)},
        "outputs": [finite(vars(o)) for o in wiring.outputs],
        "inputs": [vars(i) for i in wiring.inputs],
        "boards": {"addresses": [addrs[e] for e in range(wiring.network.n_edges)]},
        "timing": vars(wiring.timing),
    }
    if wiring.cross_limits:
        data["cross_limits"] = [vars(c) for c in wiring.cross_limits]
    if wiring.bus_port is not None:
        data["boards"]["port"] = wiring.bus_port
    instruments = {k: inst(getattr(wiring, k)) for k in ("smu", "dmm", "psu") if getattr(wiring, k) is not None}
    if instruments:
        data["instruments"] = instruments
    return data


def dumps_builtin(name: str) -> str:
    """The rig file of a built-in bench (``"gen2"`` or ``"gen1"``) as TOML text."""
    return tomli_w.dumps(rig_dict(default_wiring(name), name))
