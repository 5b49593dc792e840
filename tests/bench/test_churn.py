"""``veil bench churn``: the schedule, the analysis of what the workers saw, and a small
run of the real thing."""

import json
import subprocess
import sys

from veil.bench.churn import LEAD, ChurnConfig, leave_latency, plan
from veil.cli import main


def test_the_longest_present_churner_leaves_and_stayers_never_do() -> None:
    roles = plan(ChurnConfig(participants=4, duration=6, period=2))
    assert [(r.index, r.join_at, r.leave_at) for r in roles] == [
        (0, None, None),
        (1, None, None),
        (2, None, LEAD),
        (3, None, LEAD + 2),
        (4, LEAD, LEAD + 4),  # the first joiner, once the initial churners are gone
        (5, LEAD + 2, None),
        (6, LEAD + 4, None),
    ]
    assert [r.index for r in roles if r.stayer] == [0, 1]


def person(index: int, installs: list[tuple[float, int]], **fields: object) -> dict:
    return {
        "index": index, "installs": installs, "joined_at": 0.0, "leave_called": None,
        "left_at": None, "seen_leaving": {}, **fields,
    }  # fmt: skip


def test_a_leave_is_done_when_everyone_present_holds_an_epoch_the_leaver_cannot_get() -> None:
    # Epoch 1 was made before the leaver (3) was admitted: it leaves 3 out, but 3 held it.
    epochs = {0: [0, 1, 2], 1: [0, 1, 2], 2: [0, 1, 2, 3], 3: [0, 1, 2]}
    leaver = person(3, [(5.0, 1), (6.0, 2)], joined_at=5.0, leave_called=10.0, left_at=10.1)
    starter = person(0, [(0.0, 0), (3.0, 1), (6.0, 2), (11.5, 3)], seen_leaving={3: 10.2})
    slow = person(1, [(0.0, 0), (3.1, 1), (6.1, 2), (12.0, 3)])
    gone = person(2, [(0.0, 0), (3.2, 1), (6.2, 2)], leave_called=11.0, left_at=11.1)
    late = person(4, [(10.5, 2)], joined_at=10.5)  # joined after the leave began
    people = [starter, slow, gone, leaver, late]
    first = {0: 0.0, 1: 3.0, 2: 6.0, 3: 11.5}
    row = leave_latency(leaver, people, epochs, first, start=0.0)
    assert row["epoch"] == 3
    assert row["waited_for"] == 2  # the starter and the slow one; not who left first
    assert row["to_all_s"] == 2.0 and row["until_key_s"] == 1.5 and row["key_to_all_s"] == 0.5
    assert row["seen_by_starter_s"] == 0.2 and row["unfinished"] == []


def test_a_participant_that_never_gets_the_new_epoch_leaves_the_leave_unfinished() -> None:
    epochs = {0: [0, 1, 2], 1: [0, 1]}
    leaver = person(2, [(0.0, 0)], leave_called=5.0, left_at=5.1)
    starter = person(0, [(0.0, 0), (6.5, 1)])
    stuck = person(1, [(0.0, 0)])
    row = leave_latency(leaver, [starter, stuck, leaver], epochs, {0: 0.0, 1: 6.5}, start=0.0)
    assert row["unfinished"] == [1] and "to_all_s" not in row


def test_a_churn_of_four_for_six_seconds() -> None:
    """Every join succeeds and no leaver decrypts a frame once it has left (about 25 s)."""
    completed = subprocess.run(
        [sys.executable, "-m", "veil.cli", "bench", "churn", "--participants", "4",
         "--duration", "6", "--period", "2", "--json"],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    result = json.loads(completed.stdout)
    assert result["initial_joins"] == {"attempted": 3, "succeeded": 3}
    assert result["joins"]["attempted"] == 3 and result["joins"]["succeeded"] == 3
    assert result["leaves"]["count"] == 3 and result["leaves"]["unfinished"] == 0
    assert result["leavers_decrypted_after_leave"] == 0
    assert result["frames"]["sent"] > 0 and result["frames"]["decrypted"] > 0
    assert set(result["targets"]) == {
        "every_join_succeeded", "rekey_max_within_5s", "no_frame_decrypted_by_a_leaver",
    }  # fmt: skip


def test_bench_churn_refuses_a_one_person_meeting() -> None:
    assert main(["bench", "churn", "--participants", "1"]) == 2
