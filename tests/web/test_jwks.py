"""The IdP's keys over real HTTP on loopback (``veil.web.jwks``, ``veil.web.oidc``):
OIDC discovery, caching, refresh on a timer and for an unknown kid (with a floor),
stale keys while the IdP is down, and failures that name the URL and the cause with
503 ``jwks_unavailable``. And the services answer other requests (``/healthz``) while
their IdP's JWKS endpoint is slow: fetching keys never blocks the event loop."""

import asyncio
import json
import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from veil.conference import ConferenceSettings
from veil.conference.app import create_app as create_conference
from veil.idp import DevIdentityProvider
from veil.keyserver import KeyServerSettings
from veil.keyserver.app import create_app as create_keyserver
from veil.protocol import CONFERENCE_AUDIENCE, KEYSERVER_AUDIENCE
from veil.web.errors import ApiError
from veil.web.jwks import JwksCachePolicy
from veil.web.tokens import Identity, JwtVerifier

from .conftest import Clock, FakeOidc, Served

POLICY = JwksCachePolicy(
    refresh_seconds=300, min_refetch_seconds=10, timeout_seconds=2, max_stale_seconds=3600
)


def verifier(clock: Clock, policy: JwksCachePolicy = POLICY, **source: Any) -> JwtVerifier:
    settings = KeyServerSettings(
        database_url="sqlite://", service_secret=bytes(32), audience=KEYSERVER_AUDIENCE,
        clock=clock, jwks_cache=policy, **source,
    )  # fmt: skip
    return JwtVerifier(settings)


async def verify(jwt: JwtVerifier, token: str) -> Identity:
    return await jwt.verify(token, fresh=False)


async def refusal(jwt: JwtVerifier, token: str) -> tuple[int, str, str]:
    with pytest.raises(ApiError) as caught:
        await jwt.verify(token, fresh=False)
    return caught.value.status, caught.value.code, caught.value.message


async def settle() -> None:
    """Let a background refresh finish."""
    for _ in range(100):
        await asyncio.sleep(0.02)
        if not any(t is not asyncio.current_task() for t in asyncio.all_tasks()):
            return


# --- discovery -------------------------------------------------------------------------------


def test_discovery_finds_the_keys_and_the_issuer(oidc: FakeOidc, clock: Clock) -> None:
    async def main() -> None:
        jwt = verifier(clock, issuer_url=oidc.url)
        assert (await verify(jwt, oidc.issue("auth0|1"))).user_id == "auth0~7C1"
        assert (await verify(jwt, oidc.issue("bob"))).user_id == "bob"  # from the cache
        assert (oidc.hits["discovery"], oidc.hits["jwks"]) == (1, 1)
        status, code, message = await refusal(jwt, oidc.issue(iss="https://evil.example"))
        assert (status, code) == (401, "wrong_issuer")
        assert (
            message == f"token issuer 'https://evil.example' is not this service's ('{oidc.url}')"
        )

    asyncio.run(main())


def test_a_trailing_slash_on_the_issuer_url_is_the_same_issuer(
    oidc: FakeOidc, clock: Clock
) -> None:
    async def main() -> None:
        jwt = verifier(clock, issuer_url=oidc.url + "/")
        assert (await verify(jwt, oidc.issue())).user_id == "alice"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("document", "cause"),
    [
        ({"issuer": "https://elsewhere.example"},
         "it names the issuer 'https://elsewhere.example', not the configured issuer URL"),
        ({"issuer": None}, "it has no issuer"),
        ({"jwks_uri": None}, "it has no jwks_uri"),
        ({"jwks_uri": "ftp://127.0.0.1/jwks"}, "its jwks_uri must be an http(s) URL"),
    ],
)  # fmt: skip
def test_a_discovery_document_that_cannot_be_used_is_503_naming_why(
    oidc: FakeOidc, clock: Clock, document: dict[str, Any], cause: str
) -> None:
    oidc.discovery = document

    async def main() -> None:
        status, code, message = await refusal(verifier(clock, issuer_url=oidc.url), oidc.issue())
        assert (status, code) == (503, "jwks_unavailable")
        where = f"{oidc.url}/.well-known/openid-configuration"
        assert message.startswith(
            f"the identity provider's discovery document at {where} is not usable: {cause}"
        )
        assert oidc.hits["jwks"] == 0

    asyncio.run(main())


def test_a_missing_discovery_document_is_503_naming_the_url(
    serve: Callable[[Any], Served], clock: Clock
) -> None:
    idp = serve(__import__("veil.idp", fromlist=["create_app"]).create_app())
    wrong = idp.url + "/realms/none"

    async def main() -> None:
        assert await refusal(verifier(clock, issuer_url=wrong), "a.b.c") == (
            401, "invalid_token", "the bearer token is not a JWT",
        )  # fmt: skip
        token = DevIdentityProvider().issue("alice")
        assert await refusal(verifier(clock, issuer_url=wrong), token) == (
            503,
            "jwks_unavailable",
            "the identity provider's discovery document could not be fetched from "
            f"{wrong}/.well-known/openid-configuration: HTTP 404",
        )

    asyncio.run(main())


# --- what a failing JWKS endpoint yields -----------------------------------------------------


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"status": 500}, "keys could not be fetched from {jwks}: HTTP 500"),
        ({"body": b"<html>"}, "keys could not be fetched from {jwks}: the answer is not JSON"),
        ({"body": b"x" * (1024 * 1024 + 1)},
         "keys could not be fetched from {jwks}: the answer is larger than 1 MiB"),
        ({"jwks": {"keys": []}}, "key set at {jwks} is not usable: it has no usable signing key"),
        ({"jwks": {"nokeys": 1}}, 'key set at {jwks} is not usable: it is not a JWKS ({{"keys"'),
        ({"jwks": {"keys": [{"kty": "EC", "use": "enc", "crv": "P-256", "x": "AA"}]}},
         "key set at {jwks} is not usable: it has no usable signing key"),
        ({"delay": 5.0}, "keys could not be fetched from {jwks}: timeout after 0.5 s"),
    ],
)  # fmt: skip
def test_a_failing_jwks_is_503_jwks_unavailable_naming_the_url_and_cause(
    oidc: FakeOidc, clock: Clock, change: dict[str, Any], cause: str
) -> None:
    for name, value in change.items():
        setattr(oidc, name, value)
    policy = JwksCachePolicy(timeout_seconds=0.5)

    async def main() -> None:
        jwt = verifier(clock, policy, issuer_url=oidc.url)
        started = time.monotonic()
        status, code, message = await refusal(jwt, oidc.issue())
        assert time.monotonic() - started < 2
        assert (status, code) == (503, "jwks_unavailable")
        assert message.startswith(
            "the identity provider's " + cause.format(jwks=oidc.url + "/jwks")
        ), message

    asyncio.run(main())


def test_an_unreachable_jwks_url_is_503_naming_it(clock: Clock) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{sock.getsockname()[1]}/jwks"

    async def main() -> None:
        jwt = verifier(clock, jwks_url=url, issuer="veil-dev-idp")
        status, code, message = await refusal(jwt, DevIdentityProvider().issue("alice"))
        assert (status, code) == (503, "jwks_unavailable")
        assert message.startswith(
            f"the identity provider's keys could not be fetched from {url}: ConnectError"
        )

    asyncio.run(main())


def test_errors_name_the_url_without_its_query(oidc: FakeOidc, clock: Clock) -> None:
    oidc.status = 500
    url = oidc.url + "/jwks?client_secret=hunter2"

    async def main() -> None:
        jwt = verifier(clock, jwks_url=url, issuer=oidc.url)
        _, code, message = await refusal(jwt, oidc.issue())
        assert code == "jwks_unavailable" and "hunter2" not in message
        assert f"{oidc.url}/jwks?…: HTTP 500" in message

    asyncio.run(main())


def test_after_a_failure_the_idp_is_asked_again_only_after_the_floor(
    oidc: FakeOidc, clock: Clock
) -> None:
    oidc.status = 503

    async def main() -> None:
        jwt = verifier(clock, issuer_url=oidc.url)
        for _ in range(5):  # answered from the last failure, without asking again
            assert (await refusal(jwt, oidc.issue()))[:2] == (503, "jwks_unavailable")
        assert oidc.hits["jwks"] == 1
        oidc.status = 200
        clock.now += 9
        assert (await refusal(jwt, oidc.issue()))[1] == "jwks_unavailable"
        clock.now += 1
        assert (await verify(jwt, oidc.issue())).user_id == "alice"
        assert oidc.hits["jwks"] == 2

    asyncio.run(main())


def test_concurrent_requests_share_one_fetch(oidc: FakeOidc, clock: Clock) -> None:
    oidc.delay = 0.3

    async def main() -> None:
        jwt = verifier(clock, issuer_url=oidc.url)
        tokens = [oidc.issue(f"user-{i}") for i in range(20)]
        identities = await asyncio.gather(*(verify(jwt, t) for t in tokens))
        assert [i.user_id for i in identities] == [f"user-{i}" for i in range(20)]
        assert (oidc.hits["discovery"], oidc.hits["jwks"]) == (1, 1)

    asyncio.run(main())


def test_a_request_cancelled_while_waiting_does_not_cancel_the_fetch(
    oidc: FakeOidc, clock: Clock
) -> None:
    oidc.delay = 0.3

    async def main() -> None:
        jwt = verifier(clock, issuer_url=oidc.url)
        first = asyncio.create_task(verify(jwt, oidc.issue()))
        await asyncio.sleep(0.1)
        first.cancel()
        assert (await verify(jwt, oidc.issue("bob"))).user_id == "bob"
        assert oidc.hits["jwks"] == 1

    asyncio.run(main())


# --- refresh ---------------------------------------------------------------------------------


def test_keys_are_refreshed_in_the_background_once_old(oidc: FakeOidc, clock: Clock) -> None:
    async def main() -> None:
        jwt = verifier(clock, issuer_url=oidc.url)
        await verify(jwt, oidc.issue())
        clock.now += 299
        await verify(jwt, oidc.issue())
        await settle()
        assert oidc.hits["jwks"] == 1
        clock.now += 1
        oidc.delay = 0.3  # the refresh takes a while; requests do not wait for it
        started = time.monotonic()
        await verify(jwt, oidc.issue())
        assert time.monotonic() - started < 0.2
        await settle()
        assert (oidc.hits["discovery"], oidc.hits["jwks"]) == (2, 2)

    asyncio.run(main())


def test_a_rotated_key_is_fetched_when_a_token_names_it(oidc: FakeOidc, clock: Clock) -> None:
    async def main() -> None:
        jwt = verifier(clock, issuer_url=oidc.url)
        await verify(jwt, oidc.issue())
        clock.now += 10
        old = oidc.provider
        oidc.provider = DevIdentityProvider(issuer=oidc.url, clock=clock)  # rotated at the IdP
        assert (await verify(jwt, oidc.issue("bob"))).user_id == "bob"
        assert oidc.hits["jwks"] == 2
        # the old key is gone from the set: its tokens name a kid no longer there
        status, code, message = await refusal(jwt, old.issue("alice"))
        assert (status, code) == (401, "invalid_token")
        assert message == (
            f"no key in the JWKS from {oidc.url}/jwks has the token's kid '{old.key_id}'"
        )

    asyncio.run(main())


def test_unknown_kids_cannot_make_the_service_hammer_its_idp(oidc: FakeOidc, clock: Clock) -> None:
    async def main() -> None:
        jwt = verifier(clock, issuer_url=oidc.url)
        await verify(jwt, oidc.issue())
        clock.now += 10
        for n in range(50):
            forger = DevIdentityProvider(issuer=oidc.url, clock=clock)
            forger.key_id = f"made-up-{n}"
            assert (await refusal(jwt, forger.issue("alice")))[:2] == (401, "invalid_token")
            clock.now += 0.1
        assert oidc.hits["jwks"] == 2  # one refetch for the first unknown kid, then the floor

    asyncio.run(main())


def test_cached_keys_serve_while_the_idp_is_down_until_too_stale(
    oidc: FakeOidc, clock: Clock
) -> None:
    async def main() -> None:
        jwt = verifier(clock, issuer_url=oidc.url)
        await verify(jwt, oidc.issue())
        oidc.status = 500
        clock.now += 1800
        assert (await verify(jwt, oidc.issue())).user_id == "alice"  # stale, still served
        await settle()
        assert oidc.hits["jwks"] == 2  # and a refresh was tried
        clock.now += 1801  # an hour after the last success: no longer trusted
        status, code, message = await refusal(jwt, oidc.issue())
        assert (status, code) == (503, "jwks_unavailable")
        assert message.endswith(f"could not be fetched from {oidc.url}/jwks: HTTP 500")

    asyncio.run(main())


# --- the services go on answering while the JWKS is slow ------------------------------------


def _services(oidc: FakeOidc, tmp_path: Any, timeout: float) -> dict[str, Any]:
    common: dict[str, Any] = {
        "issuer_url": oidc.url,
        "jwks_cache": JwksCachePolicy(timeout_seconds=timeout),
    }
    return {
        KEYSERVER_AUDIENCE: create_keyserver(
            KeyServerSettings(
                database_url=f"sqlite:///{tmp_path / 'k.sqlite3'}",
                service_secret=bytes(32),
                audience=KEYSERVER_AUDIENCE,
                **common,
            )
        ),
        CONFERENCE_AUDIENCE: create_conference(
            ConferenceSettings(
                database_url=f"sqlite:///{tmp_path / 'c.sqlite3'}",
                keyserver_url="http://127.0.0.1:1",
                audience=CONFERENCE_AUDIENCE,
                **common,
            )
        ),
    }


async def _share_while_probing(url: str, token: str) -> tuple[httpx.Response, list[float]]:
    """Ask for the escrow share (which needs the IdP's keys) and, while that waits,
    probe ``/healthz``: each probe's time, and the share's answer."""
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        share = asyncio.create_task(
            http.post("/v1/users/me/share", headers={"Authorization": f"Bearer {token}"})
        )
        probes: list[float] = []
        await asyncio.sleep(0.2)
        while not share.done():
            started = time.monotonic()
            response = await http.get("/healthz")
            assert response.status_code == 200
            probes.append(time.monotonic() - started)
            await asyncio.sleep(0.1)
        return await share, probes


@pytest.mark.parametrize("audience", [KEYSERVER_AUDIENCE, CONFERENCE_AUDIENCE])
def test_a_slow_jwks_does_not_stop_the_service_answering(
    oidc: FakeOidc, serve: Callable[[Any], Served], tmp_path: Any, audience: str
) -> None:
    """The regression: a JWKS endpoint taking 30 s froze the conference service."""
    oidc.delay = 1.5
    service = serve(_services(oidc, tmp_path, timeout=5)[audience])
    response, probes = asyncio.run(_share_while_probing(service.url, oidc.issue(aud=audience)))
    assert response.status_code == 200, response.text
    assert len(probes) >= 5 and max(probes) < 0.5, probes


@pytest.mark.parametrize("audience", [KEYSERVER_AUDIENCE, CONFERENCE_AUDIENCE])
def test_a_jwks_slower_than_the_timeout_is_503_while_the_service_answers(
    oidc: FakeOidc, serve: Callable[[Any], Served], tmp_path: Any, audience: str
) -> None:
    oidc.delay = 30.0
    service = serve(_services(oidc, tmp_path, timeout=1)[audience])
    response, probes = asyncio.run(_share_while_probing(service.url, oidc.issue(aud=audience)))
    assert response.status_code == 503
    assert response.json()["error"] == {
        "code": "jwks_unavailable",
        "message": "the identity provider's keys could not be fetched from "
        f"{oidc.url}/jwks: timeout after 1 s",
    }
    assert len(probes) >= 3 and max(probes) < 0.5, probes


async def _hello_while_probing(url: str, token: str) -> tuple[dict[str, Any], list[float]]:
    """Open a meeting's board and send a hello (its token is checked on the event loop,
    where a blocking fetch had frozen the conference service), probing ``/healthz``
    while the service checks it: each probe's time, and the service's answer."""
    ws_url = url.replace("http://", "ws://") + "/v1/rooms/room-1/board"
    async with connect(ws_url) as board, httpx.AsyncClient(base_url=url, timeout=30) as http:
        assert json.loads(await board.recv())["type"] == "challenge"
        hello = {"type": "hello", "token": token, "device_id": "d" * 32, "signature": "AA"}
        await board.send(json.dumps(hello))
        answer = asyncio.create_task(board.recv())
        probes: list[float] = []
        await asyncio.sleep(0.2)
        while not answer.done():
            started = time.monotonic()
            assert (await http.get("/healthz")).status_code == 200
            probes.append(time.monotonic() - started)
            await asyncio.sleep(0.1)
        return json.loads(await answer), probes


def test_a_slow_jwks_does_not_freeze_the_board_handshake(
    oidc: FakeOidc, serve: Callable[[Any], Served], tmp_path: Any
) -> None:
    oidc.delay = 1.5
    service = serve(_services(oidc, tmp_path, timeout=5)[CONFERENCE_AUDIENCE])
    token = oidc.issue(aud=CONFERENCE_AUDIENCE)
    answer, probes = asyncio.run(_hello_while_probing(service.url, token))
    # The token verified; the device lookup then fails (no key service in this test).
    assert (answer["type"], answer["code"]) == ("error", "keyserver_unavailable")
    assert len(probes) >= 5 and max(probes) < 0.5, probes


def test_a_jwks_timeout_refuses_the_hello_naming_the_cause(
    oidc: FakeOidc, serve: Callable[[Any], Served], tmp_path: Any
) -> None:
    oidc.delay = 30.0
    service = serve(_services(oidc, tmp_path, timeout=1)[CONFERENCE_AUDIENCE])
    token = oidc.issue(aud=CONFERENCE_AUDIENCE)
    answer, probes = asyncio.run(_hello_while_probing(service.url, token))
    assert answer == {
        "type": "error",
        "code": "jwks_unavailable",
        "message": "the identity provider's keys could not be fetched from "
        f"{oidc.url}/jwks: timeout after 1 s",
    }
    assert len(probes) >= 3 and max(probes) < 0.5, probes
