"""A DAQ seen through its calibration: the node gets the voltage asked for, a reading is the
node's true voltage.

Every analog channel has its own gain and offset. :class:`DaqCorrections` holds them as
plain arrays in the DAQ's channel order (a calibration routine fits them, see
``calibration/daq.py``; the instruments layer never imports it). :class:`CalibratedDaq`
wraps any :class:`~instruments.interfaces.BoundaryDaq`: it writes the raw value that makes
each output put the requested voltage on its wire, ``raw = (v - offset) / gain``, and turns
each reading back into volts at the node, ``v = (reading - offset) / gain``.

It sits *under* the safety layer, ``SafeDaq(CalibratedDaq(daq, corrections), limits)``, so
the limits are checked on the voltages the nodes will see; :func:`apply_daq_calibration`
rebuilds a rig's DAQ that way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .daq import models
from .interfaces import BoundaryDaq, DaqError
from .safety import SafeDaq


@dataclass(frozen=True, eq=False)
class DaqCorrections:
    """Gain and offset of every analog channel: ``wire = gain * raw + offset`` for an
    output, ``reading = gain * node + offset`` for an input.

    Attributes:
        ao_channels, ai_channels: channel names, in the DAQ's order.
        ao_gain, ai_gain: (N,) dimensionless, finite and positive (1.0 for a perfect channel).
        ao_offset_v, ai_offset_v: (N,) offsets (V).
    """

    ao_channels: tuple[str, ...]
    ao_gain: np.ndarray
    ao_offset_v: np.ndarray
    ai_channels: tuple[str, ...]
    ai_gain: np.ndarray
    ai_offset_v: np.ndarray

    def __post_init__(self) -> None:
        for kind in ("ao", "ai"):
            channels = tuple(getattr(self, f"{kind}_channels"))
            object.__setattr__(self, f"{kind}_channels", channels)
            for name in (f"{kind}_gain", f"{kind}_offset_v"):
                arr = np.array(getattr(self, name), dtype=float)
                if arr.shape != (len(channels),):
                    raise ValueError(f"{name} must have one value per {kind} channel ({len(channels)}), got shape {arr.shape}")
                if not np.all(np.isfinite(arr)):
                    bad = channels[int(np.argmin(np.isfinite(arr)))]
                    raise ValueError(f"{bad}: {name} is not finite")
                arr.setflags(write=False)
                object.__setattr__(self, name, arr)
            gain = getattr(self, f"{kind}_gain")
            if np.any(gain <= 0):
                bad = int(np.argmax(gain <= 0))
                raise ValueError(f"{channels[bad]}: gain {gain[bad]} is not positive; a channel with that gain "
                                 "cannot be corrected")

    @classmethod
    def identity(cls, ao_channels, ai_channels) -> "DaqCorrections":
        """No correction: every gain 1, every offset 0."""
        n_ao, n_ai = len(ao_channels), len(ai_channels)
        return cls(tuple(ao_channels), np.ones(n_ao), np.zeros(n_ao), tuple(ai_channels), np.ones(n_ai), np.zeros(n_ai))

    def raw_outputs(self, values_v) -> np.ndarray:
        """What to write so that each output carries ``values_v`` (V); the last axis is the
        output channels, e.g. (N,) or (B, N)."""
        return (np.asarray(values_v, float) - self.ao_offset_v) / self.ao_gain

    def true_inputs(self, readings_v) -> np.ndarray:
        """The node voltages (V) behind raw ``readings_v``; the last axis is the inputs."""
        return (np.asarray(readings_v, float) - self.ai_offset_v) / self.ai_gain


class CalibratedDaq:
    """A :class:`~instruments.interfaces.BoundaryDaq` that writes corrected raw values and
    returns corrected readings; same channels, same operations as the DAQ it wraps.

    Args:
        daq: the raw DAQ.
        corrections: its channels' gains and offsets (the same channels, the same order).
        ao_range_v: (N, 2) each output's device range (V): a raw value outside it is refused
            with :class:`~instruments.interfaces.DaqError` naming the channel, before the
            DAQ sees anything.

    The safe state is the raw DAQ's (what its hardware watchdog drives too), not corrected.
    """

    def __init__(self, daq: BoundaryDaq, corrections: DaqCorrections, ao_range_v):
        if tuple(daq.ao_channels) != corrections.ao_channels or tuple(daq.ai_channels) != corrections.ai_channels:
            raise ValueError(f"corrections are for outputs {corrections.ao_channels} and inputs "
                             f"{corrections.ai_channels}; the DAQ has {tuple(daq.ao_channels)} and "
                             f"{tuple(daq.ai_channels)}")
        rng = np.asarray(ao_range_v, float)
        if rng.shape != (len(corrections.ao_channels), 2):
            raise ValueError(f"ao_range_v must be ({len(corrections.ao_channels)}, 2), got shape {rng.shape}")
        self.daq = daq
        self.corrections = corrections
        self.ao_channels = daq.ao_channels
        self.ai_channels = daq.ai_channels
        self._lo, self._hi = rng[:, 0].copy(), rng[:, 1].copy()

    def _raw(self, values_v) -> np.ndarray:
        values = np.asarray(values_v, float)
        raw = self.corrections.raw_outputs(values)
        bad = ~((raw >= self._lo) & (raw <= self._hi))  # NaN is bad too
        if np.any(bad):
            at = np.argwhere(bad)[0]
            j = int(at[-1])
            row = "" if values.ndim == 1 else f" (row {int(at[0])})"
            raise DaqError(f"{self.ao_channels[j]}{row}: {values[tuple(at)]:.6g} V needs a raw value of "
                           f"{raw[tuple(at)]:.6g} V after calibration, outside the device's output range "
                           f"{self._lo[j]:g}..{self._hi[j]:g} V")
        return raw

    def write(self, values_v) -> None:
        self.daq.write(self._raw(values_v))

    def read(self, n_samples: int = 1) -> np.ndarray:
        return self.corrections.true_inputs(self.daq.read(n_samples))

    def pulse(self, width_s: float) -> None:
        self.daq.pulse(width_s)

    def write_and_read(self, values_v, settle_s: float, n_samples: int) -> np.ndarray:
        return self.corrections.true_inputs(self.daq.write_and_read(self._raw(values_v), settle_s, n_samples))

    def write_and_pulse(self, values_v, settle_s: float, width_s: float) -> None:
        self.daq.write_and_pulse(self._raw(values_v), settle_s, width_s)

    def write_and_read_many(self, values_v, settle_s: float, n_samples: int) -> np.ndarray:
        return self.corrections.true_inputs(self.daq.write_and_read_many(self._raw(values_v), settle_s, n_samples))

    def safe_state(self) -> None:
        self.daq.safe_state()

    def identity(self) -> str:
        return self.daq.identity()

    def settings(self) -> dict:
        """The raw DAQ's settings (see :class:`~instruments.interfaces.Configured`)."""
        settings = getattr(self.daq, "settings", None)
        return {} if settings is None else dict(settings())

    def close(self) -> None:
        self.daq.close()


def raw_daq(daq) -> BoundaryDaq:
    """The DAQ under the safety layer and any calibration of ``daq``."""
    inner = daq.daq if isinstance(daq, SafeDaq) else daq
    return inner.daq if isinstance(inner, CalibratedDaq) else inner


def output_ranges(wiring) -> np.ndarray:
    """(N, 2) the device's output range (V) of each of the wiring's outputs."""
    devices = wiring.daq_devices
    return np.array([models.model(devices[ch.split("/")[0]]).ao_range_v for ch in wiring.ao_channels], float)


def apply_daq_calibration(rig, corrections: DaqCorrections | None) -> None:
    """Put ``corrections`` between the rig's safety layer and its DAQ:
    ``rig.daq = SafeDaq(CalibratedDaq(raw, corrections), rig.limits)``, replacing any
    calibration applied before; None goes back to the raw DAQ. The safety layer keeps what
    the outputs hold, so the ramp limit still compares against the present outputs."""
    held = rig.daq.held_v
    inner = raw_daq(rig.daq)
    if corrections is not None:
        inner = CalibratedDaq(inner, corrections, output_ranges(rig.wiring))
    safe = SafeDaq(inner, rig.limits)
    safe._held[:] = held
    rig.daq = safe
