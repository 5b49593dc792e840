"""Reading ``VEIL_*`` variables: a bad value names its variable, so that ``veil serve``
can refuse it before any worker starts (instead of each worker's traceback)."""

import json
from collections.abc import Mapping
from typing import Any

from veil.protocol import b64decode


def env_int(env: Mapping[str, str], name: str, default: int) -> int:
    text = env.get(name)
    if text is None:
        return default
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {text[:20]!r}") from None


def env_json(env: Mapping[str, str], name: str) -> Any:
    text = env.get(name)
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        raise ValueError(f"{name} must hold a JSON document (a JWKS)") from None


def env_secret(env: Mapping[str, str], name: str) -> bytes | None:
    """A 32-byte secret, base64url; its value never appears in the error."""
    text = env.get(name)
    if text is None:
        return None
    try:
        secret = b64decode(text)
    except ValueError:
        secret = b""
    if len(secret) != 32:
        raise ValueError(f"{name} must be 32 random bytes, base64url-encoded (43 characters)")
    return secret


DEV_ISSUER = "veil-dev-idp"
"""The issuer expected when neither ``VEIL_JWT_ISSUER`` nor ``VEIL_JWT_ISSUER_URL`` is
set: the dev IdP's, when it is not served at a URL (``veil.idp``)."""


_TOKEN_SETTINGS = ("issuer_url", "jwks_url", "jwks", "issuer", "user_id_claim")


def env_token_settings(env: Mapping[str, str], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Both services' token settings (``veil.web.tokens.TokenPolicy``) from
    ``VEIL_JWT_ISSUER_URL`` (OIDC discovery), ``VEIL_JWKS_URL`` or ``VEIL_JWKS``,
    ``VEIL_JWT_ISSUER`` (default ``veil-dev-idp``, except with an issuer URL, whose
    discovery names the issuer) and ``VEIL_JWT_USER_ID_CLAIM``, with ``overrides`` on
    top. The settings check how they combine."""
    values: dict[str, Any] = {
        "issuer_url": env.get("VEIL_JWT_ISSUER_URL") or None,
        "jwks_url": env.get("VEIL_JWKS_URL"),
        "jwks": env_json(env, "VEIL_JWKS"),
        "issuer": env.get("VEIL_JWT_ISSUER") or None,
    }
    if env.get("VEIL_JWT_USER_ID_CLAIM"):
        values["user_id_claim"] = env["VEIL_JWT_USER_ID_CLAIM"]
    values.update((k, v) for k, v in overrides.items() if k in _TOKEN_SETTINGS)
    if values["issuer"] is None and values["issuer_url"] is None:
        values["issuer"] = DEV_ISSUER
    return values
