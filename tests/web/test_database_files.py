"""SQLite files Veil creates are readable by their owner only: the key service's holds
escrows and sealed secrets, and SQLite would create it 0644 under the usual umask."""

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from veil.web.database import create_db_engine


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def test_a_new_sqlite_database_and_its_wal_files_are_0600(
    tmp_path: Path, permissive_umask: None
) -> None:
    path = tmp_path / "new" / "service.sqlite3"
    engine = create_db_engine(f"sqlite:///{path}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x INTEGER)"))
            connection.execute(text("INSERT INTO t VALUES (1)"))
        with engine.connect() as connection:  # WAL and SHM exist while it is open
            files = {p.name: p.stat().st_mode & 0o777 for p in path.parent.iterdir()}
    finally:
        engine.dispose()
    assert set(files) >= {"service.sqlite3", "service.sqlite3-wal", "service.sqlite3-shm"}
    assert set(files.values()) == {0o600}, {name: oct(mode) for name, mode in files.items()}


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    """Only files Veil creates are made private here; ``veil serve`` tightens its own
    data directory (``veil.datadir``)."""
    path = tmp_path / "old.sqlite3"
    path.touch(mode=0o640)
    path.chmod(0o640)
    create_db_engine(f"sqlite:///{path}").dispose()
    assert path.stat().st_mode & 0o777 == 0o640
