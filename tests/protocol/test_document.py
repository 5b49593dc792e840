"""``docs/protocol.md`` is the board's and the relay's WebSocket contract, kept beside
the code (issue 16, §4): what it lists must be what the code does. Checked here: the
board's message kinds and each one's body fields (§3.4), the relay's refusals at the
handshake (§6's table) and the codes of the frames it drops (§6)."""

import ast
import re
from pathlib import Path

from veil.conference import admission, media_channel
from veil.conference.metrics import DROP_REASONS
from veil.protocol.board import MESSAGES

DOCUMENT = (Path(__file__).parent.parent.parent / "docs" / "protocol.md").read_text()


def section(number: str) -> str:
    """The text of ``## number`` or ``### number`` up to the next heading of any level."""
    match = re.search(rf"^#+ {re.escape(number)} .*?$(.*?)(?=^#+ )", DOCUMENT, re.M | re.S)
    assert match, f"no section {number} in docs/protocol.md"
    return match.group(1)


def test_the_documented_board_messages_are_the_codes() -> None:
    rows = re.findall(r"^\| `([a-z-]+)` \| ([^|]+) \|", section("3.4"), re.M)
    documented = {
        kind: {field for field in re.findall(r"`([a-z_]+)`", fields)} for kind, fields in rows
    }
    assert documented == {kind: set(message.FIELDS) for kind, message in MESSAGES.items()}


def _refusals(module: object) -> set[tuple[int, str]]:
    """Every ``(status, code)`` the module refuses with: ``forbidden(code, ...)``,
    ``unauthorized(code, ...)`` and ``ApiError(status, code, ...)`` calls."""
    statuses = {"forbidden": 403, "unauthorized": 401}
    found = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):  # type: ignore[attr-defined]
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
            continue
        values = [a.value for a in node.args if isinstance(a, ast.Constant)]
        if node.func.id in statuses:
            found.add((statuses[node.func.id], values[0]))
        elif node.func.id == "ApiError":
            found.add((values[0], values[1]))
    return found


def test_the_documented_relay_refusals_are_the_codes() -> None:
    text = section("6.")
    documented = {(int(s), code) for s, code in re.findall(r"\| (\d{3}) `([a-z_]+)` \|", text)}
    assert len(documented) >= 6
    assert "after `403 room_ended`" in text  # said before the table
    documented.add((403, "room_ended"))
    assert documented == _refusals(admission) | _refusals(media_channel)


def test_the_documented_frame_drops_are_the_codes() -> None:
    match = re.search(r'"code":\s*((?:"[a-z_]+"\s*\|\s*)*"[a-z_]+")', section("6."))
    assert match, "§6 names no frame error codes"
    assert set(re.findall(r'"([a-z_]+)"', match.group(1))) == set(DROP_REASONS)
