"""OpenID Connect discovery (OpenID Connect Discovery 1.0, section 4): from an issuer
URL to the issuer's key set. Only ``issuer`` and ``jwks_uri`` are read; the services
verify tokens, they do not sign users in."""

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

DISCOVERY_PATH = "/.well-known/openid-configuration"


class DiscoveryError(ValueError):
    """The discovery document is not usable; the message says why."""


@dataclass(frozen=True)
class Discovery:
    issuer: str
    """Exactly what tokens carry in ``iss``."""
    jwks_uri: str


def discovery_url(issuer_url: str) -> str:
    """Where the issuer publishes its configuration (a trailing ``/`` of the issuer
    URL is not doubled, as the specification says)."""
    return issuer_url.rstrip("/") + DISCOVERY_PATH


def check_http_url(url: str, name: str) -> None:
    """An http(s) URL with a host and neither credentials nor a fragment: what a
    service can fetch, and can name in an error without leaking a secret."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{name} must not carry credentials")
    if parts.fragment:
        raise ValueError(f"{name} must not have a #fragment")
    try:
        parts.port  # noqa: B018 (urllib checks the port when it is read)
    except ValueError:
        raise ValueError(f"{name} has an invalid port") from None


def parse_discovery(document: Any, issuer_url: str) -> Discovery:
    """The issuer and key-set URL of a discovery document fetched for ``issuer_url``.

    The document's ``issuer`` must be the URL it was fetched for (the specification
    requires it; a trailing ``/`` aside), so a host cannot vouch for tokens of another
    issuer; and an https issuer's keys must come over https too."""
    if not isinstance(document, dict):
        raise DiscoveryError("it is not a JSON object")
    issuer, jwks_uri = document.get("issuer"), document.get("jwks_uri")
    if not isinstance(issuer, str) or not issuer:
        raise DiscoveryError("it has no issuer")
    if issuer.rstrip("/") != issuer_url.rstrip("/"):
        raise DiscoveryError(
            f"it names the issuer {shown(issuer)}, not the configured issuer URL "
            f"{shown(issuer_url)}"
        )
    if not isinstance(jwks_uri, str):
        raise DiscoveryError("it has no jwks_uri")
    try:
        check_http_url(jwks_uri, "its jwks_uri")
    except ValueError as error:
        raise DiscoveryError(str(error)) from None
    if urlsplit(issuer_url).scheme == "https" and urlsplit(jwks_uri).scheme != "https":
        raise DiscoveryError("its jwks_uri is plain http while the issuer is https")
    return Discovery(issuer, jwks_uri)


def shown(value: object, limit: int = 100) -> str:
    """``repr(value)`` cut to ``limit`` characters: a value from a token or a remote
    document, quoted in an error without letting it flood the message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def redacted(url: str) -> str:
    """``url`` as an error may show it: without credentials, query or fragment."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ":?"
    query = "?…" if parts.query else ""
    return f"{parts.scheme}://{host}{port}{parts.path}{query}"
