"""Twin-pair back ends built on the compiled kernels of :mod:`instruments.sim.kernels`."""

from __future__ import annotations


def for_device(network, device, fixed, targets):
    """The compiled back end for ``device``, or None where no kernel applies."""
    return None
