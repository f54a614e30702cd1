"""A bench, opened: every instrument of a wiring behind its interface, outputs behind the
safety layer.

:func:`open_rig` is the one place that chooses between the real bench (NI-DAQmx, the edge
bus on a serial port, SCPI instruments through pyvisa) and the simulated one
(:class:`~instruments.sim.bench.SimBench`); everything above it sees the same :class:`Rig`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .interfaces import BoundaryDaq, EdgeBus, Multimeter, PowerSupply, SourceMeter
from .safety import Limits, SafeDaq, SafetyGuard
from .wiring import Layout, Wiring, default_wiring


@dataclass
class Rig:
    """An open bench.

    Attributes:
        wiring: what is connected to what.
        daq: the boundary DAQ, every write checked against :attr:`limits`.
        bus: the edge bus, or None when the wiring has none.
        smu, dmm, psu: the SCPI instruments, or None when absent.
        limits, layout: from the wiring.
        bench: the simulated bench behind the interfaces (None on the real bench); for
            tests and calibration proofs only, never for the controller.
    """

    wiring: Wiring
    daq: SafeDaq
    bus: EdgeBus | None = None
    smu: SourceMeter | None = None
    dmm: Multimeter | None = None
    psu: PowerSupply | None = None
    limits: Limits = None  # type: ignore[assignment]
    layout: Layout = None  # type: ignore[assignment]
    bench: object | None = None
    _closed: bool = field(default=False, repr=False)

    @property
    def simulated(self) -> bool:
        return self.bench is not None

    @property
    def psu_channel(self) -> int | None:
        inst = self.wiring.psu
        return None if inst is None else int(inst.options.get("channel", 1))

    def guard(self, **options) -> SafetyGuard:
        """The safety context of a run on this rig (see :class:`SafetyGuard`)."""
        ch = self.psu_channel
        return SafetyGuard(
            self.daq, instruments=[self.smu, self.dmm, self.psu, self.bus],
            psu=self.psu, psu_channels=() if ch is None else (ch,), **options,
        )

    def identities(self) -> dict[str, str]:
        """Who every instrument is (for the run file): role -> identity string."""
        out = {"daq": self.daq.identity()}
        for role in ("smu", "dmm", "psu"):
            inst = getattr(self, role)
            if inst is not None:
                out[role] = inst.identity()
        if self.bus is not None:
            out["bus"] = getattr(self.bus, "port_name", type(self.bus).__name__)
        return out

    def settings(self) -> dict[str, dict]:
        """What every instrument is set to, read back from it (for the run file and the
        calibration store): role -> its :meth:`~instruments.interfaces.Configured.settings`.
        An instrument that cannot tell (no ``settings``) is left out; one that fails to
        answer gets ``{"unreadable": "<the error>"}``, so a run still records that it was
        asked."""
        out: dict[str, dict] = {}
        for role in ("daq", "smu", "dmm", "psu"):
            inst = getattr(self, role)
            read = getattr(inst, "settings", None)
            if read is None:
                continue
            try:
                out[role] = dict(read())
            except Exception as exc:  # an instrument that cannot say is recorded as such
                out[role] = {"unreadable": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}
        return out

    def snapshot(self) -> dict | None:
        """What a run needs to be resumed exactly: the simulated bench's
        :meth:`~instruments.sim.bench.SimBench.save_state` (numpy arrays and plain values),
        plus ``daq_held_v``, what the safety layer knows the outputs hold (V). None on the
        real bench, whose hardware keeps its own state."""
        if self.bench is None:
            return None
        return {**self.bench.save_state(), "daq_held_v": self.daq.held_v}

    def restore(self, state: dict | None) -> None:
        """Continue from a :meth:`snapshot` of this kind of rig, on a rig opened with the same
        wiring and bench options: the simulated bench takes the saved state; on the real
        bench (None) there is nothing to restore. ValueError for a snapshot of the other kind."""
        if (state is None) != (self.bench is None):
            raise ValueError("a snapshot of the simulated bench restores only on the simulated bench, and "
                             "the real bench's (None) only on the real bench")
        if state is not None:
            held = np.asarray(state["daq_held_v"], float)
            if held.shape != self.daq.held_v.shape:
                raise ValueError(f"snapshot daq_held_v has shape {held.shape}, this rig needs {self.daq.held_v.shape}")
            self.bench.load_state(state)
            # the ramp limit compares the next write with what the outputs hold
            self.daq._held[:] = held

    def close(self) -> None:
        """Outputs safe and every instrument closed (idempotent)."""
        if not self._closed:
            self._closed = True
            self.guard().shutdown()


def _safe_instruments(wiring: Wiring, smu, psu, on_event=None) -> tuple:
    """The source-meter and the supply behind the safety layer
    (:mod:`instruments.safe_instruments`), from the wiring's options: the source-meter's
    levels 0 .. the node range of the wiring's edge boards unless ``max_v`` says less, its
    compliance the ``compliance_a`` option (default :data:`DEFAULT_SMU_COMPLIANCE_A`); the
    supply's channel at its ``voltage_v`` and ``current_limit_a`` at most."""
    from .safe_instruments import SafeSourceMeter, SafeSupply
    from .wiring import NODE_MAX_V

    if smu is not None and not isinstance(smu, SafeSourceMeter):
        options = dict(wiring.smu.options) if wiring.smu is not None else {}
        options.setdefault("compliance_a", DEFAULT_SMU_COMPLIANCE_A)
        smu = SafeSourceMeter.from_options(smu, options, max_v=NODE_MAX_V.get(wiring.edge_kind, 1.0),
                                           on_event=on_event)
    if psu is not None and not isinstance(psu, SafeSupply):
        options = dict(wiring.psu.options) if wiring.psu is not None else {}
        psu = SafeSupply.from_options(psu, options, on_event=on_event)
    return smu, psu


DEFAULT_SMU_COMPLIANCE_A = 1e-3
"""The source-meter's largest current limit (A) when the rig file gives no ``compliance_a``:
the edge calibration's default, above what a Gen-2 edge draws at its 0.45 V node range."""


def open_rig(wiring: Wiring | None = None, *, simulate: bool = False, resource_manager=None,
             instruments: dict | None = None, **bench_options) -> Rig:
    """Open the bench of ``wiring`` (the built-in Gen-2 bench when None, always simulated).

    The source-meter and the supply are put behind the safety layer
    (:class:`~instruments.safe_instruments.SafeSourceMeter`,
    :class:`~instruments.safe_instruments.SafeSupply`): an output on only after its level,
    every level within its limits and ramped, the safe state ramped down.

    Args:
        simulate: True to run the wiring on the simulated bench.
        resource_manager: the pyvisa resource manager the SCPI instruments are opened with
            (None: pyvisa's default; :func:`instruments.visa.sim_resource_manager` for the
            pyvisa-sim definitions).
        instruments: role (``"smu"``, ``"dmm"``, ``"psu"``) -> an instrument already open
            (e.g. a QCoDeS station's, through :func:`instruments.qcodes_adapters.adapt`) to
            use instead of opening the rig file's; it goes behind the safety layer like an
            opened one, and closing the rig closes it (an adapter leaves the station's
            instrument open).
        bench_options: passed to :class:`~instruments.sim.bench.SimBench` (seed, device,
            errors, faults...) when simulating.

    Raises:
        ValueError: the wiring is unsound (each problem named), an unknown role in
            ``instruments``, or a safety option out of range.
    """
    if wiring is None:
        wiring, simulate = default_wiring("gen2"), True
    given = dict(instruments or {})
    unknown = sorted(set(given) - {"smu", "dmm", "psu"})
    if unknown:
        raise ValueError(f"instruments: unknown role {', '.join(unknown)} (roles: smu, dmm, psu)")
    limits = Limits.from_wiring(wiring)
    layout = wiring.layout()
    if simulate:
        from .sim.bench import SimBench

        bench = SimBench(wiring, **bench_options)
        parts = {"smu": bench.smu, "dmm": bench.dmm, "psu": bench.psu, **given}
        smu, psu = _safe_instruments(wiring, parts["smu"], parts["psu"])
        return Rig(wiring, SafeDaq(bench.daq, limits), bench.bus, smu, parts["dmm"], psu, limits, layout, bench)
    if bench_options:
        raise ValueError(f"bench options {sorted(bench_options)} apply only to the simulated bench")
    from .daq.nidaq import NidaqDaq

    daq: BoundaryDaq = NidaqDaq(wiring)
    opened: list = []
    try:
        bus = None
        if wiring.bus_port is not None:
            from .bus.client import BusClient

            bus = BusClient(wiring.bus_port)
            opened.append(bus)
        insts = {}
        for role in ("smu", "dmm", "psu"):
            spec = getattr(wiring, role)
            if role in given:
                insts[role] = given[role]
                opened.append(given[role])
                continue
            if spec is None:
                insts[role] = None
                continue
            from .safe_instruments import driver_options
            from .visa import open_instrument

            insts[role] = open_instrument(spec.kind, spec.address, resource_manager,
                                          **driver_options(role, spec.options))
            opened.append(insts[role])
        smu, psu = _safe_instruments(wiring, insts["smu"], insts["psu"])
    except BaseException:
        SafetyGuard(daq, instruments=opened).shutdown()
        raise
    return Rig(wiring, SafeDaq(daq, limits), bus, smu, insts["dmm"], psu, limits, layout)
