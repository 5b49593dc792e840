"""User ids from an IdP's claim: any non-empty string, mapped to an id the services
take in URLs, bodies and audit records.

The services' ids are ``[A-Za-z0-9._@:~-]{1,256}`` (every character unreserved or
allowed as is in a URL path segment), but IdPs name users with whatever they like:
Auth0's ``auth0|123``, e-mail addresses with ``+``, names with spaces or accents. The
key service (from the verified token) and the SDK (from its own token, to bind the
user's escrow before the key service answers) must map a claim to the same id, so the
mapping lives here, used by both:

1. Every character outside ``[A-Za-z0-9._@:-]`` becomes ``~XX`` for each byte of its
   UTF-8 encoding (upper-case hex): ``auth0|123`` -> ``auth0~7C123``,
   ``ann+x@example.com`` -> ``ann~2Bx@example.com``, ``~`` -> ``~7E``.
2. An id that would be the URL dot-segment ``.`` or ``..`` has its dots written so
   too (``~2E``, ``~2E~2E``): a path segment must never be removable by URL
   normalization.
3. When the result would be longer than 256 characters, the id is ``~H`` followed by
   the hex SHA-256 of the claim's UTF-8 (66 characters).

Ids that were valid before this mapping existed (``[A-Za-z0-9._@:-]{1,256}`` other than
``.`` and ``..``) map to themselves, so existing users keep their ids. The mapping is
injective: in a rule-1 or rule-2 id every ``~`` is followed by two upper-case hex
digits, while a rule-3 id starts with ``~H``; rule 1 is reversible (``claim_of``), and
rule-3 ids are distinct as long as SHA-256 has no collision.
"""

import hashlib
import re
from typing import Final

MAX_ID: Final = 256
"""Characters in an id at most (the services' limit)."""
ID_CHARACTERS: Final = "A-Za-z0-9._@:~-"
"""What the services accept in an id (a regular-expression character class)."""
ID = re.compile(f"[{ID_CHARACTERS}]{{1,{MAX_ID}}}")

_KEPT = re.compile(r"[A-Za-z0-9._@:-]")
_ESCAPE = re.compile(r"~([0-9A-F]{2})")
_HASHED = "~H"


def user_id_for(claim: str) -> str:
    """The user id for an IdP claim's value (see the module's rules). ``ValueError``
    names what is wrong for an empty claim or one that is not valid Unicode."""
    if not isinstance(claim, str) or not claim:
        raise ValueError("a user id claim must be a non-empty string")
    try:
        encoded = claim.encode()
    except UnicodeEncodeError:  # a lone surrogate, which JSON can carry
        raise ValueError("the user id claim is not valid Unicode") from None
    if claim in (".", ".."):
        return "~2E" * len(claim)
    escaped = "".join(
        c if _KEPT.fullmatch(c) else "".join(f"~{b:02X}" for b in c.encode()) for c in claim
    )
    if len(escaped) <= MAX_ID:
        return escaped
    return _HASHED + hashlib.sha256(encoded).hexdigest()


def claim_of(user_id: str) -> str | None:
    """The claim a user id was made from, or ``None`` for a hashed (rule 3) id, whose
    claim cannot be recovered. ``ValueError`` for a string ``user_id_for`` never makes."""
    if user_id.startswith(_HASHED) and re.fullmatch(r"~H[0-9a-f]{64}", user_id):
        return None
    if not ID.fullmatch(user_id):
        raise ValueError("not a user id")
    pieces = _ESCAPE.split(user_id)  # text, hex, text, hex, ..., text
    if any("~" in text for text in pieces[::2]):
        raise ValueError("a ~ in a user id must start an escape ~XX")
    data = bytearray()
    for index, piece in enumerate(pieces):
        data += bytes.fromhex(piece) if index % 2 else piece.encode()
    try:
        claim = data.decode()
    except UnicodeDecodeError:
        raise ValueError("the escapes in the user id are not UTF-8") from None
    if user_id_for(claim) != user_id:  # one spelling per claim: no escaped safe bytes
        raise ValueError("the user id is not in canonical form")
    return claim
