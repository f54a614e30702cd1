"""The edge bus: the host side of the RS-485 protocol to the edge boards.

:mod:`instruments.bus.protocol` is the reference implementation of
``firmware/protocol/PROTOCOL-1.md`` (frame codec, payloads, rule arithmetic and a pure-Python
reference board); the golden vectors in ``firmware/protocol/vectors/`` are generated from it.
"""

from .protocol import *  # noqa: F401,F403
from .protocol import __all__ as _protocol_all

__all__ = list(_protocol_all)
