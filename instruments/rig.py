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


def open_rig(wiring: Wiring | None = None, *, simulate: bool = False, resource_manager=None,
             **bench_options) -> Rig:
    """Open the bench of ``wiring`` (the built-in Gen-2 bench when None, always simulated).

    Args:
        simulate: True to run the wiring on the simulated bench.
        resource_manager: the pyvisa resource manager the SCPI instruments are opened with
            (None: pyvisa's default; :func:`instruments.visa.sim_resource_manager` for the
            pyvisa-sim definitions).
        bench_options: passed to :class:`~instruments.sim.bench.SimBench` (seed, device,
            errors, faults...) when simulating.

    Raises:
        ValueError: the wiring is unsound (each problem named).
    """
    if wiring is None:
        wiring, simulate = default_wiring("gen2"), True
    limits = Limits.from_wiring(wiring)
    layout = wiring.layout()
    if simulate:
        from .sim.bench import SimBench

        bench = SimBench(wiring, **bench_options)
        return Rig(wiring, SafeDaq(bench.daq, limits), bench.bus, bench.smu, bench.dmm, bench.psu,
                   limits, layout, bench)
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
            if spec is None:
                insts[role] = None
                continue
            from .visa import open_instrument

            insts[role] = open_instrument(spec.kind, spec.address, resource_manager, **spec.options)
            opened.append(insts[role])
    except BaseException:
        SafetyGuard(daq, instruments=opened).shutdown()
        raise
    return Rig(wiring, SafeDaq(daq, limits), bus, insts["smu"], insts["dmm"], insts["psu"], limits, layout)
