"""What each supported NI DAQ device can do: its channels, ranges, resolution, rates, counters
and watchdog (:class:`DaqModel`, the table :data:`MODELS`).

The wiring check (:meth:`instruments.wiring.Wiring.problems`) refuses a channel a device
does not have, limits wider than its ranges, a sample rate it cannot reach and a watchdog
timeout beyond its maximum; the NI-DAQmx driver (:mod:`instruments.daq.nidaq`) configures
only the watchdog a device has; the simulated DAQ (:mod:`instruments.sim.simdaq`) takes its
ranges and resolution from here; the nidaqmx fake of the tests (``tests/fake_nidaqmx.py``)
reports these channels and limits as NI-DAQmx would. So the simulated bench, the fake and
the check can only do what the real device can.

Sources, by family (section names as in NI's documents; the figures that matter most were
read again from the X Series User Manual, the rest are from the devices' specifications):

- X Series (USB-6343, PCIe/USB/PXIe-6363): *X Series User Manual* (NI 370784), ch. 4
  "Analog Input", Table 4-5 "Analog Input Rates for MIO X Series Devices" (6341/6343: 500 kS/s
  single channel and aggregate; 6361/6363: 2 MS/s single channel, 1 MS/s aggregate); ch. 6
  "Digital I/O", "Watchdog Timer" (the timer is configurable up to (2^32 - 1) x 8 ns, about
  34 s, and "can be set for all DIO and PFI lines": not for the analog outputs); ch. 7
  "Counters" (four 32-bit counters, 100 MHz timebase, pulses of at least two timebase ticks).
  *NI 6341/6343 Specifications* and *NI 6361/6363 Specifications*: "Analog Input" (32
  single-ended / 16 differential channels, 16 bits, the input ranges), "Analog Output" (4
  channels, 16 bits, +-10 V, the maximum update rate of one channel), "Digital I/O/PFI"
  (port 0: 32 lines, hardware-timed; PFI 0..7 = port 1, PFI 8..15 = port 2: static).
- AO Series (PXIe-6738): *PXIe-6738/6739 Specifications*, "Analog Output" (32 channels,
  16 bits, +-10 V, 1 MS/s), "Digital I/O/PFI" (P0.0..1 and PFI 0..7 = port 1), "Counters"
  (four); *PXIe-6738/6739 User Manual*, "Watchdog Timer": the AO Series watchdog takes
  analog output expiration states (the X Series one does not), with the same (2^32 - 1) x 8 ns
  counter.
- USB-6001: *USB-6001/6002/6003 Specifications*: 8 single-ended / 4 differential inputs,
  14 bits, +-10 V only, 20 kS/s aggregate; 2 outputs, 14 bits, +-10 V, 5 kS/s; 13 DIO (P0.0..7,
  P1.0..3, P2.0), software-timed; one 32-bit edge counter (no pulse output); no watchdog.
- USB-6211: *NI USB-621x Specifications* and the *M Series User Manual*: 16 single-ended /
  8 differential inputs, 16 bits, +-0.2/1/5/10 V, 250 kS/s aggregate; 2 outputs, 16 bits,
  +-10 V, 250 kS/s; 4 DI (port 0) and 4 DO (port 1, lines 0..3), software-timed; two 32-bit
  counters, 80 MHz timebase; no watchdog.

Two figures are estimates, not specifications, and are said so where they are used: the time
of one software-timed (on-demand) analog write, about 1 ms over USB (the USB round trip)
and about 10 us on PCIe and PXIe (a register write and the call's overhead); and the power-up
value of an NI analog output, 0 V (the specifications give a power-on state within a few mV
of 0 V).
"""

from __future__ import annotations

from dataclasses import dataclass

WATCHDOG_KINDS = ("ao", "do")
"""What a hardware watchdog can take an expiration state for: analog outputs (``"ao"``) and
digital output lines, PFI included (``"do"``)."""

STC3_WATCHDOG_MAX_S = (2**32 - 1) * 8e-9
"""The longest watchdog timeout of the X Series and AO Series timing engine (s): its 32-bit
counter at 8 ns a tick (X Series User Manual, "Watchdog Timer"), 34.36 s."""

SLOWEST_COUNTER_TIMEBASE_HZ = 100e3
"""The slowest internal counter timebase of X and M Series devices (Hz): it sets the longest
pulse a 32-bit counter can time, (2^32 - 1) / 100 kHz, about 11.9 hours."""

USB_WRITE_S = 1e-3
"""Time of one software-timed analog write over USB (s): an estimate (the bus round trip)."""

PCI_WRITE_S = 10e-6
"""Time of one software-timed analog write on PCIe or PXIe (s): an estimate."""


@dataclass(frozen=True)
class DaqModel:
    """One NI DAQ device model, as its specifications give it.

    Attributes:
        name: NI's product name, e.g. ``"USB-6343"``.
        family: ``"X Series"``, ``"AO Series"``, ``"M Series"`` or ``"USB-600x"``.
        bus: ``"USB"``, ``"PCIe"`` or ``"PXIe"``.
        n_ao: number of analog outputs, ``ao0`` .. ``ao{n_ao-1}``.
        ao_range_v: the analog output range (V), symmetric ``(-x, x)``.
        ao_bits, ai_bits: converter resolution (bits).
        ao_rate_hz: the fastest output update rate of one channel (Hz).
        n_ai: number of analog inputs referenced single-ended, ``ai0`` .. ``ai{n_ai-1}``
            (half as many differential pairs).
        ai_ranges_v: the analog input ranges (V, half-widths) the device offers.
        ai_rate_hz: the fastest aggregate sample rate over several inputs (S/s): a task of
            N > 1 inputs samples each at most ``ai_rate_hz / N``.
        ai_single_rate_hz: the fastest sample rate of one input alone (S/s).
        do_lines: (port, number of lines) of every port whose lines can be outputs, e.g.
            ``((0, 32), (1, 8), (2, 8))``: ``port0/line0`` .. ``port0/line31``, and the PFI
            lines as ports 1 and 2.
        hw_timed_do_ports: the ports whose lines take a sample clock and a start trigger
            (hardware-timed digital output); the others are software-timed only.
        counters: number of counters; ``n_co`` of them can generate pulses,
            ``ctr0`` .. ``ctr{n_co-1}``.
        counter_timebase_hz: the fastest counter timebase (Hz); a pulse's high and low times
            are at least two of its ticks.
        watchdog_covers: what the hardware watchdog takes expiration states for, a subset of
            :data:`WATCHDOG_KINDS`; empty for a device without a watchdog.
        watchdog_max_s: the longest watchdog timeout (s); 0 without a watchdog.
        ao_power_up_v: what the analog outputs hold after power-up (V).
        ao_write_s: the time of one software-timed analog write (s), an estimate.
    """

    name: str
    family: str
    bus: str
    n_ao: int
    ao_range_v: tuple[float, float]
    ao_bits: int
    ao_rate_hz: float
    n_ai: int
    ai_ranges_v: tuple[float, ...]
    ai_bits: int
    ai_rate_hz: float
    ai_single_rate_hz: float
    do_lines: tuple[tuple[int, int], ...] = ()
    hw_timed_do_ports: tuple[int, ...] = ()
    counters: int = 4
    n_co: int = 4
    counter_timebase_hz: float = 100e6
    watchdog_covers: tuple[str, ...] = ()
    watchdog_max_s: float = 0.0
    ao_power_up_v: float = 0.0
    ao_write_s: float = USB_WRITE_S

    # -- ranges and resolution ---------------------------------------------------------------
    def ai_range_for(self, max_abs_v: float) -> float:
        """The narrowest input range (V, half-width) that holds ``max_abs_v``."""
        for r in sorted(self.ai_ranges_v):
            if max_abs_v <= r:
                return r
        widest = max(self.ai_ranges_v, default=0.0)
        raise ValueError(f"{self.name}: no input range holds {max_abs_v} V (widest is {widest} V)")

    def ao_lsb_v(self) -> float:
        """One output code (V)."""
        lo, hi = self.ao_range_v
        return (hi - lo) / 2**self.ao_bits

    def ai_lsb_v(self, range_v: float) -> float:
        """One input code (V) on the range of half-width ``range_v``."""
        return 2 * range_v / 2**self.ai_bits

    # -- rates -----------------------------------------------------------------------------
    def ai_max_rate_hz(self, n_channels: int) -> float:
        """The fastest sample clock (Hz) of an acquisition of ``n_channels`` inputs: the
        single-channel rate for one, the aggregate rate shared out for more; 0 for none."""
        if n_channels < 1 or self.n_ai == 0:
            return 0.0
        if n_channels == 1:
            return self.ai_single_rate_hz
        return self.ai_rate_hz / n_channels

    # -- counters ----------------------------------------------------------------------------
    @property
    def co_min_pulse_s(self) -> float:
        """The shortest high or low time of a counter pulse (s): two ticks of the fastest
        timebase (X Series User Manual, "Counters"; M Series alike)."""
        return 2.0 / self.counter_timebase_hz

    @property
    def co_max_pulse_s(self) -> float:
        """The longest high, low or delay time of a counter pulse (s): a 32-bit count of the
        slowest timebase."""
        return (2**32 - 1) / SLOWEST_COUNTER_TIMEBASE_HZ

    # -- physical channels --------------------------------------------------------------------
    def physical_channels(self, device: str, kind: str) -> tuple[str, ...]:
        """Every physical channel of ``kind`` on ``device``, named as NI-DAQmx names them:
        ``"ao"`` (``Dev1/ao0``), ``"ai"`` (``Dev1/ai0``), ``"co"`` (counters that generate
        pulses, ``Dev1/ctr0``) or ``"do"`` (digital output lines, ``Dev1/port0/line0``)."""
        if kind == "ao":
            return tuple(f"{device}/ao{i}" for i in range(self.n_ao))
        if kind == "ai":
            return tuple(f"{device}/ai{i}" for i in range(self.n_ai))
        if kind == "co":
            return tuple(f"{device}/ctr{i}" for i in range(self.n_co))
        if kind == "do":
            return tuple(f"{device}/port{p}/line{k}" for p, n in self.do_lines for k in range(n))
        raise ValueError(f"unknown channel kind {kind!r}; known: ao, ai, co, do")

    def describe(self, kind: str) -> str:
        """What the device has of ``kind``, for a message: e.g. ``"ao0..ao3"``, ``"none"``."""
        if kind == "ao":
            return f"ao0..ao{self.n_ao - 1}" if self.n_ao else "no analog outputs"
        if kind == "ai":
            return f"ai0..ai{self.n_ai - 1}" if self.n_ai else "no analog inputs"
        if kind == "co":
            return f"ctr0..ctr{self.n_co - 1}" if self.n_co else "no counter that can generate a pulse"
        if kind == "do":
            if not self.do_lines:
                return "no digital output lines"
            return ", ".join(f"port{p}/line0..{n - 1}" if n > 1 else f"port{p}/line0" for p, n in self.do_lines)
        raise ValueError(f"unknown channel kind {kind!r}; known: ao, ai, co, do")

    def hw_timed_line(self, line: str) -> bool:
        """True when the digital line ``line`` (``Dev/portP/lineL``) can be hardware-timed."""
        try:
            port = int(line.split("/port", 1)[1].split("/", 1)[0])
        except (IndexError, ValueError):
            return False
        return port in self.hw_timed_do_ports


_X_DIO = ((0, 32), (1, 8), (2, 8))
_X_WATCHDOG = {"watchdog_covers": ("do",), "watchdog_max_s": STC3_WATCHDOG_MAX_S}
_R6363 = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0)
_R6343 = (0.2, 1.0, 5.0, 10.0)


def _x6363(name: str, bus: str) -> DaqModel:
    return DaqModel(name, "X Series", bus, n_ao=4, ao_range_v=(-10.0, 10.0), ao_bits=16, ao_rate_hz=2.86e6,
                    n_ai=32, ai_ranges_v=_R6363, ai_bits=16, ai_rate_hz=1e6, ai_single_rate_hz=2e6,
                    do_lines=_X_DIO, hw_timed_do_ports=(0,), **_X_WATCHDOG,
                    ao_write_s=USB_WRITE_S if bus == "USB" else PCI_WRITE_S)


MODELS: dict[str, DaqModel] = {
    m.name: m
    for m in (
        DaqModel("USB-6343", "X Series", "USB", n_ao=4, ao_range_v=(-10.0, 10.0), ao_bits=16, ao_rate_hz=900e3,
                 n_ai=32, ai_ranges_v=_R6343, ai_bits=16, ai_rate_hz=500e3, ai_single_rate_hz=500e3,
                 do_lines=_X_DIO, hw_timed_do_ports=(0,), **_X_WATCHDOG, ao_write_s=USB_WRITE_S),
        _x6363("PCIe-6363", "PCIe"),
        _x6363("USB-6363", "USB"),
        _x6363("PXIe-6363", "PXIe"),
        DaqModel("PXIe-6738", "AO Series", "PXIe", n_ao=32, ao_range_v=(-10.0, 10.0), ao_bits=16, ao_rate_hz=1e6,
                 n_ai=0, ai_ranges_v=(), ai_bits=16, ai_rate_hz=0.0, ai_single_rate_hz=0.0,
                 do_lines=((0, 2), (1, 8)), hw_timed_do_ports=(0,), watchdog_covers=("ao", "do"),
                 watchdog_max_s=STC3_WATCHDOG_MAX_S, ao_write_s=PCI_WRITE_S),
        DaqModel("USB-6001", "USB-600x", "USB", n_ao=2, ao_range_v=(-10.0, 10.0), ao_bits=14, ao_rate_hz=5e3,
                 n_ai=8, ai_ranges_v=(10.0,), ai_bits=14, ai_rate_hz=20e3, ai_single_rate_hz=20e3,
                 do_lines=((0, 8), (1, 4), (2, 1)), counters=1, n_co=0),
        DaqModel("USB-6211", "M Series", "USB", n_ao=2, ao_range_v=(-10.0, 10.0), ao_bits=16, ao_rate_hz=250e3,
                 n_ai=16, ai_ranges_v=_R6343, ai_bits=16, ai_rate_hz=250e3, ai_single_rate_hz=250e3,
                 do_lines=((1, 4),), counters=2, n_co=2, counter_timebase_hz=80e6),
    )
}


def model(name: str) -> DaqModel:
    """The model called ``name``; ValueError naming the known ones otherwise."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(f"unknown DAQ model {name!r}; known: {', '.join(sorted(MODELS))}") from None
