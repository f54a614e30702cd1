"""ngspice as the referee beyond node voltages: a transient, and the sources' currents.

:func:`transient` runs ``ngspice -b -n`` on a netlist with its own ``.control`` block,
``tran TSTEP TSTOP 0 TMAX`` (``uic`` when asked: the ``.ic`` values as the start, no
operating point first) and writes the result as a binary raw file (float64, every time
point ngspice took; ngspice manual, chapter 15.3.10 ".tran", and 17 "Interactive
interpreter", ``write``). The netlist's own control blocks, ``.save`` and ``.tran`` cards are
dropped. The times are ngspice's own (its step control, at most TMAX apart); compare at other
times by interpolation.

:func:`source_currents` runs ``op`` and gives every voltage source's branch current, for the
power and energy figures (:mod:`instruments.sim.energy`).

Units: s, V, A.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import numpy as np

from .ngspice import NgspiceError, batch_deck, find_ngspice, raw_header, read_raw

__all__ = ["transient", "read_tran_raw", "source_currents"]

_RAW, _DECK = "tran.raw", "deck.cir"


def _deck(netlist: str, tstep: float, tstop: float, tmax: float, uic: bool) -> str:
    lines = netlist.splitlines() or ["netlist"]
    out = [lines[0]]
    skip = False
    for line in lines[1:]:
        word = (line.split() or [""])[0].lower()
        if skip:
            skip = word != ".endc"
            continue
        if word == ".control":
            skip = True
            continue
        if word in (".save", ".tran", ".op"):
            continue
        if word == ".end":
            break
        out.append(line)
    tran = f"tran {tstep:.12g} {tstop:.12g} 0 {tmax:.12g}" + (" uic" if uic else "")
    out += [".control", "set filetype=binary", tran, f"write {_RAW} all", "quit", ".endc", ".end"]
    return "\n".join(out) + "\n"


def read_tran_raw(data: bytes) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """(times, node -> voltages) of a binary ngspice raw file of a transient (real data)."""
    cut = data.find(b"Binary:\n")
    if cut < 0:
        raise NgspiceError("ngspice wrote no binary transient data")
    info, variables = raw_header(data[:cut])
    if "transient" not in info.get("plotname", "").lower() or "complex" in info.get("flags", "").lower():
        raise NgspiceError(f"ngspice wrote {info.get('plotname', 'no plot')!r}, not a real transient")
    n_var, n_pts = int(info["no. variables"]), int(info["no. points"])
    values = np.frombuffer(data[cut + 8: cut + 8 + 8 * n_var * n_pts], dtype=np.float64)
    if values.size != n_var * n_pts or len(variables) != n_var:
        raise NgspiceError(f"raw file holds {values.size} values for {n_pts} points of {n_var} variables")
    table = values.reshape(n_pts, n_var)
    out = {}
    for k, (name, kind) in enumerate(variables):
        low = name.lower()
        if kind == "voltage" and low.startswith("v(") and low.endswith(")"):
            out[low[2:-1]] = table[:, k].copy()
    t = table[:, 0].copy() if variables and variables[0][1] == "time" else None
    if t is None:
        raise NgspiceError("raw file has no time variable first")
    return t, out


def _run(deck: str, executable: str, timeout_s: float) -> bytes:
    """Run ``deck`` in batch mode in a temporary directory; the raw file it wrote."""
    exe = find_ngspice(executable)
    if exe is None:
        raise NgspiceError(f"ngspice not found on PATH (looked for {executable!r}); install ngspice")
    with tempfile.TemporaryDirectory(prefix="twinrig-ngspice-") as tmp:
        Path(tmp, _DECK).write_text(deck, encoding="utf-8")
        try:
            run = subprocess.run([exe, "-b", "-n", _DECK], cwd=tmp, capture_output=True, text=True,
                                 errors="replace", timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise NgspiceError(f"ngspice did not finish within {timeout_s:g} s") from None
        raw = Path(tmp, _RAW)
        if run.returncode != 0 or not raw.exists():
            said = [ln.strip() for ln in (run.stderr or run.stdout).splitlines() if ln.strip()][:6]
            raise NgspiceError(f"ngspice failed (exit status {run.returncode}): " + (" | ".join(said) or "no output"))
        return raw.read_bytes()


def transient(netlist: str, tstep_s: float, tstop_s: float, tmax_s: float | None = None, *,
              uic: bool = False, executable: str = "ngspice",
              timeout_s: float = 120.0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The transient of ``netlist`` (its text): ngspice's times (s) and every node's voltage
    at them (V, keyed by ngspice's lower-case node name; ground left out).

    Raises:
        NgspiceError: ngspice is missing, fails or times out; the message quotes it.
    """
    return read_tran_raw(_run(_deck(netlist, tstep_s, tstop_s, tmax_s or tstep_s, uic), executable, timeout_s))


def source_currents(netlist: str, *, executable: str = "ngspice", timeout_s: float = 120.0) -> dict[str, float]:
    """Every voltage source's current at the DC operating point (A), by source name (lower
    case), SPICE's sign: positive flowing into the source's + terminal from the circuit, so
    a source delivering power has a negative current."""
    plot = read_raw(_run(batch_deck(netlist, _RAW), executable, timeout_s))
    out = {}
    for name, i in plot.get("current", {}).items():
        low = name.lower()
        if low.endswith("#branch"):
            out[low[: -len("#branch")]] = i
        elif low.startswith("i(") and low.endswith(")"):
            out[low[2:-1]] = i
    return out
