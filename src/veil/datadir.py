"""The data directory of ``veil serve`` with every service in one process: private to
the user who runs it.

With every service in one process, the directory holds the key service's database (the
users' escrows, its split-trust shares, its sealed augmentation secrets), its service
secret and the conference service's database (the platform's shares): both halves of
every split-trust escrow password. Whoever reads it can open those escrows, so it is
0700 and Veil's files in it 0600, whatever the umask. This mode is one trust domain,
for development; split trust needs the services deployed apart (``docs/security.md``).
"""

import os
import stat
from pathlib import Path
from typing import Final

FILES: Final = ("keyserver.sqlite3", "conference.sqlite3", "keyserver.secret")
"""What the all-in-one mode keeps in the directory."""
_SQLITE_COMPANIONS: Final = ("-wal", "-shm", "-journal")


def make_private(directory: Path) -> list[str]:
    """Create ``directory`` (0700), or tighten an existing one and Veil's files in it:
    a directory made by an earlier version, or by hand, may be 0755 with files 0644.
    Returns what it changed, for the operator to see. ``PermissionError`` for a
    directory or file of another user, which this process cannot make private."""
    changed: list[str] = []
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    if _tighten(directory, 0o700):
        changed.append(f"{directory} (now 0700)")
    for name in FILES:
        for path in [directory / name] + [directory / (name + s) for s in _SQLITE_COMPANIONS]:
            if path.is_file() and _tighten(path, 0o600):
                changed.append(f"{path} (now 0600)")
    return changed


def _tighten(path: Path, mode: int) -> bool:
    """Give ``path`` exactly ``mode`` if it grants more; True if it changed."""
    current = stat.S_IMODE(path.stat().st_mode)
    if current & ~mode == 0:
        return False
    os.chmod(path, mode)
    return True
