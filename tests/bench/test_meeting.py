"""``veil bench meeting``: its sample, its reading of the key service's metrics, its
medians, its open-file limit, the pairwise carrier, and a run on two replicas."""

import itertools
import json
import resource
import socket
import subprocess
import sys

import pytest

from veil.bench import meeting
from veil.bench.meeting import (
    _pack_pairwise,
    _split,
    _unpack_pairwise,
    decrypt_sample,
    devices_per_process,
    prepared_metrics,
    raise_file_limit,
    summarize,
)


def test_the_decrypting_sample_spreads_evenly_over_the_meeting() -> None:
    assert decrypt_sample(7, 50) == frozenset(range(7))
    assert decrypt_sample(50, 50) == frozenset(range(50))
    sample = sorted(decrypt_sample(9999, 50))
    assert len(sample) == 50 and sample[0] == 0 and sample[-1] == 9998
    gaps = {b - a for a, b in itertools.pairwise(sample)}
    assert max(gaps) - min(gaps) <= 1


METRICS = """\
# HELP veil_prepared_transforms Transforms prepared for the next rekey, held
# TYPE veil_prepared_transforms gauge
veil_prepared_transforms 12.0
# HELP veil_prepared_transforms_wanted Transform chains waiting for a prepared transform
# TYPE veil_prepared_transforms_wanted gauge
veil_prepared_transforms_wanted 3.0
# HELP veil_prepared_transform_lookups_total Transforms that looked for a prepared one
# TYPE veil_prepared_transform_lookups_total counter
veil_prepared_transform_lookups_total{result="hit"} 40.0
veil_prepared_transform_lookups_total{result="miss"} 7.0
"""


def test_the_key_services_preparing_is_read_from_its_metrics() -> None:
    assert prepared_metrics(METRICS) == (3.0, 40.0)


def test_a_key_service_without_those_metrics_is_not_waited_for() -> None:
    page = "# TYPE http_requests_total counter\nhttp_requests_total 5.0\n"
    assert prepared_metrics(page) == (None, None)


def test_medians_over_rounds_and_their_sum() -> None:
    rows = [
        {"host_cpu_ms": 3.0, "delivered_all_ms": 900.0, "decrypt_ms": 5.0,
         "bytes_per_device": 100, "prepared_hits": 9},
        {"host_cpu_ms": 2.0, "delivered_all_ms": 1000.0, "decrypt_ms": 4.0,
         "bytes_per_device": 100, "prepared_hits": 9},
        {"host_cpu_ms": 9.0, "delivered_all_ms": 4000.0, "decrypt_ms": 6.0,
         "bytes_per_device": 120, "prepared_hits": 8},
    ]  # fmt: skip
    summary = summarize(rows, devices=9)
    assert summary["host_cpu_ms"] == 3.0 and summary["delivered_all_ms"] == 1000.0
    assert summary["decrypt_ms"] == 5.0 and summary["rekey_to_all_ms"] == 1005.0
    assert summary["bytes_per_device"] == 100 and summary["deliveries_per_s"] == 9.0
    assert summary["prepared_hits"] == [9, 9, 8] and summary["rounds"] == rows
    pairwise = [{k: v for k, v in row.items() if k != "prepared_hits"} for row in rows]
    assert "prepared_hits" not in summarize(pairwise, devices=9)


def test_the_open_file_limit_is_raised_to_the_hard_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, 256), hard))
        now = raise_file_limit()
        assert now == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        assert now == hard or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_the_pairwise_carrier_round_trips() -> None:
    ephemeral = bytes(range(32))
    wrapped = {f"{i:032x}": bytes([i]) * 60 for i in range(3)}
    assert _unpack_pairwise(_pack_pairwise(ephemeral, wrapped, last=True)) == (
        ephemeral,
        True,
        wrapped,
    )
    with pytest.raises(ValueError):
        _unpack_pairwise(_pack_pairwise(ephemeral, wrapped, last=False) + b"x")


def answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def test_a_meeting_on_two_replicas_of_each_service(fresh_postgres_url: str) -> None:
    """Two key services on one PostgreSQL and two conference services on Redis: every
    device's transform was prepared on the replica it uses (about 30 s)."""
    if not answers(6379):
        pytest.skip("Redis is not answering on 127.0.0.1:6379")
    completed = subprocess.run(
        [sys.executable, "-m", "veil.cli", "bench", "meeting", "--participants", "5",
         "--rounds", "1", "--replicas", "2", "--database-url", fresh_postgres_url, "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout)
    assert result["replicas"] == 2 and result["database"] == "postgresql"
    assert result["veil"]["prepared_hits"] == [4]
    assert result["veil"]["rounds"][0]["decrypted"] == 4
    assert {"keyserver-0", "keyserver-1", "conference-0", "conference-1"} <= set(
        result["peak_rss_mb"]["services"]
    )
    assert "postgres@" not in completed.stdout + completed.stderr  # nor any password


def test_devices_beyond_one_process_file_limit_are_split_evenly() -> None:
    assert _split(9999, 2) == [(0, 5000), (5000, 4999)]
    assert _split(4, 1) == [(0, 4)]
    assert devices_per_process(20_000) == 9488  # so N = 10,000 takes two processes here


def test_a_meeting_whose_devices_take_two_processes(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(meeting, "devices_per_process", lambda files: 2)
    result = meeting.run(5, rounds=1)
    assert result["device_processes"] == 2
    assert result["veil"]["prepared_hits"] == [4]
    assert result["veil"]["rounds"][0]["decrypted"] == 4
    assert result["pairwise"]["rounds"][0]["decrypted"] == 4
    veil = result["veil"]["rounds"][0]
    assert set(veil["cpu_ms"]) == {"keyserver-0", "conference-0", "devices-0", "devices-1", "host"}
    assert 0 < veil["board_last_ms"] <= veil["delivered_all_ms"]
    assert 0 < veil["first_request_ms"] <= veil["delivered_all_ms"]
    assert 0 < veil["request_ms_median"] <= veil["request_ms_max"] <= veil["delivered_all_ms"]
