"""Edge devices at a temperature other than their nominal one.

Every device model of :mod:`instruments.sim.edges` gives its parameters at the nominal
temperature ``T_NOMINAL_C`` = 27 C (300.15 K), SPICE's default ``TNOM``. :func:`at_temperature`
derives the same devices at a temperature ``T`` (both twins of every edge see the same one):

* n-MOSFET (:class:`~instruments.sim.edges.Mosfet`):

  - threshold voltage ``V_T(T) = V_T(T0) + k_VT (T - T0)``, ``k_VT = -2 mV/K``: the
    threshold of an n-MOSFET falls as the Fermi potential and the bandgap shrink with
    temperature, typically by 1 to 4 mV/K depending on the doping and the oxide (Sze and
    Ng, *Physics of Semiconductor Devices*, 3rd ed., Wiley 2007, ch. 6, "MOSFETs"; -2 mV/K
    is the usual figure of a small-signal part);
  - transconductance factor ``S(T) = S(T0) (T / T0)^-1.5``: S is proportional to the
    channel mobility, which lattice (phonon) scattering makes fall as ``T^-3/2`` (Sze and
    Ng, ch. 1, mobility; SPICE's level-1 MOSFET scales ``KP`` by ``(T / TNOM)^-1.5``, the
    ngspice manual's MOSFET temperature dependence);
  - subthreshold slope ``n (k T / q) ln 10`` volts per decade, proportional to the absolute
    temperature (Sze and Ng, ch. 6, subthreshold region).

  Hotter, the two first act against each other: the conductance
  ``S (V_G - V_T - Vbar)`` rises where the overdrive is below ``-k_VT T / 1.5`` (about
  0.4 V at room temperature, the zero-temperature-coefficient point) and falls above it.

* digital potentiometer (:class:`~instruments.sim.edges.Digipot`): the resistor string's
  end-to-end temperature coefficient, ``R(T) = R(T0) (1 + a (T - T0))`` with ``a = +300
  ppm/K``, the typical figure of the X9C103/X9C503/X9C104 parts over -40 to +85 C (Xicor
  X9C102/103/104/503 data sheet, "Temperature Coefficient"); the conductance divides by
  the same factor. The wiper switch's own resistance rises faster (about doubling over
  100 K, Analog Devices FAQ "What is the tempco of the digital potentiometer?"), which a
  string of log-spaced taps with no separate wiper resistance does not model.

* a fixed resistor (:class:`~instruments.sim.edges.Resistor`) keeps its conductance (a
  metal-film resistor's 50 ppm/K is left out); a :class:`~instruments.sim.edges.MixedEdges`
  device has each of its parts at the temperature.

At the nominal temperature the device is returned as it is, so a bench at 27 C is the bench
with no temperature given, to the last bit. Units: C (K for the absolute temperatures of the
power laws), V, A/V^2.
"""

from __future__ import annotations

import dataclasses

from .edges import Digipot, EdgeDevice, MixedEdges, Mosfet, Resistor

__all__ = ["T_NOMINAL_C", "TEMPERATURE_RANGE_C", "VT_TEMPCO_V_PER_K", "MOBILITY_EXPONENT",
           "DIGIPOT_TEMPCO_PER_K", "at_temperature", "kelvin"]

#: The temperature at which the device models' parameters hold (C): SPICE's TNOM.
T_NOMINAL_C = 27.0
#: The temperatures a simulated bench may be at (C): the parts' rated range, -40 to +125 C.
TEMPERATURE_RANGE_C = (-40.0, 125.0)
#: Threshold voltage temperature coefficient of the n-MOSFETs (V/K).
VT_TEMPCO_V_PER_K = -2e-3
#: Exponent of the mobility's (and so S's) power law in the absolute temperature.
MOBILITY_EXPONENT = -1.5
#: End-to-end resistance temperature coefficient of the digipots (1/K): +300 ppm/K.
DIGIPOT_TEMPCO_PER_K = 300e-6


def kelvin(temperature_c: float) -> float:
    """The absolute temperature (K) of ``temperature_c`` (C)."""
    return float(temperature_c) + 273.15


def at_temperature(device: EdgeDevice, temperature_c: float, nominal_c: float = T_NOMINAL_C) -> EdgeDevice:
    """``device`` (its parameters at ``nominal_c``, C) at ``temperature_c`` (C, within
    :data:`TEMPERATURE_RANGE_C`): a new device of the same kind, limits and update bias (see
    the module's description); ``device`` itself at the nominal temperature.

    Raises:
        ValueError: a temperature outside the range, or a device kind with no model here.
    """
    lo, hi = TEMPERATURE_RANGE_C
    if not lo <= temperature_c <= hi:
        raise ValueError(f"temperature {temperature_c!r} C is outside {lo:g}..{hi:g} C")
    if temperature_c == nominal_c:
        return device
    dt_k = float(temperature_c) - float(nominal_c)
    ratio = kelvin(temperature_c) / kelvin(nominal_c)
    if isinstance(device, Mosfet):
        sub = None if device.subthreshold_v is None else device.subthreshold_v * ratio
        return dataclasses.replace(device, s_a_per_v2=device.s_a_per_v2 * ratio ** MOBILITY_EXPONENT,
                                   vt_v=device.vt_v + VT_TEMPCO_V_PER_K * dt_k, subthreshold_v=sub)
    if isinstance(device, Digipot):
        return dataclasses.replace(device, gain=device.gain / (1.0 + DIGIPOT_TEMPCO_PER_K * dt_k))
    if isinstance(device, Resistor):
        return device
    if isinstance(device, MixedEdges):
        parts = tuple((at_temperature(dev, temperature_c, nominal_c), idx) for dev, idx in device.parts)
        # the mixture's own bias only: each part brings its own again
        own = device.update_bias.copy()
        for dev, idx in device.parts:
            own[idx] -= dev.update_bias
        return MixedEdges(device.n_edges, update_bias=own, parts=parts)
    raise ValueError(f"no temperature model for {device.kind} edges")
