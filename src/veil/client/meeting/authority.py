"""Proofs by the meeting group's key: what makes a key, hand-over or end post an
admin's. Only admins hold the group's private key; every client checks proofs
against the group key of the invitation (``veil.client.invitation``), never against
a key the key service or a post names."""

from veil.client.errors import UntrustedPost
from veil.client.groups import Groups
from veil.crypto.errors import InvalidSignature
from veil.crypto.keys import PublicKey
from veil.protocol import MeetingProof


async def make_proof(
    groups: Groups,
    meeting_id: str,
    group_key: PublicKey,
    user_id: str,
    now: int,
    action: str,
    payload: bytes = b"",
) -> MeetingProof:
    """A proof with the group's private key, fetched from the key service and checked
    against the invitation's group key first."""
    private = await groups.key(meeting_id)
    if private.public_key != group_key:
        raise UntrustedPost("the key service's group key is not the invitation's")
    return MeetingProof.make(action, meeting_id, user_id, now, private, payload)


def check_proof(
    proof: MeetingProof,
    *,
    action: str,
    meeting_id: str,
    poster: str,
    group_key: PublicKey,
    payload: bytes = b"",
) -> None:
    """``UntrustedPost`` unless ``proof`` was made with the invitation's group key for
    this action, meeting, poster and payload."""
    try:
        proof.verify(action, meeting_id, poster, group_key, payload)
    except (InvalidSignature, ValueError, OverflowError):
        raise UntrustedPost(f"a {action} post without a proof by a meeting admin") from None
