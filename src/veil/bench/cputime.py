"""CPU time a process and its descendants have used, from Linux's ``/proc``: so that a
benchmark can say which of the processes sharing this machine's cores spent what."""

import os
from collections.abc import Iterable
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces.
    return text[text.rindex(")") + 2 :].split()


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def tree_cpu_seconds(pids: Iterable[int]) -> dict[int, float]:
    """For each of ``pids``: user + system CPU seconds of it and its living descendants
    (0.0 if it is gone; descendants that exited are not counted)."""
    children = _children()
    totals = {}
    for root in pids:
        total, todo = 0.0, [root]
        while todo:
            pid = todo.pop()
            fields = _stat(pid)
            if fields is not None:
                total += (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
            todo += children.get(pid, [])
        totals[root] = total
    return totals
