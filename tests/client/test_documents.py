"""Documents through the SDK: bytes and streams, grants and revocations, tampering,
and abuse reports that only the safety team can read."""

import os

import pytest

from veil.client import EncryptedDocument, Forbidden, NotMember
from veil.crypto.errors import DecryptionError


def flip(data: bytes, index: int = -1) -> bytes:
    altered = bytearray(data)
    altered[index] ^= 0x01
    return bytes(altered)


def test_documents_round_trip_grant_revoke_and_tamper(sdk) -> None:  # type: ignore[no-untyped-def]
    a, b, c = sdk.user("alice"), sdk.user("bob"), sdk.user("carol")

    async def main() -> None:
        alice, bob, carol = [await sdk.device(u) for u in (a, b, c)]

        text = b"the meeting transcript, " * 20
        document = await alice.documents.encrypt(text, kind="transcript", users=[b])
        assert document.kind == "transcript"
        assert text[:24] not in document.envelope
        assert await alice.documents.decrypt(document) == text  # keep_access by default
        assert await bob.documents.decrypt(document) == text
        with pytest.raises(NotMember) as caught:
            await carol.documents.decrypt(document)
        assert caught.value.code == "no_access"

        # Streams: several segments, opened in order; a dropped or swapped segment fails.
        chunks = [os.urandom(50_000) for _ in range(4)]
        stream_id, segments = await alice.documents.encrypt_stream(iter(chunks), users=[b])
        sealed = list(segments)
        assert len(sealed) >= 4  # a header and one segment per 64 KiB
        opened = await bob.documents.decrypt_stream(stream_id, iter(sealed))
        assert b"".join(opened) == b"".join(chunks)
        assert b"".join(await alice.documents.decrypt_stream(stream_id, sealed)) == b"".join(chunks)
        for broken in (
            sealed[:-1],  # truncated
            [sealed[0], sealed[2], sealed[1], *sealed[3:]],  # reordered
            [flip(sealed[0], 0), *sealed[1:]],  # altered version byte
            [sealed[0], flip(sealed[1]), *sealed[2:]],  # altered segment
        ):
            with pytest.raises(DecryptionError):
                b"".join(await bob.documents.decrypt_stream(stream_id, broken))
        with pytest.raises(NotMember):
            await carol.documents.decrypt_stream(stream_id, sealed)

        # Grant carol access, then take it back.
        await alice.documents.grant(document.document_id, users=[c])
        assert await carol.documents.decrypt(document) == text
        await alice.documents.revoke(document.document_id, users=[c])
        with pytest.raises(NotMember) as caught:
            await carol.documents.decrypt(document)
        assert caught.value.code == "no_access"
        assert await bob.documents.decrypt(document) == text
        # Only the owner changes grants.
        with pytest.raises(Forbidden) as caught:
            await bob.documents.grant(document.document_id, users=[c])
        assert caught.value.code == "not_owner"
        with pytest.raises(Forbidden) as caught:
            await bob.documents.revoke(document.document_id, users=[b])
        assert caught.value.code == "not_owner"

        # An altered envelope (version byte, id, nonce, ciphertext, tag), or one presented
        # under another document's id, fails.
        for index in (0, 3, 40, len(document.envelope) // 2, -1):
            tampered = EncryptedDocument(
                document.document_id, document.kind, flip(document.envelope, index)
            )
            with pytest.raises(DecryptionError):
                await bob.documents.decrypt(tampered)
        other = await alice.documents.encrypt(b"another", users=[b])
        moved = EncryptedDocument(other.document_id, other.kind, document.envelope)
        with pytest.raises(DecryptionError):
            await bob.documents.decrypt(moved)

    sdk.run(main)


def test_an_abuse_report_reaches_the_safety_team_only(sdk) -> None:  # type: ignore[no-untyped-def]
    lead, member, reporter, bystander = (
        sdk.user(n) for n in ("safety-lead", "safety-member", "reporter", "bystander")
    )

    async def main() -> None:
        lead_device, member_device, reporter_device, bystander_device = [
            await sdk.device(u) for u in (lead, member, reporter, bystander)
        ]
        team = await lead_device.groups.create(members=[member])

        evidence = b"chat log and a frame of the offending video"
        report = await reporter_device.documents.report_abuse(evidence, safety_team=team)
        assert report.kind == "abuse_report"
        assert await member_device.documents.decrypt(report) == evidence
        for outsider in (reporter_device, bystander_device):
            with pytest.raises(NotMember) as caught:
                await outsider.documents.decrypt(report)
            assert caught.value.code == "no_access"
        # The reporter owns the document but cannot read it (no grant reaches them),
        # so they cannot pass it on either: granting needs the plaintext.
        with pytest.raises(NotMember):
            await reporter_device.documents.grant(report.document_id, users=[bystander])

    sdk.run(main)
