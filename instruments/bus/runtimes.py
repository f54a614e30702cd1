"""Emulated boards that run the real firmware implementations.

* ``"c"``: the portable C core (firmware/c/), compiled once with the machine's gcc into a
  cache folder, one ``board_sim`` process per board (its line interface: ``board ...`` to
  power on, ``send HEX`` per received chunk).
* ``"micropython"``: the MicroPython firmware (firmware/micropython/), whose board and
  protocol modules also import under CPython, on its simulated hardware layer.
* ``"micropython-wasm"``: the same firmware on the real MicroPython interpreter, its
  official WebAssembly port under Node (npm ``@micropython/micropython-webassembly-pyscript``,
  ``npm ci --prefix firmware/micropython``), one ``node run_wasm.mjs --serve`` process per
  board, with the line interface of ``board_sim``.

Both present the interface :class:`~instruments.bus.emulator.BusEmulator` expects: an
``address`` and ``handle(chunk) -> bytes | None``.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

from . import protocol as p

FIRMWARE_DIR = Path(__file__).resolve().parents[2] / "firmware"
C_SOURCES = ("tr_codec.c", "tr_rule.c", "tr_board.c", "board_sim.c")


class RuntimeUnavailable(RuntimeError):
    """A firmware runtime cannot be started here (missing compiler, files or interpreter)."""


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "twinrig"


def build_board_sim() -> Path:
    """Compile the C core's board harness (once per source version); its path."""
    c_dir = FIRMWARE_DIR / "c"
    srcs = [c_dir / s for s in C_SOURCES]
    missing = [str(s) for s in srcs if not s.exists()]
    if missing:
        raise RuntimeUnavailable(f"C firmware sources missing: {', '.join(missing)}")
    digest = hashlib.sha256()
    for src in [*srcs, c_dir / "twinrig_core.h"]:
        digest.update(src.read_bytes())
    exe = _cache_dir() / f"board_sim-{digest.hexdigest()[:16]}"
    if exe.exists():
        return exe
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        raise RuntimeUnavailable("no C compiler (gcc) to build the C firmware")
    exe.parent.mkdir(parents=True, exist_ok=True)
    tmp = exe.with_suffix(f".tmp{os.getpid()}")
    done = subprocess.run([gcc, "-std=c99", "-O2", "-I", str(c_dir), *map(str, srcs), "-o", str(tmp)],
                          capture_output=True, text=True)
    if done.returncode:
        raise RuntimeUnavailable(f"building the C firmware failed: {done.stderr.strip()[-500:]}")
    tmp.replace(exe)
    return exe


class _LineBoard:
    """One board in its own process that speaks ``board_sim``'s line interface."""

    name = "line"

    def __init__(self, command: list[str], address: int, uid: bytes, kind: int, node_uv, uptime_ms: int = 0,
                 fw_version=p.FIRMWARE_VERSION):
        lo, hi = p.DEFAULT_LIMITS[p.Kind(kind)]
        self.address = address
        self.uid = bytes(uid)
        self._proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        self._ask(" ".join(map(str, ["board", address, self.uid.hex(), int(kind), lo, hi, lo, *fw_version,
                                     *node_uv, uptime_ms])))

    def _ask(self, line: str) -> str:
        self._proc.stdin.write(line + "\n")
        self._proc.stdin.flush()
        answer = self._proc.stdout.readline().strip()
        if not answer or answer.startswith("error"):
            raise RuntimeError(f"{self.name} board {self.address}: {line.split()[0]}: {answer or 'no answer'}")
        return answer

    def handle(self, chunk: bytes) -> bytes | None:
        answer = self._ask(f"send {bytes(chunk).hex()}")
        if answer == "none":
            return None
        words = answer.split()
        return b"".join(bytes.fromhex(h) for h in words[1::3])  # "reply HEX DELAY_MS" per reply

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.stdin.close()
            self._proc.wait()


class CBoard(_LineBoard):
    """One board running the C core in its own ``board_sim`` process."""

    name = "C"

    def __init__(self, address: int, uid: bytes, kind: int, node_uv, uptime_ms: int = 0,
                 fw_version=p.FIRMWARE_VERSION):
        super().__init__([str(build_board_sim())], address, uid, kind, node_uv, uptime_ms, fw_version)


def wasm_command() -> list[str]:
    """The command that serves one board on MicroPython's WebAssembly port under Node;
    :class:`RuntimeUnavailable` when node or the npm package is missing."""
    mp_dir = FIRMWARE_DIR / "micropython"
    node = shutil.which("node")
    if node is None:
        raise RuntimeUnavailable("node is not on PATH (the MicroPython WebAssembly port runs under Node)")
    pkg = mp_dir / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"
    if not pkg.exists():
        raise RuntimeUnavailable(f"the MicroPython WebAssembly port is missing ({pkg}); "
                                 "install it: npm ci --prefix firmware/micropython")
    return [node, str(mp_dir / "run_wasm.mjs"), "--serve"]


class WasmBoard(_LineBoard):
    """One board running the MicroPython firmware on the real MicroPython interpreter (its
    WebAssembly port, one Node process per board)."""

    name = "MicroPython (WebAssembly)"

    def __init__(self, address: int, uid: bytes, kind: int, node_uv, uptime_ms: int = 0,
                 fw_version=p.FIRMWARE_VERSION):
        super().__init__(wasm_command(), address, uid, kind, node_uv, uptime_ms, fw_version)


def micropython_board(address: int, uid: bytes, kind: int, node_uv, uptime_ms: int = 0):
    """One board running the MicroPython firmware's board module (``tr_board.Board``) under
    CPython, on the firmware's simulated hardware layer (``hal.SimHAL``)."""
    mp_dir = FIRMWARE_DIR / "micropython"
    if not (mp_dir / "tr_board.py").exists():
        raise RuntimeUnavailable(f"MicroPython firmware not found in {mp_dir}")
    if str(mp_dir) not in sys.path:
        sys.path.insert(0, str(mp_dir))
    import hal
    import tr_board

    return tr_board.Board(hal.SimHAL(node_uv=tuple(node_uv), uptime_ms=uptime_ms), address, bytes(uid), int(kind))


def board(runtime: str, address: int, uid: bytes, kind: int, node_uv, uptime_ms: int = 0):
    """An emulated board of ``runtime`` (``"c"``, ``"micropython"`` or ``"micropython-wasm"``)."""
    if runtime == "c":
        return CBoard(address, uid, kind, node_uv, uptime_ms)
    if runtime == "micropython-wasm":
        return WasmBoard(address, uid, kind, node_uv, uptime_ms)
    if runtime == "micropython":
        return micropython_board(address, uid, kind, node_uv, uptime_ms)
    raise ValueError(f"unknown firmware runtime {runtime!r}")
