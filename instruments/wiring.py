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
from .sim.network import Network, gen2_lattice, square_grid

TWINS = ("both", "free", "clamped")
INSTRUMENT_KINDS = {
    "smu": ("keithley2450", "sim"),
    "dmm": ("keysight34465a", "sim"),
    "psu": ("keysight_e36312a", "sim"),
}
BOARD_ADDRESSES = range(1, 248)
_CHANNEL = re.compile(r"^(?P<device>[A-Za-z0-9_]+)/(?P<kind>ao|ai|ctr|port\d+/line)(?P<n>\d+)$")


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
            return models.MODELS.get(self.daq_devices[dev])

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
                if dm.n_ao == 0 or o.min_v < lo or o.max_v > hi:
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
        channel(self.learn_line, "learn line", ("ctr", "port"))

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
        for c in self.cross_limits:
            for ch in (c.a, c.b):
                if ch not in names:
                    out.append(f"cross limit {c.a} - {c.b}: {ch} is not an output channel")
            if not c.max_diff_v > 0:
                out.append(f"cross limit {c.a} - {c.b}: max_diff_v must be positive, got {c.max_diff_v}")

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
            for dev, name in self.daq_devices.items():
                dm = models.MODELS.get(name)
                n_ai = sum(1 for i in self.inputs if i.channel.startswith(dev + "/"))
                if dm is not None and n_ai and t.sample_rate_hz * n_ai > dm.ai_rate_hz:
                    out.append(
                        f"timing.sample_rate_hz {t.sample_rate_hz:g} Hz x {n_ai} inputs exceeds the "
                        f"{dm.name}'s {dm.ai_rate_hz:g} S/s on {dev}"
                    )
        if not t.n_average >= 1:
            out.append(f"timing.n_average must be at least 1, got {t.n_average}")
        if not 0 < t.pulse_s <= 1.0:
            out.append(f"timing.pulse_s must be in (0, 1] s, got {t.pulse_s}")
        if not t.watchdog_s > 0:
            out.append(f"timing.watchdog_s must be positive, got {t.watchdog_s}")
        elif t.sample_rate_hz > 0 and t.n_average >= 1:
            step_s = 2 * t.settle_s + t.n_average / t.sample_rate_hz + t.pulse_s
            if step_s > t.watchdog_s / 2:
                out.append(f"timing: one step takes {step_s:.4g} s (settle twice, {t.n_average} samples at "
                           f"{t.sample_rate_hz:g} Hz, the pulse), more than half the watchdog's {t.watchdog_s:g} s")
        for role, inst in (("smu", self.smu), ("dmm", self.dmm), ("psu", self.psu)):
            if inst is not None and inst.kind not in INSTRUMENT_KINDS[role]:
                out.append(f"{role}: kind must be one of {', '.join(INSTRUMENT_KINDS[role])}, got {inst.kind!r}")
        return out

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
