"""SQLite transactions of one process queue on a lock instead of SQLite's sleeping busy
handler: concurrent writers all commit, and a transaction that fails, or whose
connection is dropped, lets the next one through."""

import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from veil.web.database import create_db_engine, session_factory, transaction


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE counter (n INTEGER NOT NULL)"))
        connection.execute(text("INSERT INTO counter VALUES (0)"))
    return engine


def _count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT n FROM counter")).scalar_one())


def _in_a_thread(work: "threading.Thread") -> None:
    work.start()
    work.join(10)
    assert not work.is_alive(), "the next transaction waited: the lock was not released"


def test_concurrent_read_modify_write_transactions_all_commit(engine: Engine) -> None:
    sessions = session_factory(engine)
    errors: list[BaseException] = []

    def add(times: int) -> None:
        try:
            for _ in range(times):
                with transaction(sessions) as session:
                    n = session.execute(text("SELECT n FROM counter")).scalar_one()
                    session.execute(text("UPDATE counter SET n = :n"), {"n": n + 1})
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=add, args=(25,)) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert _count(engine) == 16 * 25  # no lost update: each read and write was one unit


def test_a_failed_transaction_rolls_back_and_releases_the_lock(engine: Engine) -> None:
    sessions = session_factory(engine)
    with pytest.raises(RuntimeError), transaction(sessions) as session:
        session.execute(text("UPDATE counter SET n = 99"))
        raise RuntimeError("refused")
    assert _count(engine) == 0

    def write() -> None:
        with transaction(sessions) as session:
            session.execute(text("UPDATE counter SET n = 1"))

    _in_a_thread(threading.Thread(target=write))
    assert _count(engine) == 1


def test_a_connection_dropped_mid_transaction_releases_the_lock(engine: Engine) -> None:
    connection = engine.connect()
    connection.begin()
    connection.execute(text("UPDATE counter SET n = 7"))
    connection.invalidate()  # e.g. the request's thread lost its connection
    connection.rollback()
    connection.close()

    def write() -> None:
        with engine.begin() as other:
            other.execute(text("UPDATE counter SET n = 2"))

    _in_a_thread(threading.Thread(target=write))
    assert _count(engine) == 2


def test_another_process_still_waits_on_sqlites_busy_timeout(
    engine: Engine, tmp_path: Path
) -> None:
    """Another engine stands for another process: its own lock, SQLite's between them."""
    other = create_db_engine(f"sqlite:///{tmp_path / 'w.sqlite3'}")
    first = engine.connect()
    first.begin()
    first.execute(text("UPDATE counter SET n = 5"))
    done = threading.Event()

    def write() -> None:
        with other.begin() as connection:
            connection.execute(text("UPDATE counter SET n = n + 1"))
        done.set()

    waiter = threading.Thread(target=write)
    waiter.start()
    assert not done.wait(0.3)  # SQLite's write lock holds it back
    first.commit()
    first.close()
    waiter.join(10)
    assert done.is_set()
    assert _count(engine) == 6


def test_a_failed_commit_raises_sqlalchemys_error_rolled_back_and_released(
    engine: Engine,
) -> None:
    """A deferred foreign key fails at COMMIT, which leaves SQLite's transaction open:
    the caller gets SQLAlchemy's IntegrityError (what the services map to 409), not
    sqlite3's, and the transaction is over before the next writer gets the lock."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        connection.execute(
            text(
                "CREATE TABLE child (id INTEGER PRIMARY KEY, parent INTEGER"
                " REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    connection = engine.connect()
    connection.begin()
    connection.execute(text("INSERT INTO child VALUES (1, 42)"))  # no parent 42
    connection.execute(text("UPDATE counter SET n = 3"))
    raw = connection.connection.dbapi_connection
    with pytest.raises(IntegrityError) as raised:
        connection.commit()
    assert isinstance(raised.value.orig, sqlite3.IntegrityError)
    assert raw is not None and not raw.in_transaction  # rolled back before it surfaced
    try:

        def write() -> None:
            with engine.begin() as other:
                other.execute(text("UPDATE counter SET n = n + 1"))

        _in_a_thread(threading.Thread(target=write))
    finally:
        connection.close()
    assert _count(engine) == 1  # the failed transaction's update is gone
    with engine.connect() as reader:
        assert reader.execute(text("SELECT count(*) FROM child")).scalar_one() == 0
