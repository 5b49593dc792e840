"""The platform's share of a user's split-trust escrow password (``POST
/v1/users/me/share`` on the conference service)."""

from concurrent.futures import ThreadPoolExecutor

import httpx

from veil.idp import DevIdentityProvider
from veil.protocol import KEYSERVER_AUDIENCE, b64decode


def test_the_platform_share_needs_a_token_and_is_stable_per_user(conf) -> None:  # type: ignore[no-untyped-def]
    idp = conf.stack.idp
    alice, bob = f"alice-{conf.room()}", f"bob-{conf.room()}"

    with httpx.Client(base_url=conf.url, timeout=30) as http:

        def share(token: str) -> bytes:
            response = http.post("/v1/users/me/share", headers={"Authorization": f"Bearer {token}"})
            assert response.status_code == 200, response.text
            return b64decode(response.json()["share"])

        def refused(headers: dict[str, str]) -> str:
            response = http.post("/v1/users/me/share", headers=headers)
            assert response.status_code == 401, response.text
            return str(response.json()["error"]["code"])

        assert refused({}) == "missing_token"
        assert refused({"Authorization": "Basic YWxpY2U6c2VjcmV0"}) == "missing_token"
        assert refused({"Authorization": "Bearer not-a-jwt"}) == "invalid_token"
        assert refused({"Authorization": f"Bearer {DevIdentityProvider().issue(alice)}"}) == (
            "invalid_token"
        )
        expired = idp.issue(alice, exp=int(idp.clock()) - 5)
        assert refused({"Authorization": f"Bearer {expired}"}) == "token_expired"
        # A token the key service received cannot be replayed here (split trust).
        for_keyserver = idp.issue(alice, aud=KEYSERVER_AUDIENCE)
        assert refused({"Authorization": f"Bearer {for_keyserver}"}) == "wrong_audience"

        first = share(idp.issue(alice))
        assert len(first) == 16
        assert share(idp.issue(alice)) == first  # every call, every token: the same share
        assert share(idp.issue(alice)) == first
        assert share(idp.issue(bob)) != first

        # The key service's share is another, independent one, released only to a token
        # of the key service's audience (so the platform cannot replay one either).
        with httpx.Client(base_url=conf.stack.endpoints.keyserver_url, timeout=30) as keyserver:

            def keyserver_share(token: str) -> httpx.Response:
                headers = {"Authorization": f"Bearer {token}"}
                return keyserver.post("/v1/users/me/share", headers=headers)

            refused_there = keyserver_share(idp.issue(alice))
            response = keyserver_share(idp.issue(alice, aud=KEYSERVER_AUDIENCE))
        assert refused_there.status_code == 401
        assert refused_there.json()["error"]["code"] == "wrong_audience"
        assert response.status_code == 200
        assert b64decode(response.json()["share"]) != first

        # Concurrent first calls for a new user agree on one share.
        carol = f"carol-{conf.room()}"
        with ThreadPoolExecutor(8) as pool:
            shares = set(pool.map(lambda _: share(idp.issue(carol)), range(8)))
        assert len(shares) == 1
        assert shares != {first}
