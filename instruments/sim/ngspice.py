"""ngspice, the independent referee: the DC operating point of a netlist, at full precision.

:func:`operating_point` runs ``ngspice -b`` on a netlist in a temporary directory, with its
own ``.control`` block in place of any the netlist has: ``op``, then ``write`` of the result
as a *binary* raw file, which holds every node voltage as the float64 ngspice computed (no
decimal rounding at all). ngspice's own ``.spiceinit`` files are not read (``-n``), so a
user's settings cannot change the answer.

ngspice reports some failures only as warnings and then answers anyway (a singular matrix,
or a fall-back to a transient operating point when Newton fails); those are errors here.

For agreement with the DC solver to better than 1 uV, the netlist needs tight tolerances
(``.options reltol=1e-9 vntol=1e-12 abstol=1e-15``, as
:func:`instruments.sim.netlist.export_netlist` writes): ngspice's defaults stop at RELTOL 1e-3
and VNTOL 1 uV. ngspice also puts GMIN (1e-12 S) across each MOSFET junction (drain-bulk and
source-bulk); :class:`instruments.sim.netlist.Netlist` solves with the same GMIN, so a node held
only by cut-off transistors gets ngspice's voltage. What remains between the two is the
junctions' saturation current (IS, 1e-14 A by default, reverse biased), which the reader leaves
out: about 1e-11 V at the node voltages of a twin network.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

_RAW = "op.raw"
_DECK = "deck.cir"
#: Lines of ngspice's output that only narrate its progress (left out of error messages).
_NOISE = re.compile(r"note:|trying gmin|supplies reduced|warning: further gmin", re.I)
#: Lines of ngspice's output that mean the operating point is not to be trusted.
_FAILURE = re.compile(r"error|singular matrix|transient op|timestep too small|no convergence", re.I)


class NgspiceError(RuntimeError):
    """ngspice is missing, failed, or gave no operating point; the message says which."""


def find_ngspice(executable: str = "ngspice") -> str | None:
    """Full path of the ngspice executable on PATH (or of ``executable``), or None."""
    return shutil.which(executable)


def available(executable: str = "ngspice") -> bool:
    """True when ngspice can be run."""
    return find_ngspice(executable) is not None


def batch_deck(netlist: str, raw_file: str = _RAW) -> str:
    """``netlist`` with its ``.control`` blocks, ``.save`` cards and ``.end`` replaced by a
    control block that runs ``op`` and writes every vector to the binary raw file ``raw_file``."""
    lines = netlist.splitlines() or ["netlist"]
    out = [lines[0]]
    in_control = in_save = False
    for line in lines[1:]:
        word = (line.split() or [""])[0].lower()
        if in_control:
            in_control = word != ".endc"
            continue
        if in_save and word.startswith("+"):
            continue
        in_save = word == ".save"  # it would keep some node voltages out of the raw file
        if in_save:
            continue
        if word == ".control":
            in_control = True
            continue
        if word == ".end":
            break
        out.append(line)
    out += [".control", "set filetype=binary", "op", f"write {raw_file} all", "quit", ".endc", ".end"]
    return "\n".join(out) + "\n"


def read_raw(data: bytes) -> dict[str, dict[str, float]]:
    """The operating point in an ngspice raw file: {"voltage": {node: V}, "current": {...}}.

    Node voltages are keyed by node name (``v(in)`` becomes ``in``), as ngspice writes them
    (lower case). Binary (float64, native byte order) and ASCII raw files are read.

    Raises:
        NgspiceError: the file is not a raw file of one real-valued point.
    """
    for marker, binary in ((b"Binary:\n", True), (b"Values:\n", False)):
        cut = data.find(marker)
        if cut >= 0:
            break
    else:
        raise NgspiceError("ngspice wrote a raw file without data")
    values: np.ndarray
    info, variables = raw_header(data[:cut])
    if info.get("plotname", "").lower() != "operating point":
        raise NgspiceError(f"ngspice wrote {info.get('plotname', 'no plot')!r}, not an operating point")
    if "complex" in info.get("flags", "").lower():
        raise NgspiceError("ngspice wrote complex data, not an operating point")
    n_var = int(info.get("no. variables", len(variables)))
    if len(variables) != n_var or n_var == 0:
        raise NgspiceError(f"raw file lists {len(variables)} of {n_var} variables")
    body = data[cut + len(marker):]
    if binary:
        values = np.frombuffer(body[: 8 * n_var], dtype=np.float64)
    else:
        values = _ascii_values(body.decode("ascii", errors="replace").split(), n_var)
    if values.size != n_var:
        raise NgspiceError(f"raw file holds {values.size} values for {n_var} variables")
    out: dict[str, dict[str, float]] = {}
    for (name, kind), x in zip(variables, values.tolist()):
        m = re.fullmatch(r"v\((.*)\)", name, re.I)
        key = m.group(1) if m and kind == "voltage" else name
        out.setdefault(kind, {})[key] = float(x)
    return out


def raw_header(head: bytes) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """A raw file's header (the bytes before ``Binary:`` or ``Values:``): its fields (keys
    lower case: ``plotname``, ``flags``, ``no. variables``, ``no. points``, ...) and its
    variables as (name, kind) in order."""
    info: dict[str, str] = {}
    variables: list[tuple[str, str]] = []
    in_vars = False
    for line in head.decode("ascii", errors="replace").splitlines():
        if in_vars and line.startswith(("\t", " ")):
            parts = line.split()
            if len(parts) >= 3:
                variables.append((parts[1], parts[2]))
            continue
        key, _, value = line.partition(":")
        info[key.strip().lower()] = value.strip()
        in_vars = key.strip().lower() == "variables"
    return info, variables


def _ascii_values(tokens: list[str], n_var: int) -> np.ndarray:
    """Values of the first point of an ASCII raw file: ``index value value ...``."""
    try:
        return np.array([float(t) for t in tokens[1 : 1 + n_var]])
    except ValueError:
        raise NgspiceError("raw file holds a value that is not a number") from None


def operating_point(
    netlist: str,
    *,
    executable: str = "ngspice",
    timeout_s: float = 120.0,
) -> dict[str, float]:
    """DC node voltages (V) of ``netlist`` (its text) as ngspice computes them.

    Returns:
        node name (as ngspice reports it: lower case) -> voltage, every node but the ground,
        plus ``"0"`` -> 0.0.

    Raises:
        NgspiceError: ngspice is not installed, fails, times out after ``timeout_s`` s, or
            converges only through its fall-backs; the message quotes its complaint.
    """
    exe = find_ngspice(executable)
    if exe is None:
        raise NgspiceError(f"ngspice not found on PATH (looked for {executable!r}); install ngspice")
    with tempfile.TemporaryDirectory(prefix="twinrig-ngspice-") as tmp:
        deck = Path(tmp, _DECK)
        deck.write_text(batch_deck(netlist), encoding="utf-8")
        try:
            run = subprocess.run(
                [exe, "-b", "-n", _DECK], cwd=tmp, capture_output=True, text=True,
                errors="replace", timeout=timeout_s,
            )
        except subprocess.TimeoutExpired:
            raise NgspiceError(f"ngspice did not finish within {timeout_s:g} s") from None
        except OSError as exc:
            raise NgspiceError(f"cannot run {exe}: {exc.strerror or exc}") from None
        complaints = [
            line.strip() for line in (run.stdout + "\n" + run.stderr).splitlines()
            if _FAILURE.search(line)
        ]
        raw = Path(tmp, _RAW)
        if run.returncode != 0 or complaints or not raw.exists():
            said = [ln.strip() for ln in run.stderr.splitlines() if ln.strip() and not _NOISE.match(ln.strip())]
            why = list(dict.fromkeys(said or complaints))[:6]
            raise NgspiceError(
                f"ngspice failed (exit status {run.returncode}): " + (" | ".join(why) or "no output")
            )
        data = raw.read_bytes()
    plot = read_raw(data)
    volts = dict(plot.get("voltage", {}))
    volts["0"] = 0.0
    return volts
