"""How a bench is wired: devices, DAQ channels to network nodes per twin, boards to edges.

A :class:`Wiring` is plain data: the rig file (``hostctl/rigfile.py``) builds one from TOML,
and :func:`default_wiring` gives the built-in benches (the Gen-2 MOSFET lattice and a
Gen-1-style digipot grid) so the simulated bench needs no files. :meth:`Wiring.problems`
lists everything that makes a wiring unsound, each problem by name; :meth:`Wiring.layout`
turns a sound wiring into the index arrays a training step uses.

Twins: a source node is driven on both twins, either by one output wired to both copies
(``twin = "both"``) or by one output per twin. A target node is read on the free twin (an
input) and driven on the clamped twin (an output). Ground is the DAQ's ground.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

import numpy as np

from .daq import models
from .interfaces import DaqError
from .sim.network import Network, gen2_lattice, square_grid

TWINS = ("both", "free", "clamped")
INSTRUMENT_KINDS = {
    "smu": ("keithley2450", "sim"),
    "dmm": ("keysight34465a", "sim"),
    "psu": ("keysight_e36312a", "sim"),
}
BOARD_ADDRESSES = range(1, 248)
_CHANNEL = re.compile(r"^(?P<device>[A-Za-z0-9_]+)/(?P<kind>ao|ai|ctr|port\d+/line)(?P<n>\d+)$")
_KIND = {"ao": "ao", "ai": "ai", "ctr": "co", "port": "do"}
"""The kind of channel, as :meth:`~instruments.daq.models.DaqModel.physical_channels` names
it, of each channel prefix."""


def _device(channel: str) -> str:
    """The device of a physical channel: ``"PXI1Slot2/ao0"`` -> ``"PXI1Slot2"``."""
    return channel.split("/", 1)[0]


@dataclass(frozen=True)
class Output:
    """An analog output wired to a node.

    Attributes:
        channel: physical channel, e.g. ``"PXI1Slot2/ao0"``.
        node: network node name.
        twin: ``"both"``, ``"free"`` or ``"clamped"``.
        min_v, max_v: the safety limits of this output (V); inside the device's range.
        safe_v: the value the output goes to in the safe state (V), inside the limits.
        max_step_v: the largest change in one write (V), the ramp limit; inf for none.
    """

    channel: str
    node: str
    twin: str
    min_v: float
    max_v: float
    safe_v: float = 0.0
    max_step_v: float = math.inf


@dataclass(frozen=True)
class Input:
    """An analog input reading a node.

    Attributes:
        channel: physical channel, e.g. ``"PXI1Slot3/ai0"``.
        node: network node name.
        twin: ``"free"`` or ``"clamped"`` (the clamped twin's read-back is optional).
        range_v: the input range (V, half-width), one the device offers.
    """

    channel: str
    node: str
    twin: str = "free"
    range_v: float = 1.0


@dataclass(frozen=True)
class CrossLimit:
    """The largest allowed difference ``|V(a) - V(b)|`` (V) between two outputs."""

    a: str
    b: str
    max_diff_v: float


@dataclass(frozen=True)
class Instrument:
    """A SCPI instrument: its driver kind and VISA resource address.

    Attributes:
        kind: ``"keithley2450"``, ``"keysight34465a"``, ``"keysight_e36312a"`` or ``"sim"``.
        address: VISA resource name, e.g. ``"USB0::0x05E6::0x2450::04096331::INSTR"``.
        options: driver settings (e.g. ``compliance_a`` for an SMU, ``channel`` and
            ``voltage_v``, ``current_limit_a`` for a power supply).
    """

    kind: str
    address: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Timing:
    """Timing of one step.

    Attributes:
        settle_s: wait after writing outputs before sampling or pulsing (s), > 0.
        sample_rate_hz: the shared sample clock (Hz).
        n_average: input samples averaged per read (>= 1).
        pulse_s: learn pulse width (s), 25e-6 .. 200e-6 on Gen-2 boards.
        watchdog_s: the DAQ watchdog timeout (s): outputs go safe if the host stops
            servicing the DAQ for this long.
    """

    settle_s: float = 1e-3
    sample_rate_hz: float = 100e3
    n_average: int = 10
    pulse_s: float = 100e-6
    watchdog_s: float = 2.0


@dataclass(frozen=True)
class Layout:
    """Index arrays of one training step, from a sound wiring.

    Attributes:
        n_ao, n_ai: number of outputs and inputs.
        source_ao: (K,) output indices that carry a source voltage; ``source_of[k]`` is the
            index of that source in ``network.sources`` order.
        clamp_ao: (T,) output index of each target on the clamped twin.
        free_ai: (T,) input index of each target on the free twin.
        safe_v, min_v, max_v, max_step_v: per output (V).
    """

    n_ao: int
    n_ai: int
    source_ao: np.ndarray
    source_of: np.ndarray
    clamp_ao: np.ndarray
    free_ai: np.ndarray
    safe_v: np.ndarray
    min_v: np.ndarray
    max_v: np.ndarray
    max_step_v: np.ndarray

    def outputs(self, sources_v: np.ndarray, clamps_v: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """The output vector (V) for source voltages (S,) and clamps (T,)."""
        out = np.empty(self.n_ao) if out is None else out
        out[:] = self.safe_v
        out[self.source_ao] = np.asarray(sources_v, float)[self.source_of]
        out[self.clamp_ao] = clamps_v
        return out


@dataclass(frozen=True)
class Wiring:
    """A bench: network, DAQ channels, boards, instruments, limits and timing.

    Attributes:
        name: the bench's name.
        network: the network on the boards (roles say which nodes are sources and targets).
        daq_devices: DAQ device name -> model name, e.g. ``{"PXI1Slot2": "PXIe-6738"}``.
        outputs, inputs: analog channels.
        learn_line: the learn trigger's channel, a counter (``"PXI1Slot3/ctr0"``) or a
            digital line (``"PXI1Slot3/port0/line0"``).
        boards: bus address -> edge index.
        edge_kind: ``"mosfet"`` or ``"digipot"``, the kind of every board.
        cross_limits: limits across pairs of outputs.
        timing: settle, sampling, pulse and watchdog.
        bus_port: serial port of the edge bus (None on a simulated bench).
        smu, dmm, psu: SCPI instruments, or None when absent.
    """

    name: str
    network: Network
    daq_devices: dict
    outputs: tuple
    inputs: tuple
    learn_line: str
    boards: dict
    edge_kind: str = "mosfet"
    cross_limits: tuple = ()
    timing: Timing = Timing()
    bus_port: str | None = None
    smu: Instrument | None = None
    dmm: Instrument | None = None
    psu: Instrument | None = None

    # -- soundness -------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """Everything that makes this wiring unsound, one message per problem (empty: sound)."""
        out: list[str] = []
        net = self.network
        nodes = set(net.nodes)
        for dev, name in self.daq_devices.items():
            if name not in models.MODELS:
                out.append(f"daq device {dev}: unknown model {name!r} (known: {', '.join(sorted(models.MODELS))})")
        seen: dict[str, str] = {}

        def channel(ch: str, what: str, kinds: tuple[str, ...]):
            m = _CHANNEL.match(ch)
            if not m or not m["kind"].startswith(kinds):
                out.append(f"{what}: channel {ch!r} is not a {'/'.join(kinds)} channel like 'Dev1/{kinds[0]}0'")
                return None
            if ch in seen:
                out.append(f"{what}: channel {ch} is already used by {seen[ch]}")
            seen[ch] = what
            dev = m["device"]
            if dev not in self.daq_devices:
                out.append(f"{what}: channel {ch} is on device {dev}, which is not in [daq.devices]")
                return None
            dm = models.MODELS.get(self.daq_devices[dev])
            kind = _KIND["port" if m["kind"].startswith("port") else m["kind"]]
            if dm is not None and ch not in dm.physical_channels(dev, kind):
                out.append(f"{what}: channel {ch} does not exist on the {dm.name} {dev} (it has {dm.describe(kind)})")
                return None
            return dm

        for o in self.outputs:
            what = f"output {o.channel} ({o.node}, {o.twin})"
            dm = channel(o.channel, what, ("ao",))
            if o.node not in nodes:
                out.append(f"{what}: no node {o.node!r} in network {net.name}")
            if o.twin not in TWINS:
                out.append(f"{what}: twin must be one of {', '.join(TWINS)}, got {o.twin!r}")
            if not o.min_v < o.max_v:
                out.append(f"{what}: min_v {o.min_v} V is not below max_v {o.max_v} V")
            if not o.min_v <= o.safe_v <= o.max_v:
                out.append(f"{what}: safe_v {o.safe_v} V is outside its limits {o.min_v}..{o.max_v} V")
            if not o.max_step_v > 0:
                out.append(f"{what}: max_step_v must be positive, got {o.max_step_v}")
            if dm is not None:
                lo, hi = dm.ao_range_v
                if o.min_v < lo or o.max_v > hi:
                    out.append(f"{what}: limits {o.min_v}..{o.max_v} V are outside the {dm.name}'s output range {lo}..{hi} V")
            node_max = NODE_MAX_V.get(self.edge_kind)
            if node_max is not None and (o.min_v < 0.0 or o.max_v > node_max):
                out.append(f"{what}: limits {o.min_v}..{o.max_v} V go beyond the node range 0..{node_max} V "
                           f"that {self.edge_kind} edge boards are safe in")
        for i in self.inputs:
            what = f"input {i.channel} ({i.node}, {i.twin})"
            dm = channel(i.channel, what, ("ai",))
            if i.node not in nodes:
                out.append(f"{what}: no node {i.node!r} in network {net.name}")
            if i.twin not in ("free", "clamped"):
                out.append(f"{what}: twin must be free or clamped, got {i.twin!r}")
            if dm is not None and i.range_v not in dm.ai_ranges_v:
                offered = ", ".join(f"{r:g}" for r in dm.ai_ranges_v) or "none"
                out.append(f"{what}: range_v {i.range_v} V is not an input range of the {dm.name} (offers +-{offered} V)")
        learn = channel(self.learn_line, "learn line", ("ctr", "port"))
        out += self._device_problems()

        drive = {(o.node, t) for o in self.outputs for t in (("free", "clamped") if o.twin == "both" else (o.twin,))}
        count: dict[tuple[str, str], int] = {}
        for o in self.outputs:
            for t in ("free", "clamped") if o.twin == "both" else (o.twin,):
                count[(o.node, t)] = count.get((o.node, t), 0) + 1
        for (node, twin), n in sorted(count.items()):
            if n > 1:
                out.append(f"node {node}: driven by {n} outputs on the {twin} twin")
        reads = {(i.node, i.twin) for i in self.inputs}
        for s in net.sources:
            name = net.nodes[s]
            for twin in ("free", "clamped"):
                if (name, twin) not in drive:
                    out.append(f"source {name}: no output drives it on the {twin} twin")
        for t in net.targets:
            name = net.nodes[t]
            if (name, "free") not in reads:
                out.append(f"target {name}: no input reads it on the free twin")
            if (name, "clamped") not in drive:
                out.append(f"target {name}: no output clamps it on the clamped twin")
            if (name, "free") in drive:
                out.append(f"target {name}: an output drives it on the free twin, which must float")
        role_ok = set(net.nodes[i] for i in np.r_[net.sources, net.targets])
        for o in self.outputs:
            if o.node in nodes and o.node not in role_ok:
                out.append(f"output {o.channel}: node {o.node} is neither a source nor a target")

        names = {o.channel for o in self.outputs}
        safe = {o.channel: o.safe_v for o in self.outputs}
        for c in self.cross_limits:
            for ch in (c.a, c.b):
                if ch not in names:
                    out.append(f"cross limit {c.a} - {c.b}: {ch} is not an output channel")
            if not c.max_diff_v > 0:
                out.append(f"cross limit {c.a} - {c.b}: max_diff_v must be positive, got {c.max_diff_v}")
            elif c.a in safe and c.b in safe and not abs(safe[c.a] - safe[c.b]) <= c.max_diff_v:
                out.append(f"cross limit {c.a} - {c.b}: the safe values {safe[c.a]:g} V and {safe[c.b]:g} V differ "
                           f"by {abs(safe[c.a] - safe[c.b]):g} V, more than max_diff_v {c.max_diff_v:g} V (the open, "
                           f"the safe state and a watchdog expiry write them)")

        edges_of: dict[int, list[int]] = {}
        for addr, edge in self.boards.items():
            if addr not in BOARD_ADDRESSES:
                out.append(f"board {addr}: bus address must be 1..247")
            if not 0 <= edge < net.n_edges:
                out.append(f"board {addr}: edge {edge} does not exist (network {net.name} has edges 0..{net.n_edges - 1})")
            edges_of.setdefault(edge, []).append(addr)
        for e in range(net.n_edges):
            a, b = net.nodes[net.edges[e, 0]], net.nodes[net.edges[e, 1]]
            addrs = edges_of.get(e, [])
            if not addrs:
                out.append(f"edge {e} ({a}-{b}): no board")
            elif len(addrs) > 1:
                out.append(f"edge {e} ({a}-{b}): boards {', '.join(map(str, sorted(addrs)))} all claim it")
        if self.edge_kind not in ("mosfet", "digipot"):
            out.append(f"edge_kind must be mosfet or digipot, got {self.edge_kind!r}")

        t = self.timing
        if not t.settle_s > 0:
            out.append(f"timing.settle_s must be positive, got {t.settle_s}")
        if not t.sample_rate_hz > 0:
            out.append(f"timing.sample_rate_hz must be positive, got {t.sample_rate_hz}")
        else:
            out += self._rate_problems()
        if not t.n_average >= 1:
            out.append(f"timing.n_average must be at least 1, got {t.n_average}")
        if not 0 < t.pulse_s <= 1.0:
            out.append(f"timing.pulse_s must be in (0, 1] s, got {t.pulse_s}")
        elif learn is not None and "/ctr" in self.learn_line and t.pulse_s < learn.co_min_pulse_s:
            out.append(f"timing.pulse_s {t.pulse_s:g} s is shorter than the {learn.name}'s shortest counter "
                       f"pulse {learn.co_min_pulse_s:g} s (two ticks of its {learn.counter_timebase_hz:g} Hz timebase)")
        if not t.watchdog_s > 0:
            out.append(f"timing.watchdog_s must be positive, got {t.watchdog_s}")
        else:
            for dev, covers in self.hardware_watchdog().items():
                dm = models.MODELS[self.daq_devices[dev]]
                if covers is not None and not t.watchdog_s <= dm.watchdog_max_s:
                    out.append(f"timing.watchdog_s {t.watchdog_s:g} s exceeds the {dm.name}'s longest watchdog "
                               f"timeout {dm.watchdog_max_s:.4g} s on {dev}")
            if t.sample_rate_hz > 0 and t.n_average >= 1:
                step_s = 2 * t.settle_s + t.n_average / t.sample_rate_hz + t.pulse_s
                if step_s > t.watchdog_s / 2:
                    out.append(f"timing: one step takes {step_s:.4g} s (settle twice, {t.n_average} samples at "
                               f"{t.sample_rate_hz:g} Hz, the pulse), more than half the watchdog's "
                               f"{t.watchdog_s:g} s")
        for role, inst in (("smu", self.smu), ("dmm", self.dmm), ("psu", self.psu)):
            if inst is not None and inst.kind not in INSTRUMENT_KINDS[role]:
                out.append(f"{role}: kind must be one of {', '.join(INSTRUMENT_KINDS[role])}, got {inst.kind!r}")
        return out

    def _device_problems(self) -> list[str]:
        """More channels of a kind than a device has (each extra channel is named too), and
        outputs spread over several devices."""
        out = []
        ao_devices = list(dict.fromkeys(_device(o.channel) for o in self.outputs
                                        if _device(o.channel) in self.daq_devices))
        if len(ao_devices) > 1:
            out.append(f"outputs: on devices {', '.join(ao_devices)}; the outputs are one task, and NI-DAQmx cannot "
                       f"time a task across devices on demand (error -201444), so put every output on one device")
        for dev, name in self.daq_devices.items():
            dm = models.MODELS.get(name)
            if dm is None:
                continue
            n_ao = sum(1 for o in self.outputs if _device(o.channel) == dev)
            n_ai = sum(1 for i in self.inputs if _device(i.channel) == dev)
            if n_ao > dm.n_ao:
                out.append(f"daq device {dev}: the wiring uses {n_ao} analog outputs, the {dm.name} has {dm.n_ao}")
            if n_ai > dm.n_ai:
                out.append(f"daq device {dev}: the wiring uses {n_ai} analog inputs, the {dm.name} has {dm.n_ai} "
                           f"(single-ended)")
        return out

    def _rate_problems(self) -> list[str]:
        """The shared sample clock against every device's input and output rates."""
        out = []
        rate = self.timing.sample_rate_hz
        for dev, name in self.daq_devices.items():
            dm = models.MODELS.get(name)
            if dm is None:
                continue
            n_ai = sum(1 for i in self.inputs if _device(i.channel) == dev)
            if n_ai and dm.n_ai and rate > dm.ai_max_rate_hz(n_ai):
                if n_ai == 1:
                    out.append(f"timing.sample_rate_hz {rate:g} Hz x 1 input exceeds the {dm.name}'s "
                               f"{dm.ai_single_rate_hz:g} S/s single-channel input rate on {dev}")
                else:
                    out.append(f"timing.sample_rate_hz {rate:g} Hz x {n_ai} inputs exceeds the {dm.name}'s "
                               f"{dm.ai_rate_hz:g} S/s aggregate input rate on {dev} ({rate * n_ai:g} S/s asked; "
                               f"{dm.ai_single_rate_hz:g} S/s is for one input alone)")
            if dm.n_ao and any(_device(o.channel) == dev for o in self.outputs) and rate > dm.ao_rate_hz:
                out.append(f"timing.sample_rate_hz {rate:g} Hz exceeds the {dm.name}'s {dm.ao_rate_hz:g} S/s "
                           f"output update rate on {dev}")
        return out

    # -- the watchdog ----------------------------------------------------------------------------
    def guarded_outputs(self) -> dict[str, tuple[str, ...]]:
        """Device -> the kinds of output this wiring has on it that must go safe when the host
        stops: ``"ao"`` (analog outputs) and ``"do"`` (a digital learn line, which keeps its
        level). A counter learn line is left out: its pulse is finite and ends low in
        hardware. Devices with neither map to ``()``."""
        kinds: dict[str, tuple[str, ...]] = {}
        for dev in self.daq_devices:
            has = []
            if any(_device(o.channel) == dev for o in self.outputs):
                has.append("ao")
            if "/port" in self.learn_line and _device(self.learn_line) == dev:
                has.append("do")
            kinds[dev] = tuple(has)
        return kinds

    def hardware_watchdog(self) -> dict[str, str | None]:
        """Device -> what its hardware watchdog guards in this wiring: ``"ao"``, ``"do"``,
        ``"ao+do"``, or None when nothing (no output there, or a watchdog that does not cover
        it: the X Series one takes no analog output states). What a device's watchdog covers
        is in its :class:`~instruments.daq.models.DaqModel`; an unknown model covers nothing."""
        out: dict[str, str | None] = {}
        for dev, kinds in self.guarded_outputs().items():
            dm = models.MODELS.get(self.daq_devices[dev])
            covered = [k for k in kinds if dm is not None and k in dm.watchdog_covers]
            out[dev] = "+".join(covered) or None
        return out

    def host_guarded(self) -> dict[str, tuple[str, ...]]:
        """Device -> the kinds of output on it that no hardware watchdog guards, so only the
        host's safety layer drives them safe; only devices with such outputs are listed."""
        covered = self.hardware_watchdog()
        out = {}
        for dev, kinds in self.guarded_outputs().items():
            left = tuple(k for k in kinds if k not in (covered[dev] or "").split("+"))
            if left:
                out[dev] = left
        return out

    def host_guarded_summary(self) -> str | None:
        """What only the host guards, one phrase for a log or a run file, e.g. ``"the analog
        outputs of Dev1 (USB-6343)"``; None when a hardware watchdog guards every output."""
        words = {"ao": "analog outputs", "do": "digital learn line"}
        parts = [f"the {' and '.join(words[k] for k in kinds)} of {dev} ({self.daq_devices[dev]})"
                 for dev, kinds in self.host_guarded().items()]
        return "; ".join(parts) or None

    def ao_write_s(self) -> float:
        """The time of one software-timed write of every output (s): the slowest output
        device's :attr:`~instruments.daq.models.DaqModel.ao_write_s` (an estimate: about 1 ms
        over USB, 10 us on PCIe and PXIe), 1 ms for a model the table does not know."""
        times = [getattr(models.MODELS.get(self.daq_devices.get(_device(o.channel))), "ao_write_s",
                         models.USB_WRITE_S) for o in self.outputs]
        return max(times, default=models.USB_WRITE_S)

    # -- derived -------------------------------------------------------------------------------
    @property
    def ao_channels(self) -> tuple[str, ...]:
        return tuple(o.channel for o in self.outputs)

    @property
    def ai_channels(self) -> tuple[str, ...]:
        return tuple(i.channel for i in self.inputs)

    def layout(self) -> Layout:
        """The step's index arrays; ValueError listing the problems if the wiring is unsound."""
        problems = self.problems()
        if problems:
            raise ValueError(f"wiring {self.name} is unsound: " + "; ".join(problems))
        net = self.network
        src_pos = {net.nodes[s]: k for k, s in enumerate(net.sources)}
        tgt_pos = {net.nodes[t]: k for k, t in enumerate(net.targets)}
        source_ao, source_of = [], []
        clamp_ao = np.zeros(len(tgt_pos), np.int64)
        free_ai = np.zeros(len(tgt_pos), np.int64)
        for j, o in enumerate(self.outputs):
            if o.node in src_pos:
                source_ao.append(j)
                source_of.append(src_pos[o.node])
            elif o.node in tgt_pos and o.twin == "clamped":
                clamp_ao[tgt_pos[o.node]] = j
        for j, i in enumerate(self.inputs):
            if i.node in tgt_pos and i.twin == "free":
                free_ai[tgt_pos[i.node]] = j
        col = lambda a: np.array([getattr(o, a) for o in self.outputs], float)  # noqa: E731
        return Layout(
            len(self.outputs), len(self.inputs), np.array(source_ao, np.int64), np.array(source_of, np.int64),
            clamp_ao, free_ai, col("safe_v"), col("min_v"), col("max_v"), col("max_step_v"),
        )

    def board_edges(self) -> tuple[np.ndarray, np.ndarray]:
        """(addresses, edges): the boards in address order and the edge each one carries."""
        addrs = np.array(sorted(self.boards), np.int64)
        return addrs, np.array([self.boards[a] for a in addrs], np.int64)


# -- the way to the safe state --------------------------------------------------------------


def safe_path(limits, held_v: np.ndarray) -> np.ndarray:
    """The writes (M, N) that take outputs holding ``held_v`` (V) to their safe values, each
    within every limit of ``limits`` (an :class:`instruments.safety.Limits`): its
    :meth:`~instruments.safety.Limits.ramp`, a straight line, pulled inside the per-channel
    limits where ``held_v`` lies outside them; the last row is the safe values exactly. Both
    DAQs (the NI driver and the simulated one) open and go safe along it.

    Raises:
        DaqError: naming the write and the channel when a step would break a limit (the
            outputs hold a value farther outside their limits than one ramp step), or when
            the ramp would take more writes than the safety layer allows.
    """
    held_v = np.asarray(held_v, dtype=np.float64)
    try:
        path = np.clip(limits.ramp(held_v, limits.safe_v), limits.min_v, limits.max_v)
    except ValueError as e:  # the safety layer's LimitError: a ramp of too many writes
        raise DaqError(f"no ramp to the safe values: {e}") from None
    path[-1] = limits.safe_v
    prev = held_v
    for k, row in enumerate(path):
        problem = limits.violation(row, prev)
        if problem is not None:
            raise DaqError(f"no ramp to the safe values from {np.array2string(held_v, precision=4)} V: "
                           f"write {k + 1} of {len(path)}: {problem}")
        prev = row
    return path


# -- built-in benches ----------------------------------------------------------------------


NODE_MAX_V = {"mosfet": 0.45, "digipot": 1.0}
"""The node voltage range of each kind of bench (V): Gen-2 nodes stay below 0.45 V."""


def bench_for(network: Network, edge_kind: str = "mosfet", node_max_v: float | None = None,
              name: str | None = None) -> Wiring:
    """A bench's wiring for any network (its roles say what is wired), as the built-in
    benches are wired: a PXIe chassis with a PXIe-6738 (32 outputs) in slot 2 and a PXIe-6363
    (inputs, counters) in slot 3; each source on one output wired to both twins, each target
    clamped by one output and read by one input (+-1 V range); boards at addresses 1..E in
    edge order; outputs limited to 0..``node_max_v`` (V; default by edge kind, see
    :data:`NODE_MAX_V`)."""
    ao, ai = "PXI1Slot2", "PXI1Slot3"
    node_max_v = NODE_MAX_V[edge_kind] if node_max_v is None else node_max_v
    name = name or f"{network.name}-sim"
    outputs, inputs = [], []
    for s in network.sources:
        outputs.append(Output(f"{ao}/ao{len(outputs)}", network.nodes[s], "both", 0.0, node_max_v, 0.0, node_max_v))
    for t in network.targets:
        outputs.append(Output(f"{ao}/ao{len(outputs)}", network.nodes[t], "clamped", 0.0, node_max_v, 0.0, node_max_v))
        inputs.append(Input(f"{ai}/ai{len(inputs)}", network.nodes[t], "free", 1.0))
    return Wiring(
        name=name,
        network=network,
        daq_devices={ao: "PXIe-6738", ai: "PXIe-6363"},
        outputs=tuple(outputs),
        inputs=tuple(inputs),
        learn_line=f"{ai}/ctr0",
        boards={e + 1: e for e in range(network.n_edges)},
        edge_kind=edge_kind,
        timing=Timing(settle_s=1e-3, sample_rate_hz=100e3, n_average=10, pulse_s=100e-6, watchdog_s=2.0),
        smu=Instrument("sim", "SIM::SMU"),
        dmm=Instrument("sim", "SIM::DMM"),
        psu=Instrument("sim", "SIM::PSU", {"channel": 1, "voltage_v": 5.0, "current_limit_a": 0.5}),
    )


def gen1_grid() -> Network:
    """The Gen-1-style network: a 4 x 4 open grid (16 nodes, 24 edges) with the Iris roles:
    four inputs on the top row, ground at ``r1c0``, three targets on the bottom row."""
    net = square_grid(4, 4, name="gen1-grid")
    return net.with_roles(
        sources=["r0c0", "r0c1", "r0c2", "r0c3"], targets=["r3c0", "r3c1", "r3c2"], ground="r1c0"
    )


DEFAULT_WIRINGS = ("gen2", "gen1")


def default_wiring(name: str = "gen2") -> Wiring:
    """A built-in bench: ``"gen2"`` (the MOSFET lattice, nodes 0..0.45 V) or ``"gen1"`` (the
    digipot grid, nodes 0..1 V)."""
    if name == "gen2":
        return bench_for(gen2_lattice(), "mosfet", name="gen2-sim")
    if name == "gen1":
        return bench_for(gen1_grid(), "digipot", name="gen1-sim")
    raise ValueError(f"unknown built-in wiring {name!r}; known: {', '.join(DEFAULT_WIRINGS)}")
