"""Who may join a room's media relay: a device bound to the sender number it announced,
whose user the key service says is in the meeting's group.

A media hello carries, besides the fields every hello has (``veil.conference.handshake``):

    "sender": the sender number this join announced on the room's board,
    "membership": {"veil-device", "veil-timestamp", "veil-nonce", "veil-signature"}:
        the headers of a request ``GET /v1/groups/{room_id}/membership`` that the device
        signed for the key service (``veil.protocol.sign_request``).

Sender binding: the board's first ``announce`` naming ``sender`` must be this device's
(signed, like every post), so no device can send under a number another announced
first, and the relay can drop any frame whose KID names another sender.

Membership: the conference service cannot ask the key service about a user by itself
(the key service answers group questions to the group's own devices only), so the
device hands it a capability, which it forwards unchanged. It is signed by the device,
bound to this path, and its nonce is spent by the key service on first use: the
conference service can neither forge one nor replay it to admit anyone else or later.
"""

import asyncio
from typing import Any

import httpx

from veil.conference.handshake import Participant
from veil.conference.service import ConferenceService
from veil.crypto.schedule import SENDER_LIMIT
from veil.protocol import DEVICE_HEADER, NONCE_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER
from veil.web.errors import ApiError, forbidden, unauthorized

CAPABILITY_HEADERS = frozenset({DEVICE_HEADER, TIMESTAMP_HEADER, NONCE_HEADER, SIGNATURE_HEADER})
_MAX_HEADER = 256


def membership_path(room_id: str) -> str:
    """The key-service request a membership capability was signed for."""
    return f"/v1/groups/{room_id}/membership"


async def admit(
    service: ConferenceService, room_id: str, participant: Participant, hello: dict[str, Any]
) -> int:
    """The connection's bound sender number, or ``ApiError`` saying why it is refused.
    The board is asked first: it is local, and a refusal there leaves the capability
    unspent."""
    sender = _sender(hello)
    capability = _capability(hello, participant)
    announcer = await asyncio.to_thread(service.board.announcer, room_id, sender)
    if announcer != participant.device_id:
        raise forbidden(
            "sender_not_announced",
            "this device's announce on the board must be the first to name this sender",
        )
    await _check_membership(service, room_id, participant, capability)
    return sender


def _sender(hello: dict[str, Any]) -> int:
    sender = hello.get("sender")
    if type(sender) is not int or not 0 <= sender < SENDER_LIMIT:
        raise unauthorized("bad_hello", f"a media hello names its sender, in [0, {SENDER_LIMIT})")
    return sender


def _capability(hello: dict[str, Any], participant: Participant) -> dict[str, str]:
    capability = hello.get("membership")
    if (
        not isinstance(capability, dict)
        or set(capability) != CAPABILITY_HEADERS
        or not all(isinstance(v, str) and 0 < len(v) <= _MAX_HEADER for v in capability.values())
    ):
        raise unauthorized(
            "bad_hello",
            f"a media hello carries a membership capability: {sorted(CAPABILITY_HEADERS)}",
        )
    if capability[DEVICE_HEADER] != participant.device_id:
        raise forbidden("membership_mismatch", "the membership capability is another device's")
    return capability


async def _check_membership(
    service: ConferenceService, room_id: str, participant: Participant, capability: dict[str, str]
) -> None:
    unavailable = ApiError(503, "keyserver_unavailable", "the key service did not answer")
    try:
        response = await service.http.get(membership_path(room_id), headers=capability)
    except httpx.HTTPError:
        raise unavailable from None
    if response.status_code == 401:
        raise unauthorized(
            "invalid_membership",
            f"the key service refused the membership capability ({_code(response)})",
        )
    if response.status_code in (403, 404):
        raise forbidden("not_admitted", "this device's user is not in the meeting's group")
    if not response.is_success:
        raise unavailable
    try:
        answer = response.json()
        admitted = (answer["group_id"], answer["device_id"]) == (room_id, participant.device_id)
    except (ValueError, KeyError, TypeError):
        admitted = False
    if not admitted:
        raise unavailable  # an answer about something else: not an admission


def _code(response: httpx.Response) -> str:
    """The key service's error code (for the client's error message; never a secret)."""
    try:
        return str(response.json()["error"]["code"])[:64]
    except (ValueError, KeyError, TypeError):
        return str(response.status_code)
