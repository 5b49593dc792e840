"""``veil demo --json`` is the main job: it must run on a fresh machine and pass every check."""

import json
import subprocess
import sys


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
