"""A platform whose IdP names users in another claim than ``sub``: the services read it
(``VEIL_JWT_USER_ID_CLAIM``) and so does the SDK (``Device.initialize(user_id_claim=)``),
end to end against a stack of the real services taking ``email``: a new user's escrow
is bound to the id that claim makes, so a second device opens it."""

import secrets
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from veil.client.device import _user_id_of
from veil.idp import DevIdentityProvider
from veil.protocol.ids import user_id_for
from veil.stack import stack_in_thread

from .conftest import Sdk, Stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    idp = DevIdentityProvider()
    data_dir = tmp_path_factory.mktemp("stack")
    with stack_in_thread(data_dir, idp=idp, user_id_claim="email") as endpoints:
        yield Stack(endpoints, idp, data_dir)


def tokens(idp: DevIdentityProvider, subject: str, email: str) -> Callable[[str], Awaitable[str]]:
    """Tokens whose ``sub`` is the IdP's opaque id and whose ``email`` names the user."""

    async def token(audience: str) -> str:
        return idp.issue(subject, aud=audience, email=email)

    return token


def someone() -> tuple[str, str]:
    tag = secrets.token_hex(4)
    return f"auth0|{tag}", f"ann+{tag}@example.com"


def test_the_sdk_binds_a_new_user_to_the_claim_the_services_read(sdk: Sdk) -> None:
    subject, email = someone()
    token = tokens(sdk.stack.idp, subject, email)

    async def main() -> None:
        first = await sdk.device("", tokens=token, user_id_claim="email")
        assert first.user_id == user_id_for(email) == email.replace("+", "~2B")
        document = await first.documents.encrypt(b"agenda")
        await first.user_key()  # the escrow opens for the id the service assigned
        second = await sdk.device("", tokens=token, user_id_claim="email")
        assert second.user_id == first.user_id and second.device_id != first.device_id
        assert await second.documents.decrypt(document) == b"agenda"

    sdk.run(main)


def test_the_sdk_on_another_claim_than_the_services_says_so(sdk: Sdk) -> None:
    subject, email = someone()

    async def main() -> None:
        with pytest.raises(ValueError) as caught:  # the SDK's default: sub
            await sdk.device("", tokens=tokens(sdk.stack.idp, subject, email))
        assert str(caught.value) == (
            f"the key service named the new user {user_id_for(email)!r}, but its escrow was "
            f"bound to {user_id_for(subject)!r}, the id the token's 'sub' claim makes: give "
            "Device.initialize the user_id_claim the services read (VEIL_JWT_USER_ID_CLAIM)"
        )

    sdk.run(main)


def test_a_token_without_the_sdks_claim_is_refused_before_anything_is_created(
    sdk: Sdk,
) -> None:
    subject, email = someone()
    token = tokens(sdk.stack.idp, subject, email)

    async def main() -> None:
        with pytest.raises(ValueError, match="the token has no 'uid' claim"):
            await sdk.device("", tokens=token, user_id_claim="uid")
        # no user was created (with an escrow bound to the wrong id): a device on the
        # services' claim starts the user afresh
        device = await sdk.device("", tokens=token, user_id_claim="email")
        assert device.user_id == user_id_for(email)
        await device.user_key()

    sdk.run(main)


@pytest.mark.parametrize(
    ("claims", "claim", "result"),
    [
        ({"sub": "auth0|1"}, "sub", "auth0~7C1"),
        ({"sub": "x", "email": "ann@example.com"}, "email", "ann@example.com"),
        ({"sub": "x"}, "email", "the token has no 'email' claim"),
        ({"sub": "x", "email": ""}, "email", "the token's 'email' claim is not a non-empty"),
        ({"sub": "x", "uid": 7}, "uid", "the token's 'uid' claim is not a non-empty string"),
    ],
)
def test_the_user_id_is_read_from_the_claim_named(
    claims: dict[str, Any], claim: str, result: str
) -> None:
    idp = DevIdentityProvider()
    token = idp.issue(claims.pop("sub"), **claims)
    if result.startswith("the token"):
        with pytest.raises(ValueError, match=result):
            _user_id_of(token, claim)
    else:
        assert _user_id_of(token, claim) == result


def test_a_token_that_is_no_jwt_is_refused() -> None:
    with pytest.raises(ValueError, match="the token is not a JWT"):
        _user_id_of("not-a-token")
