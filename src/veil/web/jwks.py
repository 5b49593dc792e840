"""The IdP's signing keys: a JWKS given in the settings, or fetched over HTTP (from a
URL, or the ``jwks_uri`` that OIDC discovery names) without ever blocking the event
loop, cached, and refreshed.

A fetched key set is refreshed in the background once it is ``refresh_seconds`` old
(requests go on with the cached keys meanwhile), and at once when a token names a
``kid`` the set lacks (keys rotated at the IdP) — but never sooner than
``min_refetch_seconds`` after the last attempt, so tokens with made-up kids cannot make
a service hammer its IdP. Keys stay in use while refreshes fail, for up to
``max_stale_seconds``. One fetch is in flight at a time; requests that need keys share
it. When no usable keys can be had, requests get 503 ``jwks_unavailable``, naming the
URL and the cause (a timeout, an HTTP status, a malformed document).
"""

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from jwt import PyJWK

from veil.web.errors import ApiError, unauthorized
from veil.web.oidc import (
    Discovery,
    DiscoveryError,
    discovery_url,
    parse_discovery,
    redacted,
    shown,
)

log = logging.getLogger(__name__)

MAX_DOCUMENT_BYTES = 1024 * 1024
"""A JWKS or discovery document larger than this is refused (real ones are a few kB)."""


@dataclass(frozen=True)
class JwksCachePolicy:
    """How a fetched JWKS is kept (see the module's docstring). ``from_env`` reads each
    field from ``VEIL_JWKS_<FIELD>`` (``VEIL_JWKS_REFRESH_SECONDS``, ...)."""

    refresh_seconds: float = 300.0
    min_refetch_seconds: float = 10.0
    timeout_seconds: float = 5.0
    """For one fetch, discovery and key set together."""
    max_stale_seconds: float = 3600.0

    def __post_init__(self) -> None:
        for name in ("refresh_seconds", "min_refetch_seconds", "timeout_seconds"):
            if not getattr(self, name) > 0:
                raise ValueError(f"jwks_cache.{name} (VEIL_JWKS_{name.upper()}) must be positive")
        if not self.min_refetch_seconds <= self.refresh_seconds <= self.max_stale_seconds:
            raise ValueError(
                "jwks_cache: need min_refetch_seconds <= refresh_seconds <= max_stale_seconds "
                "(VEIL_JWKS_MIN_REFETCH_SECONDS, VEIL_JWKS_REFRESH_SECONDS, "
                "VEIL_JWKS_MAX_STALE_SECONDS)"
            )


def usable_keys(document: Any) -> tuple[PyJWK, ...]:
    """The public signing keys of a JWKS document; ``ValueError`` says why there are
    none. Keys that cannot be used (unknown types or curves, malformed, encryption or
    symmetric keys) are skipped, so one odd key does not cost the others."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError('it is not a JWKS ({"keys": [...]})')
    keys = tuple(key for key in map(_signing_key, document["keys"]) if key is not None)
    if not keys:
        raise ValueError("it has no usable signing key")
    return keys


def _signing_key(entry: Any) -> PyJWK | None:
    """A public signing key, or ``None``: a symmetric ("oct") key in a published set is
    no one's, and an encryption key signs nothing."""
    try:
        key = PyJWK(entry)
    except Exception:  # PyJWT raises many kinds for malformed keys (KeyError, ...)
        return None
    return key if key.public_key_use in (None, "sig") and key.key_type != "oct" else None


def jwks_unavailable(message: str) -> ApiError:
    return ApiError(503, "jwks_unavailable", message)


def _select(keys: tuple[PyJWK, ...], kid: str | None, algorithm: str) -> PyJWK | None:
    """The key a token's header names: by ``kid``, or without one the first key of the
    token's algorithm."""
    if kid is not None:
        return next((k for k in keys if k.key_id == kid), None)
    return next((k for k in keys if k.algorithm_name == algorithm), None)


class StaticKeys:
    """A JWKS given in the settings (``VEIL_JWKS``): no network, no refresh."""

    issuer: str | None = None

    def __init__(self, document: dict[str, Any]) -> None:
        self._keys = usable_keys(document)

    async def find(self, kid: str | None, algorithm: str) -> PyJWK:
        key = _select(self._keys, kid, algorithm)
        if key is None:
            raise _no_key(kid, algorithm, "the configured JWKS")
        return key


def _no_key(kid: str | None, algorithm: str, where: str) -> ApiError:
    if kid is None:
        message = f"the token has no kid and {where} has no {algorithm} key"
    else:
        message = f"no key in {where} has the token's kid {shown(kid)}"
    return unauthorized("invalid_token", message)


class _FetchError(Exception):
    """One fetch failed; the message names the URL and the cause."""


class RemoteKeys:
    """The IdP's keys from ``jwks_url``, or from the ``jwks_uri`` of ``issuer_url``'s
    discovery document (whose ``issuer``, once fetched, is ``self.issuer``). Discovery
    is fetched again with every key set, so a moved ``jwks_uri`` is followed."""

    def __init__(
        self,
        *,
        jwks_url: str | None = None,
        issuer_url: str | None = None,
        policy: JwksCachePolicy = JwksCachePolicy(),
        clock: Callable[[], float],
    ) -> None:
        if (jwks_url is None) == (issuer_url is None):
            raise ValueError("give exactly one of jwks_url and issuer_url")
        self._jwks_url, self._issuer_url = jwks_url, issuer_url
        self._policy, self._clock = policy, clock
        self.issuer: str | None = None
        """The discovered issuer (with ``issuer_url``, once keys have been fetched)."""
        self._source = jwks_url or discovery_url(issuer_url or "")
        self._keys: tuple[PyJWK, ...] = ()
        self._fetched_at: float | None = None  # last success
        self._attempted_at: float | None = None  # last attempt, successful or not
        self._failure: str | None = None  # why the last attempt failed
        self._task: asyncio.Task[None] | None = None

    async def find(self, kid: str | None, algorithm: str) -> PyJWK:
        """The key for a token's header; 503 ``jwks_unavailable`` when no usable keys
        can be had, 401 ``invalid_token`` when none fits the token."""
        await self._usable()
        key = _select(self._keys, kid, algorithm)
        if key is None and kid is not None and self._may_fetch():
            await self._fetch()  # the IdP may have rotated its keys since
            key = _select(self._keys, kid, algorithm)
        if key is None:
            raise _no_key(kid, algorithm, f"the JWKS from {redacted(self._source)}")
        return key

    def _may_fetch(self) -> bool:
        attempted = self._attempted_at
        return attempted is None or self._clock() - attempted >= self._policy.min_refetch_seconds

    async def _usable(self) -> None:
        """Keys young enough to use, fetching them first if there are none; a refresh
        in the background once they are ``refresh_seconds`` old."""
        age = None if self._fetched_at is None else self._clock() - self._fetched_at
        if age is None or age > self._policy.max_stale_seconds:
            if not self._may_fetch() and not self._in_flight():
                # It failed a moment ago: say why at once rather than ask again.
                raise jwks_unavailable(self._failure or "the identity provider's keys are stale")
            await self._fetch()
        elif age >= self._policy.refresh_seconds and self._may_fetch():
            self._start()

    def _in_flight(self) -> bool:
        task = self._task
        return task is not None and not task.done() and task.get_loop() is _loop()

    def _start(self) -> "asyncio.Task[None]":
        if self._in_flight():
            assert self._task is not None
            return self._task
        self._attempted_at = self._clock()
        task = self._task = _loop().create_task(self._refresh())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # retrieved
        return task

    async def _fetch(self) -> None:
        """Fetch now (or join the fetch in flight); 503 if it fails. A request that is
        cancelled while waiting does not cancel the fetch others share."""
        await asyncio.shield(self._start())
        if self._failure is not None:
            raise jwks_unavailable(self._failure)

    async def _refresh(self) -> None:
        try:
            issuer, keys = await self._download()
        except _FetchError as error:
            self._failure = str(error)
            log.warning("%s", error)
        else:
            self.issuer, self._keys = issuer, keys
            self._fetched_at, self._failure = self._clock(), None

    async def _download(self) -> tuple[str | None, tuple[PyJWK, ...]]:
        timeout = self._policy.timeout_seconds
        stage = _cannot("keys", self._source)
        try:
            async with asyncio.timeout(timeout), httpx.AsyncClient(timeout=timeout) as http:
                issuer, jwks_url = None, self._jwks_url
                if self._issuer_url is not None:
                    where = discovery_url(self._issuer_url)
                    stage = _cannot("discovery document", where)
                    document = await _get_json(http, where, stage)
                    discovery = _discovery(document, where, self._issuer_url)
                    issuer, jwks_url = discovery.issuer, discovery.jwks_uri
                    self._source = jwks_url
                assert jwks_url is not None
                stage = _cannot("keys", jwks_url)
                document = await _get_json(http, jwks_url, stage)
        except (TimeoutError, httpx.TimeoutException):
            raise _FetchError(f"{stage}: timeout after {timeout:g} s") from None
        try:
            return issuer, usable_keys(document)
        except ValueError as error:
            raise _FetchError(
                f"the identity provider's key set at {redacted(jwks_url)} is not usable: {error}"
            ) from None


def _cannot(what: str, url: str) -> str:
    return f"the identity provider's {what} could not be fetched from {redacted(url)}"


def _discovery(document: Any, where: str, issuer_url: str) -> Discovery:
    try:
        return parse_discovery(document, issuer_url)
    except DiscoveryError as error:
        raise _FetchError(
            f"the identity provider's discovery document at {redacted(where)} is not "
            f"usable: {error}"
        ) from None


async def _get_json(http: httpx.AsyncClient, url: str, stage: str) -> Any:
    """A JSON document from ``url`` (200 only, no redirects, at most
    ``MAX_DOCUMENT_BYTES``); ``_FetchError`` says ``stage`` and why not."""
    try:
        async with http.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise _FetchError(f"{stage}: HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise _FetchError(f"{stage}: the answer is larger than 1 MiB")
    except httpx.TimeoutException:
        raise  # the caller names the time it allowed
    except httpx.HTTPError as error:
        raise _FetchError(f"{stage}: {type(error).__name__} ({error})") from None
    try:
        return json.loads(body)
    except ValueError:
        raise _FetchError(f"{stage}: the answer is not JSON") from None


def _loop() -> asyncio.AbstractEventLoop:
    return asyncio.get_running_loop()
