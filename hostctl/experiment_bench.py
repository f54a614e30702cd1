"""The experiment file's ``[bench]`` table: the simulated bench's imperfections.

::

    [bench]
    daq_errors = "realistic"      # realistic | ideal: the DAQ channels' gain and offset errors
    seed = 7                      # the simulated bench's own seed (default the experiment's)
    twin_mismatch = 0.01          # relative difference of the two twins of every edge, 0..1
    edge_spread = 0.05            # relative spread of the device parameters edge to edge, 0..1
    update_bias = 1e-4            # device units (gate V or taps) added by every update; a
                                  # number or one per edge, |bias| at most the state's span
    adc_offset_uv = 200.0         # spread (standard deviation, uV) of the boards' ADC offsets,
                                  # one per board terminal, drawn from the bench's seed; 0..1e5
    adc_noise_uv = 50.0           # the boards' ADC noise per reading (standard deviation, uV)
    gate_leak_s = 3600.0          # MOSFET gates relax with this time constant (s), 1e-3..1e9,
    gate_rest_v = 0.0             # towards this voltage (V, 0..5.5; default 0 V, ground)
    temperature_c = 35.0          # the bench's temperature (C, -40..125; default 27 C, the
                                  # devices' nominal: off)
    node_capacitance_f = 1e-9     # every node's capacitance to ground (F, 1e-15..1e-3)

Every field is off (0, or ``daq_errors = "realistic"`` as before) unless given. The spread
and the mismatch scale the default device's S and V_T (MOSFET) or gain (digipot) from the
bench's seed; they and ``update_bias`` shape the bench's device, so a network file with its
own ``[device]`` (which gives every edge's parameters and bias) refuses them by name.

The gate leak (:mod:`instruments.sim.retention`) acts over the simulated bench's own clock
(its DAQ operations and bus traffic, ``lab_time_s`` in the run file): every gate relaxes as
``V_rest + (V_G - V_rest) exp(-t / gate_leak_s)`` between the bench's steps, reads and
evaluations, and a board's state (its gate in uV) follows; digipot networks refuse it by
name (a digipot holds its tap).

The temperature (:mod:`instruments.sim.temperature`) derives both twins' devices from their
nominal parameters at 27 C: a MOSFET's V_T by -2 mV/K, its S by (T / T0)^-1.5 and its
subthreshold slope in proportion to T (K); a digipot's resistance by +300 ppm/K. A network
file's ``[device]`` is at 27 C too, and is taken to the bench's temperature the same way.

With a node capacitance (:mod:`instruments.sim.settling`) the twins settle in time after
every write of the DAQ (the transient solver of :mod:`instruments.sim.transient`), and a
read or a learn pulse after the wiring's ``settle_s`` sees the nodes where they are: short
of their DC voltages if the network has not settled to within 1 nV by then. A network that
has settled reads its DC solution exactly (the bench without a capacitance, to the last
bit); only the looks at an unsettled network cost a transient.

A temperature drift is not modelled on the simulated bench yet: it is refused by name
rather than accepted and ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from instruments.sim.edges import DIGIPOT_TAPS, GEN2_GATE_MAX_V, GEN2_GATE_MIN_V
from instruments.sim.settling import NODE_CAPACITANCE_RANGE_F
from instruments.sim.temperature import T_NOMINAL_C, TEMPERATURE_RANGE_C
from instruments.tomlspec import Number, Seed, SpecProblem, Strict, shown

#: Names of imperfections the simulated bench does not model yet; refused with a message saying so.
TRANSIENT_ONLY = ("temperature_drift_c_per_h",)
#: Other names a scientist may write for a field, and what to write instead.
MISNAMED = {"gate_leak": "give the gates' leak as its time constant, gate_leak_s (s)",
            "gate_leak_v_per_s": "the gates' leak is exponential: give its time constant, gate_leak_s (s)",
            "gate_leak_tau_s": "write gate_leak_s (the leak's time constant, s)",
            "temperature": "give the bench's temperature in C as temperature_c",
            "temperature_k": "give the bench's temperature in C as temperature_c",
            "node_capacitance": "give every node's capacitance to ground in F as node_capacitance_f"}
#: The shortest and longest gate leak time constants (s): 1 ms (a bare gate node) to 30 years.
GATE_LEAK_S_RANGE = (1e-3, 1e9)
#: The largest ADC offset spread and noise of the boards (uV): 0.1 V, twice a Gen-2 node's drop.
ADC_UV_MAX = 1e5


class BenchSpec(Strict):
    daq_errors: Literal["realistic", "ideal"] = "realistic"
    seed: Seed | None = None
    twin_mismatch: Number = Field(0.0, ge=0, le=1)
    edge_spread: Number = Field(0.0, ge=0, le=1)
    update_bias: Number | list[Number] = 0.0
    adc_offset_uv: Number = Field(0.0, ge=0, le=ADC_UV_MAX)
    adc_noise_uv: Number = Field(0.0, ge=0, le=ADC_UV_MAX)
    gate_leak_s: Number | None = Field(None, ge=GATE_LEAK_S_RANGE[0], le=GATE_LEAK_S_RANGE[1])
    gate_rest_v: Number | None = Field(None, ge=0, le=GEN2_GATE_MAX_V)
    temperature_c: Number | None = Field(None, ge=TEMPERATURE_RANGE_C[0], le=TEMPERATURE_RANGE_C[1])
    node_capacitance_f: Number | None = Field(None, ge=NODE_CAPACITANCE_RANGE_F[0], le=NODE_CAPACITANCE_RANGE_F[1])


def refuse_transient(data: dict) -> None:
    """SpecProblem naming a ``[bench]`` field the simulated bench does not model yet, or one
    written under another name than the bench's."""
    bench = data.get("bench")
    if not isinstance(bench, dict):
        return
    for name in bench:
        if name in TRANSIENT_ONLY:
            raise SpecProblem(f"bench.{name}", "needs the transient solver, which hostctl train does not run "
                                               "yet; remove it (it would be ignored)")
        if name in MISNAMED:
            raise SpecProblem(f"bench.{name}", f"{shown(bench[name])}: {MISNAMED[name]}")


@dataclass(frozen=True)
class BenchSettings:
    """The simulated bench's imperfections from ``[bench]`` (all off by default).

    Attributes:
        twin_mismatch: relative difference of the two twins of each edge (0..1).
        edge_spread: relative spread of the device parameters from edge to edge (0..1).
        update_bias: (E,) device units (gate V or taps) every update adds, per edge.
        adc_offset_uv: standard deviation of the boards' ADC offsets (uV), drawn per board
            terminal from the bench's seed.
        adc_noise_uv: the boards' ADC noise per reading (standard deviation, uV).
        gate_leak_s: the time constant (s) with which the MOSFET gates relax, or None (no leak).
        gate_rest_v: the voltage (V) they relax towards.
        temperature_c: the bench's temperature (C), or None for the devices' nominal 27 C.
        node_capacitance_f: every node's capacitance to ground (F), or None (none: the
            network settles at once).
    """

    twin_mismatch: float = 0.0
    edge_spread: float = 0.0
    update_bias: np.ndarray | None = None
    adc_offset_uv: float = 0.0
    adc_noise_uv: float = 0.0
    gate_leak_s: float | None = None
    gate_rest_v: float = 0.0
    temperature_c: float | None = None
    node_capacitance_f: float | None = None

    @property
    def shapes_device(self) -> bool:
        """True when a setting is built into the device model."""
        return bool(self.twin_mismatch or self.edge_spread or
                    (self.update_bias is not None and np.any(self.update_bias)))

    def as_dict(self) -> dict:
        """JSON-able values, for reports and run metadata."""
        bias = None if self.update_bias is None else self.update_bias.tolist()
        return {"twin_mismatch": self.twin_mismatch, "edge_spread": self.edge_spread, "update_bias": bias,
                "adc_offset_uv": self.adc_offset_uv, "adc_noise_uv": self.adc_noise_uv,
                "gate_leak_s": self.gate_leak_s, "gate_rest_v": self.gate_rest_v,
                "temperature_c": self.temperature_c, "node_capacitance_f": self.node_capacitance_f}


def bench_settings(spec: BenchSpec, n_edges: int, edge_kind: str, file_device: bool,
                   network_file: str | None) -> BenchSettings:
    """The :class:`BenchSettings` of ``spec`` for a network of ``n_edges`` ``edge_kind``
    edges; ``file_device``: the network file gives its own ``[device]``."""
    bias = spec.update_bias
    arr = np.broadcast_to(np.asarray(bias, float), (n_edges,)) if np.ndim(bias) == 0 else np.asarray(bias, float)
    if arr.shape != (n_edges,):
        raise SpecProblem("bench.update_bias", f"expected a number or {n_edges} values (one per edge), got {arr.size}")
    span = GEN2_GATE_MAX_V - GEN2_GATE_MIN_V if edge_kind == "mosfet" else DIGIPOT_TAPS - 1
    bad = np.flatnonzero(~(np.abs(arr) <= span))
    if bad.size:
        unit = "V of gate" if edge_kind == "mosfet" else "taps"
        where = "bench.update_bias" if np.ndim(bias) == 0 else f"bench.update_bias[{bad[0]}]"
        raise SpecProblem(where, f"{arr[bad[0]]} {unit} per update is more than the state's span {span}")
    if file_device:
        for name, value in (("twin_mismatch", spec.twin_mismatch), ("edge_spread", spec.edge_spread),
                            ("update_bias", float(np.abs(arr).max()) if arr.size else 0.0)):
            if value:
                raise SpecProblem(f"bench.{name}", f"the network file {network_file} has its own [device], which "
                                                   f"gives every edge's parameters and update bias: set them there, "
                                                   f"not in both")
    if spec.gate_rest_v is not None and spec.gate_leak_s is None:
        raise SpecProblem("bench.gate_rest_v", f"{spec.gate_rest_v} V is where leaking gates relax to: it needs "
                                               f"gate_leak_s (the leak's time constant, s)")
    if spec.gate_leak_s is not None and edge_kind != "mosfet":
        raise SpecProblem("bench.gate_leak_s", f"{spec.gate_leak_s} s: {edge_kind} edges have no gate to leak "
                                               f"(the gate leak is of MOSFET edges)")
    return BenchSettings(float(spec.twin_mismatch), float(spec.edge_spread), arr.copy() if np.any(arr) else None,
                         float(spec.adc_offset_uv), float(spec.adc_noise_uv),
                         None if spec.gate_leak_s is None else float(spec.gate_leak_s),
                         0.0 if spec.gate_rest_v is None else float(spec.gate_rest_v),
                         None if spec.temperature_c in (None, T_NOMINAL_C) else float(spec.temperature_c),
                         None if spec.node_capacitance_f is None else float(spec.node_capacitance_f))


def adc_offsets_uv(settings: BenchSettings, n_boards: int, seed: int) -> np.ndarray | float:
    """The boards' ADC offsets (uV, (n_boards, 4) in board order: free a, free b, clamped a,
    clamped b) drawn from ``seed`` (the bench's) with the spread of ``settings``; 0.0 when
    the spread is 0. Its own stream: the rest of the bench is the same with or without it."""
    if not settings.adc_offset_uv:
        return 0.0
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xADC]))
    return rng.normal(0.0, settings.adc_offset_uv, (n_boards, 4))
