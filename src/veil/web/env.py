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
