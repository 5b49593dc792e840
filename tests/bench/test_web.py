"""``veil bench web``: it runs (where Node and Chromium are; it skips, with the
command's own reason, where they are not) and prints one JSON object with the figures
issue 17 asks for; and it says what is missing rather than failing."""

import json
from pathlib import Path

import pytest

from veil.cli import main

TIMINGS = ("encrypt_ms", "decrypt_l2_ms", "transform_key_ms", "escrow_unlock_ms",
           "sframe_us", "aes_gcm_us")  # fmt: skip
SFRAME_CASES = [("audio/opus", 100), ("video/vp8", 1200)]


def test_it_prints_one_json_object_with_its_figures(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["bench", "web", "--json", "--runs", "1"])
    captured = capsys.readouterr()
    if status == 2 and "cannot run here" in captured.err:
        pytest.skip(captured.err.strip())
    assert status == 0, captured.err
    result = json.loads(captured.out)
    assert result["runs"] == 1
    assert result["decrypt_l2_ms"] == result["chromium"]["decrypt_l2_ms"] > 0
    assert result["key_post_to_installed_ms"] > 0
    assert result["key_post_to_installed"]["participants"] == 3
    for where in ("chromium", "node"):
        for timing in TIMINGS:
            assert result[where][timing] > 0, (where, timing)
        cases = result[where]["sframe"]
        assert [(c["codec"], c["size"]) for c in cases] == SFRAME_CASES, where
        assert all(c["ratio"] > 0 and c["aad_bytes"] > 5 for c in cases), where


def test_without_the_sdk_it_says_what_is_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VEIL_WEB_DIR", str(tmp_path))
    assert main(["bench", "web", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "veil bench web: cannot run here:" in captured.err
    assert str(tmp_path) in captured.err or "Node.js" in captured.err


def test_sframe_alone_reports_each_frame_size(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(["bench", "web", "--sframe", "--json", "--runs", "1", "--repeats", "2"])
    captured = capsys.readouterr()
    if status == 2 and "cannot run here" in captured.err:
        pytest.skip(captured.err.strip())
    assert status == 0, captured.err
    result = json.loads(captured.out)
    assert (result["runs"], result["repeats"], result["target"]) == (1, 2, 1.5)
    assert [(c["codec"], c["size"]) for c in result["cases"]] == [
        ("audio/opus", 100), ("video/vp8", 1200), ("video/vp8", 10_000),
    ]  # fmt: skip
    for case in result["cases"]:
        assert len(case["ratios"]) == 2 and case["ratio"] > 0
        assert case["sframe_us"] > 0 and case["aes_gcm_us"] > 0
