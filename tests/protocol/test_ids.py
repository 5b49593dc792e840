"""User ids from IdP claims (``veil.protocol.ids``): injective, reversible unless hashed,
always an id the services accept, and the identity on ids that were valid before."""

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veil.protocol.ids import ID, MAX_ID, claim_of, user_id_for

OLD_ID = st.from_regex(r"[A-Za-z0-9._@:-]{1,256}", fullmatch=True).filter(
    lambda s: s not in (".", "..")
)
"""Ids the services took before claims were mapped: existing users must keep theirs."""
CLAIM = st.text(min_size=1, max_size=300)
"""Any claim an IdP might send (Hypothesis's text has no lone surrogates)."""
MANY = settings(max_examples=500)
"""The mapping is cheap: try it on many more claims than the default profile's 25."""


@pytest.mark.parametrize(
    ("claim", "user_id"),
    [
        ("alice", "alice"),
        ("auth0|123", "auth0~7C123"),
        ("google-oauth2|1084", "google-oauth2~7C1084"),
        ("ann+x@example.com", "ann~2Bx@example.com"),
        ("a b", "a~20b"),
        ("~", "~7E"),
        ("~7E", "~7E7E"),
        ("%7C", "~257C"),
        ("ålice", "~C3~A5lice"),
        ("a/b", "a~2Fb"),
        (".", "~2E"),
        ("..", "~2E~2E"),
        ("...", "..."),
        ("x" * 256, "x" * 256),
    ],
)
def test_claims_map_to_these_ids(claim: str, user_id: str) -> None:
    assert user_id_for(claim) == user_id
    assert claim_of(user_id) == claim


def test_a_claim_too_long_once_escaped_is_hashed() -> None:
    for claim in ("x" * 257, "|" * 86, "é" * 43):
        user_id = user_id_for(claim)
        assert user_id == "~H" + hashlib.sha256(claim.encode()).hexdigest()
        assert claim_of(user_id) is None
    assert user_id_for("|" * 85) == "~7C" * 85  # 255 characters: still escaped


@pytest.mark.parametrize(
    ("claim", "message"),
    [
        ("", "a user id claim must be a non-empty string"),
        (42, "a user id claim must be a non-empty string"),
        ("\ud800", "the user id claim is not valid Unicode"),
    ],
)
def test_what_is_no_claim_is_refused(claim: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        user_id_for(claim)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("user_id", "message"),
    [
        ("a|b", "not a user id"),
        ("", "not a user id"),
        ("a~7", "a ~ in a user id must start an escape"),
        ("a~7c", "a ~ in a user id must start an escape"),  # lower-case hex
        ("~FF", "the escapes in the user id are not UTF-8"),
        ("~41", "the user id is not in canonical form"),  # "A" needs no escape
        ("~2E~2E~2E", "the user id is not in canonical form"),  # "..." is kept as is
    ],
)
def test_claim_of_refuses_what_user_id_for_never_makes(user_id: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        claim_of(user_id)


@MANY
@given(OLD_ID)
def test_ids_valid_before_map_to_themselves(user_id: str) -> None:
    assert user_id_for(user_id) == user_id


@MANY
@given(CLAIM)
def test_every_claim_maps_to_an_id_the_services_accept(claim: str) -> None:
    user_id = user_id_for(claim)
    assert ID.fullmatch(user_id) and len(user_id) <= MAX_ID
    assert user_id not in (".", "..")


@MANY
@given(CLAIM)
def test_ids_round_trip_unless_hashed(claim: str) -> None:
    user_id = user_id_for(claim)
    assert claim_of(user_id) == (None if user_id.startswith("~H") else claim)


@MANY
@given(CLAIM, CLAIM)
def test_distinct_claims_get_distinct_ids(a: str, b: str) -> None:
    assert (user_id_for(a) == user_id_for(b)) == (a == b)


@MANY
@given(st.lists(CLAIM, min_size=2, max_size=20, unique=True))
def test_a_set_of_claims_keeps_its_size(claims: list[str]) -> None:
    assert len({user_id_for(c) for c in claims}) == len(claims)


@MANY
@given(st.from_regex(r"[A-Za-z0-9._@:~-]{1,40}", fullmatch=True))
def test_an_id_is_made_by_at_most_one_claim(user_id: str) -> None:
    """Whatever string the services accept: either no claim maps to it, or exactly the
    one ``claim_of`` names (so two claims can never share an id)."""
    try:
        claim = claim_of(user_id)
    except ValueError:
        return
    assert claim is not None and user_id_for(claim) == user_id
