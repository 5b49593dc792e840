"""JWT checks (``veil.web.tokens``) against a JWKS given in the settings: issuer and
audience refusals that name what was expected and what came (never the token), one
audience only, ``nbf``, the user-id claim and its mapping, and the settings that
combine key sources."""

import asyncio
import secrets
from pathlib import Path
from typing import Any

import jwt
import pytest
from fastapi.testclient import TestClient

from veil.conference import ConferenceSettings
from veil.conference.app import create_app as create_conference
from veil.idp import DevIdentityProvider
from veil.keyserver import KeyServerSettings
from veil.keyserver.app import create_app as create_keyserver
from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE
from veil.web.errors import ApiError
from veil.web.tokens import Identity, JwtVerifier

from .conftest import Clock


@pytest.fixture
def idp(clock: Clock) -> DevIdentityProvider:
    return DevIdentityProvider(clock=clock)


def settings(idp: DevIdentityProvider, clock: Clock, **changes: Any) -> KeyServerSettings:
    values: dict[str, Any] = {
        "database_url": "sqlite://",
        "service_secret": bytes(32),
        "audience": KEYSERVER_AUDIENCE,
        "issuer": idp.issuer,
        "jwks": idp.jwks(),
        "clock": clock,
        **changes,
    }
    return KeyServerSettings(**values)


def verify(idp: DevIdentityProvider, clock: Clock, token: str, **changes: Any) -> Identity:
    verifier = JwtVerifier(settings(idp, clock, **changes))
    return asyncio.run(verifier.verify(token, fresh=False))


def refused(
    idp: DevIdentityProvider, clock: Clock, token: str, **changes: Any
) -> tuple[int, str, str]:
    with pytest.raises(ApiError) as caught:
        verify(idp, clock, token, **changes)
    error = caught.value
    assert token not in error.message and token.split(".")[2] not in error.message
    return error.status, error.code, error.message


def test_a_valid_token_names_its_user(idp: DevIdentityProvider, clock: Clock) -> None:
    identity = verify(idp, clock, idp.issue("alice"))
    assert (identity.user_id, identity.issued_at) == ("alice", int(clock.now))


# --- audience and issuer ---------------------------------------------------------------------


def test_the_other_services_token_is_refused_naming_both_audiences(
    idp: DevIdentityProvider, clock: Clock
) -> None:
    token = idp.issue("alice", aud=CONFERENCE_AUDIENCE)
    assert refused(idp, clock, token) == (
        401,
        "wrong_audience",
        "token audience 'veil-conference' is not this service's ('veil-keyserver')",
    )


def test_a_token_for_both_services_is_refused(idp: DevIdentityProvider, clock: Clock) -> None:
    """Either service could replay it at the other and collect both escrow shares."""
    token = idp.issue("alice", aud=[KEYSERVER_AUDIENCE, CONFERENCE_AUDIENCE])
    assert refused(idp, clock, token) == (
        401,
        "wrong_audience",
        "token audience ['veil-keyserver', 'veil-conference'] names 2 audiences; this "
        "service takes only tokens for itself alone ('veil-keyserver')",
    )


@pytest.mark.parametrize(
    ("audience", "message"),
    [
        ([KEYSERVER_AUDIENCE, KEYSERVER_AUDIENCE], "names 2 audiences"),
        ([KEYSERVER_AUDIENCE, "another"], "names 2 audiences"),
        ([], "token audience [] names 0 audiences"),
        (["another"], "token audience 'another' is not this service's ('veil-keyserver')"),
        ("veil-keyserver ", "token audience 'veil-keyserver ' is not this service's"),
        (42, "token audience 42 is not this service's ('veil-keyserver')"),
    ],
)
def test_any_audience_but_this_service_alone_is_refused(
    idp: DevIdentityProvider, clock: Clock, audience: Any, message: str
) -> None:
    status, code, text = refused(idp, clock, idp.issue("alice", aud=audience))
    assert (status, code) == (401, "wrong_audience") and message in text


def test_a_list_of_this_service_alone_is_its_audience(
    idp: DevIdentityProvider, clock: Clock
) -> None:
    assert verify(idp, clock, idp.issue("alice", aud=[KEYSERVER_AUDIENCE])).user_id == "alice"


def test_an_overlong_audience_is_cut_in_the_message(idp: DevIdentityProvider, clock: Clock) -> None:
    _, code, message = refused(idp, clock, idp.issue("alice", aud="a" * 5000))
    assert code == "wrong_audience" and len(message) < 250


def test_another_issuer_is_refused_naming_both(idp: DevIdentityProvider, clock: Clock) -> None:
    token = idp.issue("alice", iss="https://evil.example")
    assert refused(idp, clock, token) == (
        401,
        "wrong_issuer",
        "token issuer 'https://evil.example' is not this service's ('veil-dev-idp')",
    )


def test_both_services_refuse_a_token_for_both(tmp_path: Path) -> None:
    idp = DevIdentityProvider()
    common: dict[str, Any] = {"issuer": idp.issuer, "jwks": idp.jwks()}
    keyserver = KeyServerSettings(
        database_url=f"sqlite:///{tmp_path / 'k.sqlite3'}", service_secret=secrets.token_bytes(32),
        audience=KEYSERVER_AUDIENCE, **common,
    )  # fmt: skip
    conference = ConferenceSettings(
        database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}", keyserver_url="http://127.0.0.1:1",
        audience=CONFERENCE_AUDIENCE, **common,
    )  # fmt: skip
    both = idp.issue("alice", aud=[KEYSERVER_AUDIENCE, CONFERENCE_AUDIENCE])
    for app, audience in ((create_keyserver(keyserver), KEYSERVER_AUDIENCE),
                          (create_conference(conference), CONFERENCE_AUDIENCE)):  # fmt: skip
        with TestClient(app) as client:
            share = client.post("/v1/users/me/share", headers={"Authorization": f"Bearer {both}"})
            assert share.status_code == 401
            assert share.json()["error"]["code"] == "wrong_audience"
            own = idp.issue("alice", aud=audience)
            ok = client.post("/v1/users/me/share", headers={"Authorization": f"Bearer {own}"})
            assert ok.status_code == 200, ok.text


# --- times -----------------------------------------------------------------------------------


def test_a_token_not_yet_valid_is_refused(idp: DevIdentityProvider, clock: Clock) -> None:
    token = idp.issue("alice", nbf=int(clock.now) + 61)
    assert refused(idp, clock, token) == (
        401,
        "token_not_yet_valid",
        "the token is not valid for another 61 s (nbf; 60 s of clock skew allowed)",
    )


@pytest.mark.parametrize("seconds", [-3600, 0, 60])
def test_nbf_up_to_the_clock_skew_ahead_is_accepted(
    idp: DevIdentityProvider, clock: Clock, seconds: int
) -> None:
    token = idp.issue("alice", nbf=int(clock.now) + seconds)
    assert verify(idp, clock, token).user_id == "alice"


def test_nbf_is_checked_against_the_services_clock(idp: DevIdentityProvider, clock: Clock) -> None:
    token = idp.issue("alice", nbf=int(clock.now) + 100)
    assert refused(idp, clock, token)[1] == "token_not_yet_valid"
    clock.now += 40  # nbf is now 60 s ahead: within the skew allowed
    assert verify(idp, clock, token).user_id == "alice"


@pytest.mark.parametrize(
    ("nbf", "message"),
    [("soon", "nbf must be a number"), (True, "nbf must be a number"),
     (float("inf"), "nbf must be a finite number")],
)  # fmt: skip
def test_a_malformed_nbf_is_refused(
    idp: DevIdentityProvider, clock: Clock, nbf: Any, message: str
) -> None:
    assert refused(idp, clock, idp.issue("alice", nbf=nbf)) == (401, "invalid_token", message)


def test_exp_has_no_leeway(idp: DevIdentityProvider, clock: Clock) -> None:
    token = idp.issue("alice", exp=int(clock.now))
    assert refused(idp, clock, token) == (401, "token_expired", "the token has expired")


# --- the user id claim -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sub", "user_id"),
    [("auth0|123", "auth0~7C123"), ("ann@example.com", "ann@example.com"),
     ("ålice", "~C3~A5lice"), ("x" * 300, None)],
)  # fmt: skip
def test_subjects_beyond_the_id_characters_are_mapped(
    idp: DevIdentityProvider, clock: Clock, sub: str, user_id: str | None
) -> None:
    mapped = verify(idp, clock, idp.issue(sub)).user_id
    assert mapped == user_id if user_id else mapped.startswith("~H")


def test_another_claim_can_name_the_user(idp: DevIdentityProvider, clock: Clock) -> None:
    token = idp.issue("auth0|123", email="ann+x@example.com")
    identity = verify(idp, clock, token, user_id_claim="email")
    assert identity.user_id == "ann~2Bx@example.com"


def test_a_token_without_the_user_id_claim_is_refused(
    idp: DevIdentityProvider, clock: Clock
) -> None:
    token = idp.issue("alice")
    assert refused(idp, clock, token, user_id_claim="email") == (
        401,
        "invalid_token",
        "the token has no 'email' claim",
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [("", "the token's 'sub' claim is not a non-empty string"),
     (7, "the token's 'sub' claim is not a non-empty string"),
     ("\ud800", "the token's 'sub' claim: the user id claim is not valid Unicode")],
)  # fmt: skip
def test_a_user_id_claim_that_names_no_one_is_refused(
    idp: DevIdentityProvider, clock: Clock, value: Any, message: str
) -> None:
    assert refused(idp, clock, idp.issue(value)) == (401, "invalid_token", message)


# --- algorithms and keys ---------------------------------------------------------------------


def test_an_algorithm_not_accepted_is_named(idp: DevIdentityProvider, clock: Clock) -> None:
    token = jwt.encode({"sub": "alice"}, "k" * 32, algorithm="HS256")
    assert refused(idp, clock, token) == (
        401,
        "invalid_token",
        "the token's algorithm 'HS256' is not accepted (EdDSA, ES256, RS256)",
    )


def test_a_kid_not_in_the_configured_jwks_is_named(idp: DevIdentityProvider, clock: Clock) -> None:
    other = DevIdentityProvider(clock=clock)
    other.key_id = "rotated-key"
    assert refused(idp, clock, other.issue("alice")) == (
        401,
        "invalid_token",
        "no key in the configured JWKS has the token's kid 'rotated-key'",
    )


def test_odd_keys_in_a_jwks_do_not_cost_the_others(idp: DevIdentityProvider, clock: Clock) -> None:
    odd = [
        {"kty": "oct"},  # malformed (no k), and symmetric besides
        {"kty": "EC", "crv": "P-256", "x": "AA"},  # malformed
        {"kty": "OKP", "crv": "Ed448", "x": "AA"},  # a curve PyJWT does not take
        {**idp.jwks()["keys"][0], "use": "enc", "kid": "enc"},  # an encryption key
    ]
    jwks = {"keys": [*odd, *idp.jwks()["keys"]]}
    assert verify(idp, clock, idp.issue("alice"), jwks=jwks).user_id == "alice"
    with pytest.raises(ValueError, match="jwks: not a JWKS with a usable key"):
        settings(idp, clock, jwks={"keys": odd})


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"jwks_url": "http://127.0.0.1:1/jwks"}, "configure exactly one of issuer_url"),
        ({"jwks": None}, "configure exactly one of issuer_url"),
        ({"jwks": None, "issuer_url": "http://127.0.0.1:1"}, "issuer (VEIL_JWT_ISSUER): leave"),
        ({"jwks": None, "issuer": None, "issuer_url": "ftp://x"}, "issuer_url must be an http"),
        ({"jwks": None, "issuer": None, "issuer_url": "http://u:p@x"}, "not carry credentials"),
        ({"jwks": None, "issuer": None, "issuer_url": "http://x:99999"}, "has an invalid port"),
        ({"jwks": None, "jwks_url": "http://x/j#k"}, "jwks_url must not have a #fragment"),
        ({"issuer": None}, "issuer: name the issuer (iss) of your IdP's tokens"),
        ({"jwks": {"keys": [{"kty": "oct", "k": "AA"}]}}, "jwks: not a JWKS with a usable key"),
        ({"user_id_claim": ""}, "user_id_claim must name a claim"),
    ],
)
def test_settings_refuse_token_configurations_that_cannot_work(
    idp: DevIdentityProvider, clock: Clock, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        settings(idp, clock, **changes)


def test_variables_configure_discovery_and_the_claim() -> None:
    env = {"VEIL_JWT_ISSUER_URL": "https://sso.example/", "VEIL_JWT_USER_ID_CLAIM": "email"}
    for make in (
        lambda: KeyServerSettings.from_env(env, service_secret=bytes(32)),
        lambda: ConferenceSettings.from_env(env),
    ):
        loaded = make()
        assert (loaded.issuer_url, loaded.issuer, loaded.jwks_url, loaded.jwks) == (
            "https://sso.example/", None, None, None,
        )  # fmt: skip
        assert loaded.user_id_claim == "email"
    # without an issuer URL, the issuer is VEIL_JWT_ISSUER's, by default the dev IdP's
    plain = ConferenceSettings.from_env({"VEIL_JWKS_URL": "https://sso.example/jwks"})
    assert (plain.issuer, plain.user_id_claim) == ("veil-dev-idp", "sub")
    found = ConferenceSettings.from_env({}, issuer_url="https://sso.example")
    assert (found.issuer, found.issuer_url) == (None, "https://sso.example")
