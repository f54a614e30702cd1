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

Units: state units (taps, or gate uV).
"""

from __future__ import annotations

from dataclasses import dataclass

from .constants import I32_MAX, I32_MIN

__all__ = ["Actuator"]


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
