"""The ``veil`` command, run as a user would run it."""

import json
import os
import subprocess
import sys
from pathlib import Path

from veil.bench.crypto import ratios
from veil.cli import main

VEIL_BENCH = [sys.executable, "-m", "veil.cli", "bench"]

EXPECTED_KEYS = {
    "keygen",
    "encrypt",
    "transform_key",
    "transform_l0_to_l1",
    "transform_l1_to_l2",
    "decrypt_l0",
    "decrypt_l1",
    "decrypt_l2",
    "sframe_roundtrip_us",
    "aesgcm_roundtrip_us",
    "bytes_l0",
    "bytes_l1",
    "bytes_l2",
}


def test_bench_crypto_json_has_exactly_the_documented_keys() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "veil.cli", "bench", "crypto", "--json", "--runs", "2"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(completed.stdout)
    assert set(result) == EXPECTED_KEYS
    assert all(result[key] > 0 for key in EXPECTED_KEYS)
    assert (result["bytes_l0"], result["bytes_l1"], result["bytes_l2"]) == (467, 1139, 1811)


def test_ratio_is_peer_over_veil() -> None:
    ours = {"encrypt": 0.5, "decrypt_l0": 2.0}
    assert ratios(ours, {"encrypt": 5.0, "decrypt_l0": 1.0, "peer": "x"}) == {
        "encrypt": 10.0,
        "decrypt_l0": 0.5,
    }


def test_a_missing_peer_script_is_said_before_measuring(monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    def measure(runs: int) -> None:
        raise AssertionError("measured before finding the peer")

    monkeypatch.setattr("veil.bench.crypto.run", measure)
    assert main(["bench", "crypto", "--peer", "--peer-script", "/nonexistent/recrypt.sh"]) == 2
    error = capsys.readouterr().err
    assert "recrypt peer script was not found at /nonexistent/recrypt.sh" in error
    assert "Traceback" not in error


def test_bad_runs_is_a_usage_error(capsys: object) -> None:
    assert main(["bench", "crypto", "--runs", "0"]) == 2


def test_bench_keyserver_json_runs_against_a_real_server() -> None:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "veil.cli",
            "bench",
            "keyserver",
            "--json",
            "--duration",
            "1",
            "--members",
            "2",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(completed.stdout)
    for key in ("transforms_per_s", "workers", "p50_ms", "p99_ms", "crypto_only_ms"):
        assert result[key] > 0, key
    assert result["requests"] > 0
    assert result["p99_ms"] >= result["p50_ms"]


def test_bench_keyserver_runs_twice_on_one_postgresql_database(fresh_postgres_url: str) -> None:
    """Each run names its own users and group, so runs can share ``--database-url``."""
    for _ in range(2):
        completed = subprocess.run(
            [
                *VEIL_BENCH,
                "keyserver",
                "--json",
                "--duration",
                "1",
                "--members",
                "2",
                "--database-url",
                fresh_postgres_url,
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stderr[-2000:]
        assert json.loads(completed.stdout)["requests"] > 0


def test_bench_meeting_json_measures_both_rekeys() -> None:
    completed = subprocess.run(
        [*VEIL_BENCH, "meeting", "--participants", "4", "--rounds", "1", "--json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    result = json.loads(completed.stdout)
    assert result["participants"] == 4 and result["replicas"] == 1
    assert result["database"] == "sqlite"
    for kind in ("veil", "pairwise"):
        row = result[kind]
        for name in ("host_cpu_ms", "delivered_all_ms", "decrypt_ms", "rekey_to_all_ms"):
            assert row[name] > 0, (kind, name)
        total = row["delivered_all_ms"] + row["decrypt_ms"]
        assert abs(row["rekey_to_all_ms"] - total) <= 0.1
        assert row["deliveries_per_s"] > 0
        assert row["rounds"][0]["decrypted"] == 3  # a small meeting: every device decrypts
    # A Veil device receives the key post and its transformed key (a level-2 ciphertext).
    assert result["veil"]["bytes_per_device"] > 1811
    assert result["pairwise"]["bytes_per_device"] > 3 * 60  # three wrapped keys at least
    # The key service had prepared every device's transform before the timed rekey.
    assert result["veil"]["prepared_hits"] == [3]
    assert {"services", "register", "meeting_start", "connect", "first_key"} <= set(
        result["setup_s"]
    )
    assert "registered: 3/3" in completed.stderr  # progress lines go to stderr


def test_bench_meeting_refuses_a_one_person_meeting() -> None:
    assert main(["bench", "meeting", "--participants", "1"]) == 2


def test_bench_meeting_refuses_replicas_without_a_shared_postgresql(capsys) -> None:  # type: ignore[no-untyped-def]
    assert main(["bench", "meeting", "--participants", "4", "--replicas", "2"]) == 2
    assert "--database-url postgresql://" in capsys.readouterr().err


def test_audit_verify_finds_the_all_in_one_data_directory(tmp_path: Path) -> None:
    from veil.idp import DevIdentityProvider
    from veil.keyserver import KeyServerSettings
    from veil.keyserver.service import KeyService

    idp = DevIdentityProvider()
    KeyService(
        KeyServerSettings(
            database_url=f"sqlite:///{tmp_path / 'keyserver.sqlite3'}",
            service_secret=bytes(32),
            issuer=idp.issuer,
            audience=idp.audience,
            jwks=idp.jwks(),
            transform_workers=0,
        )
    ).close()
    command = [sys.executable, "-m", "veil.cli", "audit", "verify"]
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VEIL_")}
    found = subprocess.run(
        command, capture_output=True, text=True, env={**clean, "VEIL_DATA_DIR": str(tmp_path)}
    )
    assert found.returncode == 0 and "audit chain intact: 0 entries" in found.stdout
    empty = tmp_path / "empty"
    empty.mkdir()
    missing = subprocess.run(command, capture_output=True, text=True, env=clean, cwd=empty)
    assert missing.returncode == 2
    assert f"no key service database at veil-data{os.sep}keyserver.sqlite3" in missing.stderr
