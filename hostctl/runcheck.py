"""Integrity and liveness checks of run files, made before HDF5 opens them.

A file nobody writes is checked against its HDF5 superblock (version 2 or 3): its
checksum (Bob Jenkins' lookup3, HDF5's metadata checksum) and its end-of-file address
against the file's size in bytes, so a cut file is refused at once instead of stalling in
HDF5's SWMR read retries. A killed writer's "open for writing" flags are cleared here
(what ``h5clear -s`` does), once the writer is known to be gone: whether a process is
alive, whether a live process holds a run file's write lock. Whatever HDF5 raises reading
a damaged file becomes one :class:`~hostctl.runschema.RunFileError` line naming the file.
"""

from __future__ import annotations

import os
from pathlib import Path

from .runschema import RunFileError

_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


# -- the HDF5 superblock's "open for writing" flags -----------------------------------------


_M32 = 0xFFFFFFFF


def _rot(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & _M32


def _lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 hash (hashlittle), HDF5's metadata checksum."""
    n = len(data)
    a = b = c = (0xDEADBEEF + n + initval) & _M32
    padded = data + bytes(-n % 12 if n else 0)
    words = [int.from_bytes(padded[i:i + 4], "little") for i in range(0, len(padded), 4)]
    last = max(len(words) // 3 - 1, 0)
    for block in range(last):
        a, b, c = ((v + w) & _M32 for v, w in zip((a, b, c), words[3 * block:3 * block + 3]))
        for k in (4, 6, 8, 16, 19, 4):  # mix: x -= z; x ^= rot(z, k); z += y, roles rotating
            a = ((a - c) & _M32) ^ _rot(c, k)
            c = (c + b) & _M32
            a, b, c = b, c, a
    if n == 0:
        return c
    a, b, c = ((v + w) & _M32 for v, w in zip((a, b, c), words[3 * last:3 * last + 3]))
    x, y, z = c, b, a
    for k in (14, 11, 25, 16, 4, 14, 24):  # final: x ^= y; x -= rot(y, k), roles rotating
        x = ((x ^ y) - _rot(y, k)) & _M32
        x, y, z = z, x, y
    return y  # seven rotations: c is now in y's place


def _clear_open_flags(path: Path) -> bool:
    """Clear the file-consistency flags a killed writer leaves in the superblock (what
    HDF5's ``h5clear -s`` does); True if they were set. Only for a writer known to be gone."""
    with open(path, "r+b") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != _HDF5_SIGNATURE or head[8] not in (2, 3):
            raise RunFileError(f"{path}: not an HDF5 file with a version 2 or 3 superblock")
        end = 12 + 4 * head[9]  # four addresses, then the checksum
        fh.seek(0)
        block = fh.read(end + 4)
        if int.from_bytes(block[end:end + 4], "little") != _lookup3(block[:end]):
            raise RunFileError(f"{path}: the HDF5 superblock is damaged (checksum mismatch)")
        if block[11] == 0:
            return False
        cleared = block[:11] + b"\x00" + block[12:end]
        fh.seek(0)
        fh.write(cleared + _lookup3(cleared).to_bytes(4, "little"))
        fh.flush()
        os.fsync(fh.fileno())
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _being_written(path: Path) -> bool:
    """Whether a live process holds the run file's write lock (by the pid it recorded)."""
    from .locks import holder, lock_path_for

    return holder(lock_path_for(path)) is not None


def _check_intact(path: Path) -> bool:
    """RunFileError when a file nobody writes is shorter than its HDF5 superblock says
    (cut, or copied before it was complete), or its superblock is damaged. A SWMR writer
    extends the file before its superblock points past the old end, so a killed writer's
    file passes. Returns whether the superblock is marked open for writing (a killed
    writer's file, which HDF5 opens only in SWMR mode)."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if len(head) < 12 or head[:8] != _HDF5_SIGNATURE or head[8] not in (2, 3):
            return True  # another superblock version: HDF5 checks it
        size_o = head[9]
        end = 12 + 4 * size_o
        block = head + fh.read(end + 4 - 12)
    if len(block) < end + 4:
        raise RunFileError(f"{path}: the run file is damaged (its HDF5 superblock is cut short)")
    if int.from_bytes(block[end:end + 4], "little") != _lookup3(block[:end]):
        raise RunFileError(f"{path}: the run file is damaged (its HDF5 superblock checksum does not match)")
    base = int.from_bytes(block[12:12 + size_o], "little")
    eof = base + int.from_bytes(block[12 + 2 * size_o:12 + 3 * size_o], "little")
    size = path.stat().st_size
    if size < eof:
        raise RunFileError(f"{path}: the run file is damaged: it has {size} bytes, its HDF5 superblock says "
                           f"{eof} (cut short, or copied before it was complete)")
    return block[11] != 0


# -- one-line errors for damaged files -----------------------------------------------------


_READ_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, UnicodeDecodeError)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _damaged(path: Path, exc: BaseException) -> RunFileError:
    return RunFileError(f"{path}: the run file is damaged or incomplete ({type(exc).__name__}: {_first_line(exc)})")


def _one_line_damage(method):
    """What HDF5 raises reading a damaged file (a cut dataset, a broken heap, a missing
    group) becomes one RunFileError naming the file."""
    import functools

    @functools.wraps(method)
    def wrapper(self, *args, **kw):
        try:
            return method(self, *args, **kw)
        except RunFileError:
            raise
        except _READ_ERRORS as exc:
            raise _damaged(self.path, exc) from None
    return wrapper
