"""Cap processes at a share of one core each, with the kernel's cgroup cpu controller.

``throughput.py --worker-cpu 0.4`` runs each drain worker under such a cap: two workers
capped at 0.4 of a core fit on a 2-core machine beside Redis, the API and the receiver, so
"two workers against one" measures how the delivery engine scales rather than how many
cores were left over. Needs root and a writable cpu controller (cgroup v1's
``/sys/fs/cgroup/cpu``, or cgroup v2 with ``cpu`` enabled at its root).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_PERIOD_US = 10_000
_V1 = Path("/sys/fs/cgroup/cpu")
_V2 = Path("/sys/fs/cgroup")


class CpuCapError(RuntimeError):
    pass


class CpuCaps:
    def __init__(self, share: float) -> None:
        if not 0 < share <= 1:
            raise CpuCapError("a cap is a share of one core: 0 < share <= 1")
        self.share = share
        self._groups: list[tuple[Path, int]] = []
        if (_V1 / "cpu.cfs_quota_us").exists():
            self._root, self._v2 = _V1, False
        elif "cpu" in _read(_V2 / "cgroup.subtree_control").split():
            self._root, self._v2 = _V2, True
        else:
            raise CpuCapError("no writable cgroup cpu controller (v1 cpu, or v2 with +cpu)")

    def cap(self, name: str, pid: int) -> None:
        """Move ``pid`` (all its threads) into a group of its own, capped at the share."""
        group = self._root / f"relay-bench-{os.getpid()}-{name}"
        quota = int(self.share * _PERIOD_US)
        try:
            group.mkdir(exist_ok=True)
            if self._v2:
                (group / "cpu.max").write_text(f"{quota} {_PERIOD_US}")
            else:
                (group / "cpu.cfs_period_us").write_text(str(_PERIOD_US))
                (group / "cpu.cfs_quota_us").write_text(str(quota))
            (group / "cgroup.procs").write_text(str(pid))
        except OSError as exc:
            raise CpuCapError(f"cannot cap {name} at {self.share:g} of a core: {exc}") from exc
        self._groups.append((group, pid))

    def close(self) -> None:
        """Put the processes still alive back where the root group is, remove the groups."""
        for group, pid in self._groups:
            with contextlib.suppress(OSError):
                (self._root / "cgroup.procs").write_text(str(pid))
            with contextlib.suppress(OSError):
                group.rmdir()
        self._groups.clear()


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""
