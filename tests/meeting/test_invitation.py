"""The invitation pins the meeting group's public key: proofs on the board are checked
against it, never against a key the key service presents (which could otherwise plant
a session key it knows)."""

import pytest

from veil.client import NotFound, UntrustedInvitation
from veil.client.errors import UntrustedPost
from veil.client.invitation import Invitation
from veil.client.meeting import Meeting
from veil.crypto.keys import Plaintext, PrivateKey, PublicKey
from veil.crypto.pre import encrypt
from veil.protocol import MeetingProof, b64encode
from veil.protocol.board import KeyPost


def test_an_invitation_round_trips_and_malformed_ones_are_refused() -> None:
    key = PrivateKey.generate().public_key
    invitation = Invitation("team:weekly-42", key)  # ids may hold ':'
    text = str(invitation)
    assert text.startswith("veil-meeting-v1:team:weekly-42:")
    assert Invitation.parse(text) == invitation
    encoded = b64encode(bytes(key))
    for bad in (
        "",
        "meeting-1",
        f"veil-meeting-v2:m:{encoded}",
        f"veil-meeting-v1::{encoded}",
        "veil-meeting-v1:m:",
        f"veil-meeting-v1:m:{encoded}=",  # padding: not canonical base64url
        f"veil-meeting-v1:m:{encoded[:-4]}",  # truncated key
        f"veil-meeting-v1:m:{b64encode(b'x' * 50)}",  # not a point
    ):
        with pytest.raises(ValueError):
            Invitation.parse(bad)


def test_an_invitation_whose_group_key_the_key_service_does_not_hold_is_refused(env) -> None:  # type: ignore[no-untyped-def]
    # The platform alone hands carol a link with a group key of its (or an accomplice's)
    # own: every proof made with that key would pass, so the join must stop first.
    async def main() -> None:
        alice, bob, carol = await env.devices(*(env.name(n) for n in ("alice", "bob", "carol")))
        ma, _ = await env.start_and_join(alice, [bob], extra_invitees=[carol.user_id])
        mallory_key = PrivateKey.generate()
        forged = Invitation(ma.meeting_id, mallory_key.public_key)
        made: list[Meeting] = []

        class Recorded(Meeting):
            def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
                super().__init__(*args, **kwargs)
                made.append(self)

        with pytest.raises(UntrustedInvitation):
            await Recorded.join(carol, str(forged), timers=env.fast)
        assert not made  # refused before announcing anything on the board
        # An invitation for a meeting the key service has no group for is refused too.
        with pytest.raises(NotFound):
            await Meeting.join(carol, Invitation("no-such-meeting", mallory_key.public_key))
        # The genuine invitation still works.
        mc = await Meeting.join(carol, str(ma.invitation), timers=env.fast)
        env.track(mc)
        assert mc.security_code == ma.security_code

    env.run(main)


def test_a_key_proved_with_a_substitute_group_key_is_refused(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        names = [env.name(n) for n in ("alice", "bob", "mallory")]
        alice, bob, mallory = await env.devices(*names)
        ma, mb = await env.start_and_join(alice, [bob])
        code = ma.security_code

        # The key service lies about the group's public key (to everyone who asks) and
        # an accomplice posts a key proved with the matching private key.
        substitute = PrivateKey.generate()

        async def lying(group_id: str) -> PublicKey:
            return substitute.public_key

        for device in (alice, bob):
            device.keyserver.group_public_key = lying  # type: ignore[method-assign]
        encrypted = bytes(encrypt(Plaintext.generate(), substitute.public_key, mallory.signer))
        proof = MeetingProof.make("key", ma.meeting_id, mallory.user_id, 0, substitute, encrypted)
        members = tuple(sorted([alice.user_id, bob.user_id, mallory.user_id]))
        forged = KeyPost(7, encrypted, *KeyPost.changes((), members), (), mallory.user_id, proof)
        board = mallory.board(ma.meeting_id)
        await board.connect(since=0)
        await board.post(KeyPost.KIND, bytes(forged))
        await board.close()

        def refused(m: Meeting) -> bool:
            return any(isinstance(e, UntrustedPost) for e in m.errors)

        await env.eventually(lambda: refused(ma) and refused(mb))
        for m in (ma, mb):
            assert m.epoch == 0 and m.security_code == code and m.epochs.key(7) is None
            assert m.host == alice.user_id

    env.run(main)


def test_an_admin_given_another_group_key_by_the_key_service_posts_nothing(env) -> None:  # type: ignore[no-untyped-def]
    async def main() -> None:
        alice, bob = await env.devices(*(env.name(n) for n in ("alice", "bob")))
        ma, mb = await env.start_and_join(alice, [bob])

        async def chat_reaches_bob(text: str) -> int:
            await ma.send_chat(text)
            await env.eventually(lambda: any(m.text == text for m in mb.chat))
            return int(mb.board.last_seq)

        before = await chat_reaches_bob("before")
        # As if the key service had sealed a group private key of its own for this admin.
        alice.groups._keys[ma.meeting_id] = PrivateKey.generate()
        with pytest.raises(UntrustedPost, match="not the invitation's"):
            await ma.rekey()
        assert await chat_reaches_bob("after") == before + 1  # no key post between
        assert ma.epoch == 0 and mb.epoch == 0

    env.run(main)
