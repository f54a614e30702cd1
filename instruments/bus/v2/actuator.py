"""A board's closed-loop actuator: the state it reaches for a target, and the carried residue.

``firmware/protocol/PROTOCOL.md``, "State, actuator and residue". A board keeps a *target*
(the learned value, within its limits) and drives its actuator towards it; the actuator
reaches the grid point nearest the target, the grid being ``state_min + k * resolution``
within the limits (a digipot's taps, resolution 1; a gate voltage set by a DAC or charge
pulses and read back by the ADC, resolution in uV). What it reports as ``state`` is what it
reached, read back; ``residue = target - state`` is the part of the learned change that the
actuator could not take yet. It is carried, not lost: the next learn adds to the target, so
many steps each smaller than the resolution add up to a move.

Rounding to the nearest grid point takes halves up (towards state_max), so the residue lies
in ``[-resolution / 2, resolution / 2)``; above the top grid point (when the range is not a
whole number of steps) the top grid point is reached and the residue is below one step.

A MOSFET board's gate also has an *actuator calibration* (:class:`GateCalibration`,
protocol 2.1, "Actuator calibration"): the slope of its gate, in nV per microsecond of
charge or discharge pulse, at five gate voltages, and the gate's leak in uV/s. The board
times its pulses from the slopes and restores what the leak took between learns; it starts
from its part values (*nominal*) until ``calibrate_actuator`` measures them.

Units: state units (taps, or gate uV); slopes nV/us; leak uV/s.
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import GATE_CAL_POINTS, I32_MAX, I32_MIN

__all__ = ["Actuator", "GateCalibration", "CAL_POINTS_UV"]

#: The gate voltages (uV) at which a board measures its slopes, and those of the nominal table.
CAL_POINTS_UV = (1_000_000, 2_000_000, 3_000_000, 4_000_000, 5_000_000)


@dataclass(frozen=True)
class Actuator:
    """An ideal quantising actuator of ``resolution`` state units over the board's limits.

    ``offset`` is a read-back error (state units) a faulty actuator adds to what it reaches,
    for the tests that show a reply reports the reached state, not the commanded one.
    """

    state_min: int
    state_max: int
    resolution: int = 1
    offset: int = 0

    def __post_init__(self) -> None:
        if not I32_MIN <= self.state_min <= self.state_max <= I32_MAX:
            raise ValueError("need state_min <= state_max within i32")
        if not 1 <= self.resolution <= self.state_max - self.state_min + 1:
            raise ValueError(f"resolution must be 1..{self.state_max - self.state_min + 1}, got {self.resolution}")

    @property
    def top(self) -> int:
        """The highest grid point within the limits."""
        return self.state_min + (self.state_max - self.state_min) // self.resolution * self.resolution

    def clip(self, target: int) -> int:
        """``target`` clipped to the limits."""
        return max(self.state_min, min(self.state_max, int(target)))

    def reach(self, target: int) -> int:
        """The state reached for ``target`` (within the limits): the nearest grid point,
        halves up, never above :attr:`top`; plus the read-back ``offset``."""
        steps = (self.clip(target) - self.state_min + self.resolution // 2) // self.resolution
        return min(self.state_min + steps * self.resolution, self.top) + self.offset


@dataclass(frozen=True)
class GateCalibration:
    """A MOSFET gate's calibration, as ``calibrate_actuator`` and ``read_actuator_calibration``
    report it: ``charge_gate_uv`` (increasing) and ``charge_nv_per_us``, the gate's dV/dt in
    nV/us while charging at those gate voltages; the same for discharging; ``leak_uv_per_s``,
    the gate's drift with no pulse (negative: it discharges by itself). Five points each."""

    charge_gate_uv: tuple[int, ...]
    charge_nv_per_us: tuple[int, ...]
    discharge_gate_uv: tuple[int, ...]
    discharge_nv_per_us: tuple[int, ...]
    leak_uv_per_s: int = 0

    def __post_init__(self) -> None:
        for name in ("charge_gate_uv", "charge_nv_per_us", "discharge_gate_uv", "discharge_nv_per_us"):
            v = tuple(int(x) for x in getattr(self, name))
            if len(v) != GATE_CAL_POINTS or not all(I32_MIN <= x <= I32_MAX for x in v):
                raise ValueError(f"{name} needs {GATE_CAL_POINTS} i32 values, got {v}")
            object.__setattr__(self, name, v)
        for name in ("charge_gate_uv", "discharge_gate_uv"):
            v = getattr(self, name)
            if any(b <= a for a, b in zip(v, v[1:])):
                raise ValueError(f"{name} must increase, got {v}")
        if not I32_MIN <= int(self.leak_uv_per_s) <= I32_MAX:
            raise ValueError(f"leak_uv_per_s out of i32: {self.leak_uv_per_s}")
        object.__setattr__(self, "leak_uv_per_s", int(self.leak_uv_per_s))

    @classmethod
    def from_rc(cls, rc_us: int, rail_uv: int, leak_uv_per_s: int = 0,
                points_uv: tuple[int, ...] = CAL_POINTS_UV) -> "GateCalibration":
        """The table of an ideal RC gate: dV/dt = (rail - V) / RC charging, V / RC
        discharging (integer nV/us, floored), at ``points_uv``."""
        return cls(tuple(points_uv), tuple((rail_uv - v) * 1000 // rc_us for v in points_uv),
                   tuple(points_uv), tuple(v * 1000 // rc_us for v in points_uv), leak_uv_per_s)

    def fields(self) -> dict:
        """The reply fields (without ``status`` and ``source``)."""
        return {"charge_gate_uv": list(self.charge_gate_uv), "charge_nv_per_us": list(self.charge_nv_per_us),
                "discharge_gate_uv": list(self.discharge_gate_uv),
                "discharge_nv_per_us": list(self.discharge_nv_per_us), "leak_uv_per_s": self.leak_uv_per_s}

    @classmethod
    def from_fields(cls, fields: dict) -> "GateCalibration":
        """The calibration a reply's fields give (``status`` and ``source`` ignored)."""
        return cls(tuple(fields["charge_gate_uv"]), tuple(fields["charge_nv_per_us"]),
                   tuple(fields["discharge_gate_uv"]), tuple(fields["discharge_nv_per_us"]),
                   fields["leak_uv_per_s"])

    def slope_nv_per_us(self, gate_uv: int, charging: bool) -> int:
        """The slope at ``gate_uv``, linear between the points and beyond the ends (floored
        division), never below 1 nV/us; the rule a board's pulse timing follows."""
        xs = self.charge_gate_uv if charging else self.discharge_gate_uv
        ys = self.charge_nv_per_us if charging else self.discharge_nv_per_us
        i = 0
        while i < len(xs) - 2 and gate_uv > xs[i + 1]:
            i += 1
        s = ys[i] + (ys[i + 1] - ys[i]) * (gate_uv - xs[i]) // (xs[i + 1] - xs[i])
        return max(s, 1)
