"""Exclusive locks on what a twinrig process writes: a run file, a sweep's output folder.

A :class:`FileLock` is an ``fcntl.flock`` (exclusive, never waiting) on a small lock file
beside what it guards (``.RUN.h5.lock`` next to ``RUN.h5``; ``.sweep.lock`` in a sweep's
folder), holding the holder's process id as text. The lock lives as long as its open file
description: until :meth:`FileLock.release`, or until the process ends however it ends
(SIGKILL included; the kernel drops it). A second holder is refused at once, naming the
holder's pid; flock locks belong to an open file description, so a second ``FileLock`` of the
same file in the same process is refused too.

The run file itself is not locked: HDF5 readers that lock files (h5py's default) would then
fail to open a live run file. Releasing removes the lock file; an acquirer that finds, after
locking, that the path no longer names the file it locked (its holder released and removed
it in between) tries again on the new file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class LockHeld(RuntimeError):
    """The lock is held by another open file description (another process, or another
    :class:`FileLock` of this one).

    Attributes:
        path: the lock file. pid: the holder's process id (None when it has not written it).
    """

    def __init__(self, path: Path, pid: int | None):
        self.path = path
        self.pid = pid
        who = "another process" if pid is None else f"process {pid}"
        super().__init__(f"locked by {who} ({path})")


def lock_path_for(path: Path) -> Path:
    """The lock file of the run file ``path``: ``.NAME.lock`` in its folder."""
    path = Path(path)
    return path.parent / f".{path.name}.lock"


class FileLock:
    """An exclusive flock on the lock file ``path`` (created if missing).

    Raises (:meth:`acquire`):
        LockHeld: someone else holds it.
        OSError: the lock file cannot be created (e.g. its folder is missing).
    """

    def __init__(self, path):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "FileLock":
        if self._fd is not None:
            return self
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = _read_pid(fd)
                os.close(fd)
                raise LockHeld(self.path, pid) from None
            except BaseException:
                os.close(fd)
                raise
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # released and removed while we locked: lock the new file
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Remove the lock file and drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if os.fstat(fd).st_ino == os.stat(self.path).st_ino:
                os.unlink(self.path)
        except OSError:
            pass
        finally:
            os.close(fd)

    def __enter__(self) -> "FileLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder(path) -> int | None:
    """The pid recorded in the lock file ``path`` when that process is alive, else None (no
    lock file, no pid in it, or its process gone: a holder killed with SIGKILL leaves its
    lock file, and the kernel has dropped its lock). A look that takes no lock, so it never
    makes a writer taking the lock fail; the lock itself is what keeps writers apart."""
    try:
        fd = os.open(Path(path), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        pid = _read_pid(fd)
    finally:
        os.close(fd)
    if pid is None or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text else None
    except (OSError, ValueError):
        return None
