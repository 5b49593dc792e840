"""``/app/``: the browser SDK's example page, served by the conference service of the
all-in-one ``veil serve``.

The page and the SDK are static files of a Veil checkout's ``web/`` (``web_dir``),
built by ``cd web && npm ci && npm run build``: ``web/app/index.html`` and
``app.css``, the compiled modules under ``web/dist/app/`` and ``web/dist/src/``, and
the one runtime dependency's ES modules under ``web/node_modules/@noble/``. Nothing
else of ``web/`` is reachable: a request names a file under one of those roots, with
one of a few suffixes, or it is answered 404 (no directory listings, no dot segments
or encoded ones, no absolute paths, and the resolved file must still lie under its
root, so a symbolic link cannot lead out). ``/app/config.json`` tells the page where
the dev IdP and the key service are.

Every answer carries a strict Content-Security-Policy: scripts only from this origin
(and the page's inline import map, by its hash), connections only to this service
(HTTP and WebSocket), the key service and the IdP, nothing framed, no plugins.
"""

import base64
import hashlib
import html
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)

from veil.webdir import BUILD_COMMAND

PREFIX = "/app"
_ROOTS = {
    # URL path under /app/ -> directory under web_dir, and the suffixes served from it
    "dist/app/": ("dist/app", (".js",)),
    "dist/src/": ("dist/src", (".js",)),
    "node_modules/@noble/curves/": ("node_modules/@noble/curves", (".js",)),
    "node_modules/@noble/hashes/": ("node_modules/@noble/hashes", (".js",)),
    "": ("app", (".css", ".svg")),
}
_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
_SEGMENT = re.compile(r"^[A-Za-z0-9_@][A-Za-z0-9_.@-]*$")
"""A path segment that may be served: no dot segments, no hidden files, no separators
(a decoded ``%2f`` or a backslash), no NUL."""
_IMPORT_MAP = re.compile(rb'<script type="importmap">(.*?)</script>', re.DOTALL)
_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cache-control": "no-cache",
}


@dataclass(frozen=True)
class _Page:
    body: bytes
    script_hashes: tuple[str, ...]


def _read_page(web_dir: Path) -> _Page | None:
    """The page, once built; ``None`` while ``dist/app/app.js`` is missing."""
    index = web_dir / "app" / "index.html"
    if not (index.is_file() and (web_dir / "dist" / "app" / "app.js").is_file()):
        return None
    body = index.read_bytes()
    hashes = tuple(
        "'sha256-" + base64.b64encode(hashlib.sha256(found).digest()).decode() + "'"
        for found in _IMPORT_MAP.findall(body)
    )
    return _Page(body, hashes)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(
    request: Request, *, connect: tuple[str, ...], script_hashes: tuple[str, ...] = ()
) -> str:
    """This service's own origin (its WebSockets named too: older browsers' ``'self'``
    does not cover ``ws:``), and ``connect``'s origins, and nothing else."""
    own = _origin(str(request.base_url))
    websocket = ("wss://" if own.startswith("https://") else "ws://") + own.split("://", 1)[1]
    sources = " ".join(dict.fromkeys(("'self'", websocket, *map(_origin, connect))))
    return "; ".join(
        (
            "default-src 'none'",
            " ".join(("script-src 'self'", *script_hashes)),
            "style-src 'self'",
            "img-src 'self'",
            f"connect-src {sources}",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
            "object-src 'none'",
        )
    )


def _not_built(web_dir: Path) -> str:
    where = html.escape(str(web_dir))
    return (
        "<!doctype html><meta charset=utf-8><title>Veil: the web app is not built</title>"
        "<h1>The web app is not built</h1>"
        f"<p>The conference service looks for the browser SDK in <code>{where}</code> "
        "and found no built page there. In a Veil checkout, run</p>"
        f"<pre>{html.escape(BUILD_COMMAND)}</pre>"
        "<p>and reload; or point <code>VEIL_WEB_DIR</code> at a built <code>web/</code> "
        "directory and restart <code>veil serve</code>.</p>"
    )


def resolve(web_dir: Path, path: str) -> Path | None:
    """The file ``/app/<path>`` names, or ``None``: see the module's docstring."""
    for prefix, (folder, suffixes) in _ROOTS.items():
        if not path.startswith(prefix):
            continue
        rest = path[len(prefix) :]
        segments = rest.split("/")
        if prefix == "" and len(segments) != 1:
            continue  # the page's own folder: its top level only
        if not all(_SEGMENT.match(s) for s in segments) or not rest.endswith(suffixes):
            return None
        root = (web_dir / folder).resolve()
        found = (root / rest).resolve()
        if found.is_relative_to(root) and found.is_file():
            return found
        return None
    return None


def add_web_app(app: FastAPI, web_dir: Path, *, keyserver_url: str, idp_url: str | None) -> None:
    """Serve the example page and the SDK under ``/app/`` (see the module docstring)."""
    connect = (keyserver_url, *((idp_url,) if idp_url else ()))
    config = {"keyserver_url": keyserver_url, "idp_url": idp_url}

    def headers(request: Request, page: _Page | None = None) -> dict[str, str]:
        hashes = page.script_hashes if page else ()
        policy = content_security_policy(request, connect=connect, script_hashes=hashes)
        return {**_HEADERS, "content-security-policy": policy}

    @app.get(PREFIX, include_in_schema=False)
    def app_root() -> Response:
        return RedirectResponse(PREFIX + "/", status_code=308)

    @app.get(PREFIX + "/", include_in_schema=False)
    def index(request: Request) -> Response:
        page = _read_page(web_dir)  # read per request: a rebuild shows without a restart
        if page is None:
            return HTMLResponse(_not_built(web_dir), 404, headers=headers(request))
        return Response(
            page.body, media_type="text/html; charset=utf-8", headers=headers(request, page)
        )

    @app.get(PREFIX + "/config.json", include_in_schema=False)
    def page_config(request: Request) -> Response:
        return JSONResponse(config, headers=headers(request))

    @app.get(PREFIX + "/{path:path}", include_in_schema=False)
    def files(request: Request, path: str) -> Response:
        found = resolve(web_dir, path)
        if found is None:
            return PlainTextResponse("not found\n", 404, headers=headers(request))
        return FileResponse(found, media_type=_TYPES[found.suffix], headers=headers(request))
