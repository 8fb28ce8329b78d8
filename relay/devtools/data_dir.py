"""`relay dev`'s data directory: one relay at a time in it.

Two embedded Redis servers appending to the same append-only files corrupt them, so the
first `relay dev` takes an exclusive lock on ``<data dir>/.lock`` and keeps it while it
runs; a second one is told who holds it and exits. The kernel drops the lock when its holder
dies (even ``kill -9``), so a crash never leaves the directory locked.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_NAME = ".lock"


class DataDirInUse(RuntimeError):
    """Another process holds the data directory."""


class DataDirLock:
    """``DataDirLock(path).acquire()`` or :class:`DataDirInUse`; ``release()`` when done."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> DataDirLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise DataDirInUse(
                f"{self.path.parent} is in use by another relay dev (pid {holder}): stop it, "
                "or give this one its own RELAY_DATA_DIR"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
