"""What each supported NI DAQ model can do: output and input ranges, resolution, rates.

The wiring check refuses limits wider than the device's range, and the simulated DAQ takes
its ranges and resolution from here, so the simulated bench can only do what the real
device can.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DaqModel:
    """One DAQ model.

    Attributes:
        name: NI's product name, e.g. ``"USB-6343"``.
        ao_range_v: the analog output range (V), symmetric ``(-x, x)``.
        ai_ranges_v: the analog input ranges (V, half-widths) the device offers.
        ao_bits, ai_bits: converter resolution (bits).
        ao_rate_hz, ai_rate_hz: the fastest sample clock (Hz, aggregate for inputs).
        n_ao, n_ai: number of analog output and input channels.
        counters: number of counter channels (the learn pulse uses one).
    """

    name: str
    ao_range_v: tuple[float, float]
    ai_ranges_v: tuple[float, ...]
    ao_bits: int
    ai_bits: int
    ao_rate_hz: float
    ai_rate_hz: float
    n_ao: int
    n_ai: int
    counters: int = 4

    def ai_range_for(self, max_abs_v: float) -> float:
        """The narrowest input range (V, half-width) that holds ``max_abs_v``."""
        for r in sorted(self.ai_ranges_v):
            if max_abs_v <= r:
                return r
        raise ValueError(f"{self.name}: no input range holds {max_abs_v} V (widest is {max(self.ai_ranges_v)} V)")

    def ao_lsb_v(self) -> float:
        """One output code (V)."""
        lo, hi = self.ao_range_v
        return (hi - lo) / 2**self.ao_bits

    def ai_lsb_v(self, range_v: float) -> float:
        """One input code (V) on the range of half-width ``range_v``."""
        return 2 * range_v / 2**self.ai_bits


MODELS: dict[str, DaqModel] = {
    m.name: m
    for m in (
        DaqModel("USB-6343", (-10.0, 10.0), (0.2, 1.0, 5.0, 10.0), 16, 16, 900e3, 500e3, 4, 32),
        DaqModel("PCIe-6363", (-10.0, 10.0), (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), 16, 16, 2.86e6, 2e6, 4, 32),
        DaqModel("USB-6363", (-10.0, 10.0), (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), 16, 16, 2.86e6, 2e6, 4, 32),
        DaqModel("PXIe-6363", (-10.0, 10.0), (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0), 16, 16, 2.86e6, 2e6, 4, 32),
        DaqModel("PXIe-6738", (-10.0, 10.0), (), 16, 16, 1e6, 0.0, 32, 0),
        DaqModel("USB-6211", (-10.0, 10.0), (0.2, 1.0, 5.0, 10.0), 16, 16, 250e3, 250e3, 2, 16, 2),
    )
}


def model(name: str) -> DaqModel:
    """The model called ``name``; ValueError naming the known ones otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown DAQ model {name!r}; known: {', '.join(sorted(MODELS))}") from None
