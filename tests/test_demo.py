"""``veil demo --json`` is the main job: it must run on a fresh machine and pass every check."""

import asyncio
import contextlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from veil import demo


def test_veil_demo_json_passes_every_check() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "veil.cli", "demo", "--json", "--participants", "4"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    result = json.loads(completed.stdout)
    assert result["ok"] is True, result
    assert completed.returncode == 0
    assert set(result["checks"]) >= {
        "all_frames_decrypted",
        "leaver_locked_out",
        "relay_saw_no_plaintext",
        "security_codes_match",
    }
    assert all(result["checks"].values()), result["checks"]
    assert result["participants"] == 4 and result["rekeys"] >= 1
    assert result["frames_decrypted"] > result["frames_sent"]  # each frame reaches 2-3 others


def test_the_demo_says_what_it_is_doing_while_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    stages: list[str] = []

    @contextlib.asynccontextmanager
    async def no_stack(*_: Any, **__: Any) -> AsyncIterator[None]:
        raise RuntimeError("stopped here")
        yield

    monkeypatch.setattr(demo, "run_stack", no_stack)
    with pytest.raises(RuntimeError, match="stopped here"):
        asyncio.run(demo.run_demo(participants=3, on_update=lambda _, stage: stages.append(stage)))
    assert stages == ["starting the dev IdP, key service and conference service on loopback"]


def test_the_legend_explains_each_column_and_every_state() -> None:
    source = Path(demo.__file__).read_text()
    states = {
        state
        for line in source.splitlines()
        if re.search(r"\bstate(: str)? = ", line)
        for state in re.findall(r'"([^"]+)"', line)
    }
    assert {"starting", "host", "in meeting", "left, listening", "done", "left"} <= states
    for state in states:
        assert state in demo.LEGEND, state
    for column in demo.COLUMNS[1:]:  # "who" is the participant's name
        assert re.search(rf"\b{column}\b[^.]*:", demo.LEGEND), column
    assert "leaver" in demo.LEGEND and "dropped" in demo.LEGEND


def test_the_table_shows_each_column_and_the_stage() -> None:
    console = Console(record=True, width=120)
    person = demo.Participant("user0", device=None)  # type: ignore[arg-type]
    person.state, person.sent = "left, listening", 7
    console.print(demo.table([person], "leaving"))
    text = console.export_text()
    assert "veil demo — leaving" in text
    for column in demo.COLUMNS:
        assert column in text
    assert "user0" in text and "left, listening" in text and "7" in text
