"""The RP2040 image in rp2040js, as the tests drive it (tests/test_rp2040_emu.py, test_rp2040_training.py).

``firmware/rp2040/emu/harness.mjs`` loads the image's .uf2 and a board configuration .uf2
into rp2040js and answers one JSON request a line (:class:`EmuBoard`); :class:`EmuSerial`
is the part of a pyserial port that BusClient uses, on the harness's host adapter. Every
time is emulated (ns).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FW = ROOT / "firmware" / "rp2040"
HARNESS = FW / "emu" / "harness.mjs"
IMAGE = FW / "build" / "twinrig-rp2040"
NODE = shutil.which("node")
BOOT_NS = 1_000_000  # power-on to the main loop: clocks, UART, the ADC's set-up frames
#: Protocol 2's image also moves its gate from 0 V to the power-on state (about 1 ms of
#: charge pulse and the read-backs) before it serves the bus.
BOOT_V2_NS = 5_000_000


def missing() -> str | None:
    if NODE is None:
        return "node is not on PATH"
    if not (FW / "emu" / "node_modules" / "rp2040js" / "package.json").exists():
        return "rp2040js missing: npm ci --prefix firmware/rp2040/emu"
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("make") is None:
        return "arm-none-eabi-gcc or make missing (Debian: gcc-arm-none-eabi)"
    return None


def build_image(target: str = "") -> Path:
    """``make -C firmware/rp2040 [target]`` (``v2``: the protocol-2 image): the image's path
    without suffix. Skips when a tool is missing, fails instead when ``CI=true``."""
    why = missing()
    if why:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI must run the RP2040 image: {why}")
        pytest.skip(why)
    subprocess.run(["make", "-C", str(FW), "-s", *([target] if target else []), f"PYTHON={sys.executable}"],
                   check=True, capture_output=True)
    return IMAGE.with_name(IMAGE.name + "-" + target) if target else IMAGE


def build_v2_variant(name: str, **make_vars) -> Path:
    """``make -C firmware/rp2040 v2 BUILD=build/NAME VAR=value ...``: another protocol-2 build
    (``FW_VERSION_PATCH=1``, ``FW_BROKEN=1``) in its own build folder; the image's path
    without suffix (``.pkg``: the package a bus update sends). Skips as build_image."""
    build_image("v2")  # the tools are there (or skipped)
    subprocess.run(["make", "-C", str(FW), "-s", "v2", f"BUILD=build/{name}", f"PYTHON={sys.executable}",
                    *(f"{k}={v}" for k, v in make_vars.items())], check=True, capture_output=True)
    return FW / "build" / name / "twinrig-rp2040-v2"


def config_image(out: Path, address: int, uid: bytes, kind: str, initial_state: int) -> Path:
    """A board configuration .uf2 (firmware/rp2040/tools/image.py config)."""
    subprocess.run([sys.executable, str(FW / "tools" / "image.py"), "config", str(out), "--address",
                    str(address), "--uid", uid.hex(), "--kind", kind, "--initial-state",
                    str(initial_state)], check=True)
    return out


class EmuBoard:
    """The harness process: one JSON request a line, one answer a line; emulated ns."""

    def __init__(self, *uf2):
        self.proc = subprocess.Popen([NODE, str(HARNESS), *map(str, uf2)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.now_ns = 0

    def call(self, op: str, **fields) -> dict:
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the harness ended (exit {self.proc.wait()})")
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        self.now_ns = answer["now_ns"]
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


class EmuSerial:
    """What BusClient uses of a pyserial port, on the harness's host adapter. ``read`` runs
    the emulator until a byte arrives or ``timeout`` (emulated s) has passed."""

    port = "rp2040js"

    def __init__(self, board: EmuBoard):
        self.board = board
        self.timeout = 0.002
        self._rx = bytearray()

    @property
    def in_waiting(self) -> int:
        return len(self._rx)

    def write(self, data: bytes) -> int:
        self.board.call("write", data=bytes(data).hex())
        return len(data)

    def flush(self) -> None:
        self.board.call("flush")

    def read(self, size: int = 1) -> bytes:
        if not self._rx:
            self._rx += bytes.fromhex(self.board.call("read", max_ns=int(self.timeout * 1e9))["data"])
        out = bytes(self._rx[:size])
        del self._rx[:size]
        return out

    def reset_input_buffer(self) -> None:
        self._rx.clear()
        self.board.call("clear_rx")

    def close(self) -> None:
        pass
