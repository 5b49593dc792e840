"""The browser SDK (web/) and this SDK check each other's values, both directions:
Python makes a vector document and the browser SDK's tests check every entry; the
browser SDK makes one and ``veil.vectors.check`` checks every entry here. Skipped,
saying why, where Node or the browser SDK's packages (``npm ci`` in web/) are missing;
``.ci/run`` installs them."""

import json
import os
import subprocess
from pathlib import Path

from veil import vectors

from .node import WEB, npm

COMMITTED = WEB / "vectors" / "python.json"


def _run(npm: str, script: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [npm, "run", "--silent", script], cwd=WEB, capture_output=True, text=True,
        env={**os.environ, **(env or {})}, timeout=600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, f"npm run {script} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_committed_python_vectors_still_check_here() -> None:
    """web/vectors/python.json (for `npm test` alone) is what this SDK makes."""
    assert vectors.check(json.loads(COMMITTED.read_text())) == []


def test_the_browser_sdk_checks_every_value_python_makes(tmp_path: Path) -> None:
    command = npm()
    fresh = tmp_path / "python.json"
    fresh.write_text(json.dumps(vectors.make()))
    _run(command, "test", {"VEIL_VECTORS": str(fresh)})


def test_python_checks_every_value_the_browser_sdk_makes() -> None:
    document = json.loads(_run(npm(), "vectors"))
    assert document["made_by"] == "web"
    assert vectors.check(document) == []


def test_a_mismatch_fails_in_both_directions(tmp_path: Path) -> None:
    """The checks can fail: one changed byte in a value is named on each side."""
    command = npm()
    document = vectors.make()
    entry = document["pairing"]["gt"][3]
    entry["compressed"] = entry["compressed"][:-2] + (
        "00" if entry["compressed"][-2:] != "00" else "01"
    )
    assert any("pairing.gt[3].compressed" in failure for failure in vectors.check(document))
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps(document))
    done = subprocess.run(
        [command, "test"], cwd=WEB, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "VEIL_VECTORS": str(broken)},
    )  # fmt: skip
    assert done.returncode != 0
