"""A MicroPython board on a real pseudo-terminal, for the tools that talk to boards (mpremote).

:class:`MicroPythonDevice` runs tests/micropython_device.mjs (the official MicroPython 1.27
WebAssembly port behind the board's friendly and raw REPL; that file lists what it does as a
board does and where it adapts the port) with a pseudo-terminal's master side as its stdin
and stdout, and gives the slave side's path as :attr:`port`: a serial device to mpremote and
pyserial. The board's flash lives in the emulator's memory, kept across soft and hard resets,
lost when the device is closed.

The npm package is the one the MicroPython firmware's tests install
(``npm ci --prefix firmware/micropython``); :func:`available` says whether it and Node.js are
here.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tty
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("micropython_device.mjs")
PACKAGE = (ROOT / "firmware" / "micropython" / "node_modules" / "@micropython"
           / "micropython-webassembly-pyscript" / "micropython.mjs")


def available() -> str | None:
    """None when the device can run here, else why not."""
    if shutil.which("node") is None:
        return "Node.js is not on PATH"
    if not PACKAGE.exists():
        return f"{PACKAGE} is missing (npm ci --prefix firmware/micropython)"
    return None


class MicroPythonDevice:
    """One emulated MicroPython board behind a pseudo-terminal; a context manager.

    Args:
        unique_id: the board's 8-byte unique id (``machine.unique_id()``), hex.
    """

    def __init__(self, unique_id: str = "e66038b7131d2a2c"):
        why = available()
        if why:
            raise RuntimeError(why)
        self._master, self._slave = os.openpty()
        tty.setraw(self._master)
        tty.setraw(self._slave)
        self.port = os.ttyname(self._slave)
        self._proc = subprocess.Popen(
            ["node", str(SCRIPT), PACKAGE.as_uri(), unique_id],
            stdin=self._master, stdout=self._master, stderr=subprocess.PIPE,
        )

    def __enter__(self) -> "MicroPythonDevice":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        if self._proc.stderr is not None:
            self._proc.stderr.close()
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass
