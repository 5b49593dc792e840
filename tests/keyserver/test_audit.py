"""The audit log: every change and transform is recorded, chained, and checkable."""

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from sqlalchemy import create_engine, event, select, text

from veil.crypto.keys import Plaintext
from veil.crypto.pre import encrypt
from veil.keyserver import audit
from veil.keyserver.maintenance import verify_audit
from veil.keyserver.models import AuditEntry, EscrowShare
from veil.keyserver.service import MIGRATIONS
from veil.web.database import create_db_engine, migrate, session_factory


def _flow(make_actor):  # type: ignore[no-untyped-def]
    alice, bob = make_actor("alice"), make_actor("bob")
    group_key = alice.create_group("g1")
    assert alice.add_member("g1", group_key, bob).status_code == 201
    value = encrypt(Plaintext.generate(), group_key.public_key, alice.signer)
    assert bob.transform(bytes(value), "g1").status_code == 200
    assert alice.remove_member("g1", group_key, "bob").status_code == 200
    return alice, bob


def _entries(database_url: str) -> list[AuditEntry]:
    engine = create_engine(database_url)
    with engine.connect() as connection:
        rows = connection.execute(select(AuditEntry).order_by(AuditEntry.seq)).all()
    engine.dispose()
    return rows  # type: ignore[return-value]


def test_every_change_and_transform_is_recorded(make_actor, database_url) -> None:  # type: ignore[no-untyped-def]
    _, bob = _flow(make_actor)
    entries = _entries(database_url)
    actions = [e.action for e in entries]
    assert actions == [
        "user.create",
        "device.add",
        "user.create",
        "device.add",
        "group.create",
        "group.add_member",
        "transform",
        "group.remove_member",
    ]
    transform = entries[6]
    assert (transform.user_id, transform.device_id, transform.subject) == (
        "bob",
        bob.device_id,
        "g1",
    )
    assert len(transform.request_signature) > 80  # the device's request signature, base64url
    assert [e.seq for e in entries] == list(range(1, 9))
    assert verify_audit(database_url).ok


def test_verify_names_the_first_tampered_entry(make_actor, database_url) -> None:  # type: ignore[no-untyped-def]
    _flow(make_actor)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET subject = 'forged' WHERE seq = 5"))
    engine.dispose()
    report = verify_audit(database_url)
    assert (report.ok, report.first_broken, report.entries) == (False, 5, 4)


def test_verify_detects_a_deleted_entry_in_the_middle_or_at_the_end(
    make_actor, database_url
) -> None:  # type: ignore[no-untyped-def]
    _flow(make_actor)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 8"))
    assert verify_audit(database_url).first_broken == 8
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM audit_log WHERE seq = 3"))
    engine.dispose()
    assert verify_audit(database_url).first_broken == 3


def test_cli_audit_verify(make_actor, database_url) -> None:  # type: ignore[no-untyped-def]
    _flow(make_actor)
    command = [sys.executable, "-m", "veil.cli", "audit", "verify", "--database-url", database_url]
    ok = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert "intact: 8 entries" in ok.stdout
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_log SET action = 'nothing' WHERE seq = 2"))
    engine.dispose()
    broken = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert broken.returncode == 1
    assert "BROKEN at entry 2" in broken.stdout


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("sqlite:///{tmp}/missing.sqlite3", "no SQLite database at"),
        ("sqlite:///{tmp}/empty.sqlite3", "cannot read the audit log at"),
        ("{tmp}/plain-path", "not a database URL"),
        ("mysql://root@127.0.0.1/test", "not a database URL"),
        ("postgresql://veil:hunter2@127.0.0.1:1/none", "cannot read the audit log at"),
        ("postgresql://veil@127.0.0.1:1/none?password=hunter2", "cannot read the audit log at"),
        ("postgresql://veil@127.0.0.1:port/none", "not a database URL"),
        ("postgresql+asyncpg://veil@127.0.0.1:1/none", "cannot read the audit log at"),
        ("sqlite:///file:{tmp}/empty.sqlite3?mode=ro&uri=true", "cannot read the audit log at"),
    ],
)
def test_cli_audit_verify_cannot_read_is_exit_2_not_broken(
    tmp_path: Path, url: str, message: str
) -> None:
    """Monitoring must tell a tampered log (exit 1) from one it could not read."""
    (tmp_path / "empty.sqlite3").touch()  # a database without the key service's tables
    url = url.format(tmp=tmp_path)
    command = [sys.executable, "-m", "veil.cli", "audit", "verify", "--database-url", url]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 2, completed.stderr
    assert message in completed.stderr
    assert "Traceback" not in completed.stderr
    assert "hunter2" not in completed.stderr
    assert not (tmp_path / "missing.sqlite3").exists()  # looking created nothing


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("X'00ff'", "contents are malformed"),  # a blob where text belongs
        ("CAST(X'ff' AS TEXT)", "contents do not match its hash"),  # text that is not UTF-8
    ],
)
def test_a_value_of_a_foreign_type_is_a_broken_entry(
    make_actor, database_url, value, reason
) -> None:  # type: ignore[no-untyped-def]
    if not database_url.startswith("sqlite"):
        pytest.skip("only SQLite stores a value of another type than its column's")
    _flow(make_actor)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE audit_log SET subject = {value} WHERE seq = 4"))
    engine.dispose()
    report = verify_audit(database_url)
    assert (report.first_broken, report.reason) == (4, reason)


def test_verify_reads_beside_a_live_writer(make_actor, database_url) -> None:  # type: ignore[no-untyped-def]
    """An operator's check must not queue behind the service's write lock (SQLite)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL readers never wait for writers")
    _flow(make_actor)
    writer = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("PRAGMA busy_timeout=0")
    writer.execute("BEGIN IMMEDIATE")  # what every key service request takes
    try:
        assert verify_audit(database_url).ok
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_verify_sees_one_snapshot_while_the_service_appends(make_actor, database_url) -> None:  # type: ignore[no-untyped-def]
    """Entries appended during a check (several pages of them) must not read as a break."""
    _flow(make_actor)
    engine = create_db_engine(database_url)
    sessions = session_factory(engine)

    def append(count: int) -> None:
        with sessions.begin() as session:
            for _ in range(count):
                audit.append(
                    session, at=0, action="transform", user_id="bob", device_id="d",
                    subject="g1", request_signature="s",
                )  # fmt: skip

    append(2500)  # three pages of 1,000
    stop = threading.Event()

    def writer() -> None:
        while not stop.is_set():
            append(1)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        reports = [verify_audit(database_url) for _ in range(3)]
    finally:
        stop.set()
        thread.join()
        engine.dispose()
    assert all(report.ok for report in reports), reports
    assert all(report.entries >= 2508 for report in reports)


def test_a_routes_own_writes_reach_the_database_before_the_audit_head_is_locked(
    database_url: str,
) -> None:
    """Row locks in one order on every request: a remove_member that locked the head
    before its member row deadlocked with a delete_group on PostgreSQL."""
    engine = create_db_engine(database_url)
    migrate(engine, MIGRATIONS, version_table="keyserver_alembic_version")
    statements: list[str] = []
    event.listen(
        engine, "before_cursor_execute", lambda *args: statements.append(args[2].split()[0])
    )
    sessions = session_factory(engine)
    with sessions() as session, session.begin():
        session.add(EscrowShare(user_id="u", share=bytes(16), created_at=0))
        audit.append(
            session, at=0, action="a", user_id="u", device_id="d", subject="s",
            request_signature="sig",
        )  # fmt: skip
    engine.dispose()
    assert statements.index("INSERT") < statements.index("SELECT")
