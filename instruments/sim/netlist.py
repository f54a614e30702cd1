"""SPICE netlists in and out: a network, its edge devices, their state and the fixed voltages.

**Reading** (:func:`parse_netlist`, :func:`read_netlist`). The subset of SPICE a twin network
needs, with SPICE's conventions and ngspice's answers:

* the first line is the title (whatever it says); ``*`` starts a comment line, ``;`` and
  ``$`` (after a blank) an inline comment; a line starting with ``+`` continues the previous
  card; element letters, dot-cards, keywords and node names are case-insensitive (a node keeps
  the spelling of its first mention); ``.end`` ends the netlist;
* numbers take SPICE's scale suffixes (``f p n u m k meg g t``, and ``mil``) followed by any
  unit letters, which are ignored: ``10kOhm`` is 1e4, ``1.5V`` is 1.5, ``1MEG`` is 1e6 and
  ``1m`` is 1e-3 (see :func:`parse_number`);
* ``.param``, ``{expr}`` / ``'expr'`` (``+ - * /``, parentheses, numbers, parameters; no
  ``eval``), ``.include`` (relative to the including file; cycles refused by name) and
  ``.subckt`` ... ``.ends`` with ``X`` instances (nested, with parameters; element ``R1`` of
  instance ``X1`` is named ``R.X1.R1``, its node ``n`` is ``X1.n``): see
  :mod:`instruments.sim.netlist_deck`;
* ``R<name> a b value [m=..]``: a resistor edge (state: its conductance, S);
* ``M<name> d g s b model [W=..] [L=..] [M=..]``: a level-1 NMOS edge from ``d`` to ``s``
  (state: its gate voltage, V), with ``.model <model> NMOS (LEVEL=1 KP=.. VTO=.. LAMBDA=..)``:
  the device is :class:`~instruments.sim.edges.Mosfet` with ``subthreshold_v=None``,
  ``S = KP W / L`` (times the multiplier ``M``) and ``lambda_per_v = LAMBDA``. Parameters that
  would change the DC current otherwise (``GAMMA``, ``RD``, ``RS``, ...) must be zero or
  absent; capacitances and noise parameters are ignored. The gate must be held by voltage
  sources: its voltage is the state. As ngspice does, GMIN (``.options gmin``, default
  1e-12 S) joins each drain and source to the bulk (:attr:`Netlist.shunt_s`), so a node held
  only by cut-off transistors settles where ngspice puts it instead of nowhere;
* ``V<name> p n [DC] value``: a DC voltage source. A node held by a source to ground ``0``
  (``gnd`` is the same node) is a *fixed* node of the network (role ``source``). A source
  between two other nodes is allowed only as a *gate source*: one of its nodes is a gate
  node outside the network, the other a node whose voltage is fixed;
* ``I<name> p n [DC] value``: a DC current source, the current (A) flowing from ``p``
  through the source to ``n`` (:attr:`Netlist.inject_a`); both nodes must be network nodes
  or fixed;
* ``C`` elements are open circuits at DC and ignored; ``.temp 27`` (and ``.options temp=27``)
  is accepted and any other temperature refused (the simulator is at 27 degC); ``.op``,
  other ``.options``, analysis and output cards, and ``.control`` ... ``.endc`` blocks are
  ignored.

Not accepted, each with one error naming the file, the line and the card: diodes, PMOS and
every other device but R, C, V, I and level-1 NMOS, nonzero ``GAMMA`` (no body effect),
``RD``, ``RS``, ``RSH``, ``LD``, MOSFET levels other than 1, ``.lib``, ``.func``,
``.global``, functions in expressions, transient-only sources.

The network's nodes are the ground and every terminal of an edge, in order of first mention;
nodes outside it (gate nodes) are reported in :attr:`Netlist.gate_v`. Every error is a
:class:`NetlistError` whose message names the file, the line and the offending text.

The modules: :mod:`.netlist_base` (the error, numbers, :class:`Netlist`), :mod:`.netlist_expr`
(expressions), :mod:`.netlist_deck` (lines to flat cards), :mod:`.netlist_read` (cards to a
network), :mod:`.netlist_write` (a network to a netlist).

**Writing** (:func:`export_netlist`). Any network with a resistor, digital potentiometer
(written as its resistance at the tap), MOSFET (level-1) or mixed device, its state, its fixed
voltages and a twin index becomes a netlist that ngspice runs with ``ngspice -b``: it holds
tight ``.options`` and an ``.op`` card and prints every node voltage to 15 digits. Comment lines
``* twinrig: node ...`` and ``* twinrig: edge ...`` (SPICE ignores them; this reader uses them)
record what SPICE cannot say: node order, names that are not valid SPICE names, roles
(targets, a ground node not called ``0``), positions, edge names, and a conductance that
``1 / R`` would not give back to the last bit. Reading an exported netlist therefore gives
back the same network, state and fixed voltages.

Units: volts, siemens, amperes, ohms, A/V^2, 1/V.
"""

from __future__ import annotations

from pathlib import Path

from .netlist_base import (  # noqa: F401  (the public names of the netlist modules)
    SCALE_SUFFIXES, SPICE_GMIN_S, SPICE_OPTIONS, TEMPERATURE_C, Netlist, NetlistError, parse_number,
)
from .netlist_expr import ExpressionError, evaluate  # noqa: F401
from .netlist_read import ACCEPTED, _Reader
from .netlist_write import export_netlist, spice_node_names, write_netlist  # noqa: F401

__all__ = [
    "ACCEPTED", "ExpressionError", "evaluate", "Netlist", "NetlistError", "SCALE_SUFFIXES", "SPICE_GMIN_S", "SPICE_OPTIONS",
    "TEMPERATURE_C", "export_netlist", "parse_netlist", "parse_number", "read_netlist",
    "spice_node_names", "write_netlist",
]


def read_netlist(path: str | Path) -> Netlist:
    """Read the netlist in file ``path`` (see :func:`parse_netlist`); ``.include`` paths are
    relative to its folder.

    Raises:
        OSError: the file cannot be read.
        NetlistError: it is not a netlist this module reads.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise NetlistError(f"not a text file ({exc.reason} at byte {exc.start})", str(path)) from None
    return _Reader(text, str(path), path.parent).read()


def parse_netlist(text: str, source: str = "<netlist>", base_dir: str | Path | None = None) -> Netlist:
    """Read a SPICE netlist (the text of a file) into a :class:`Netlist`.

    Args:
        text: the netlist; its first line is the title.
        source: the file name, used in error messages.
        base_dir: the folder ``.include`` paths are relative to (default: the current one).

    Raises:
        NetlistError: the netlist is malformed or uses what this module does not read; the
            message names the file, the line and the offending card.
    """
    return _Reader(text, source, None if base_dir is None else Path(base_dir)).read()
