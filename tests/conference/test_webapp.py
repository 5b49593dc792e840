"""``/app/`` (``veil.conference.webapp``): the example page and the browser SDK's files,
each with its content type and a strict Content-Security-Policy; nothing else of
``web/`` (no directory listing, no dot segments plain or encoded, no absolute paths,
no symbolic link out); and a page saying how to build it while it is not built. The
page itself runs in Chromium in tests/web_sdk/test_app_page.py."""

import base64
import hashlib
import html
import http.client
import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from veil.conference import create_app
from veil.webdir import BUILD_COMMAND, default_web_dir

IMPORT_MAP = b'{"imports": {"@noble/curves/": "./node_modules/@noble/curves/"}}'
PAGE = b'<!doctype html><script type="importmap">' + IMPORT_MAP + b"</script><p>the page"


def _web(root: Path) -> Path:
    """A built web/ in miniature, beside files that must stay out of reach."""
    web = root / "web"
    for path, text in {
        "app/index.html": PAGE,
        "app/app.css": b"body {}",
        "app/app.ts": b"// source",
        "app/.hidden.css": b"hidden",
        "dist/app/app.js": b"export const app = 1;",
        "dist/src/client/index.js": b"export const sdk = 1;",
        "dist/src/client/index.js.map": b"{}",
        "dist/test/secret.js": b"test code",
        "node_modules/@noble/curves/bls12-381.js": b"export const curve = 1;",
        "node_modules/other/index.js": b"not served",
        "package.json": b"{}",
    }.items():
        (web / path).parent.mkdir(parents=True, exist_ok=True)
        (web / path).write_bytes(text)
    (root / "secret.js").write_bytes(b"outside web/")
    (web / "dist/src/link.js").symlink_to(root / "secret.js")
    return web


def _get(url: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """``path`` sent as it is (http.client neither normalizes nor re-encodes it)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def _directives(policy: str) -> dict[str, str]:
    return {name: value for name, _, value in (part.partition(" ") for part in policy.split("; "))}


@pytest.fixture
def served(conf: Any, tmp_path: Path) -> Any:
    def serve(web_dir: Path) -> Any:
        settings = conf.stack.settings(
            f"sqlite:///{tmp_path / 'c.sqlite3'}",
            web_dir=web_dir,
            issuer_url=None,
            issuer="https://idp.example",
        )
        return conf.serve(create_app(settings))

    return serve


def test_the_page_its_files_and_their_headers(served: Any, tmp_path: Path) -> None:
    with served(_web(tmp_path)) as url:
        status, headers, body = _get(url, "/app/")
        assert status == 200 and body == PAGE
        assert headers["content-type"] == "text/html; charset=utf-8"
        assert headers["x-content-type-options"] == "nosniff"
        policy = _directives(headers["content-security-policy"])
        digest = base64.b64encode(hashlib.sha256(IMPORT_MAP).digest()).decode()
        assert policy["default-src"] == "'none'"
        assert policy["script-src"] == f"'self' 'sha256-{digest}'"
        keyserver = urlsplit(json.loads(_get(url, "/app/config.json")[2])["keyserver_url"])
        own = urlsplit(url).netloc
        assert policy["connect-src"].split() == [
            "'self'", f"ws://{own}", f"{keyserver.scheme}://{keyserver.netloc}",
        ]  # fmt: skip
        for directive in ("frame-ancestors", "object-src", "base-uri", "form-action"):
            assert policy[directive] == "'none'"

        assert _get(url, "/app")[0] == 308 and _get(url, "/app")[1]["location"] == "/app/"
        for path, kind in {
            "/app/app.css": "text/css; charset=utf-8",
            "/app/dist/app/app.js": "text/javascript; charset=utf-8",
            "/app/dist/src/client/index.js": "text/javascript; charset=utf-8",
            "/app/node_modules/@noble/curves/bls12-381.js": "text/javascript; charset=utf-8",
            "/app/config.json": "application/json",
        }.items():
            status, headers, _ = _get(url, path)
            assert (status, headers["content-type"]) == (200, kind), path
            assert "script-src 'self'" in headers["content-security-policy"], path


@pytest.mark.parametrize(
    "path",
    [
        "/app/../package.json",
        "/app/%2e%2e/package.json",
        "/app/%2E%2E/%2E%2E/secret.js",
        "/app/dist/src/../../package.json",
        "/app/dist/src/%2e%2e/%2e%2e/package.json",
        "/app/dist/src/..%2f..%2fpackage.json",
        "/app/dist%2fsrc%2f..%2f..%2f..%2fsecret.js",
        "/app/dist/src/..%5c..%5cpackage.json",
        "/app/dist/src/./client/index.js",
        "/app//etc/passwd",
        "/app/%2fetc%2fpasswd",
        "/app/dist/src//etc/passwd",
        "/app/dist/src/link.js",  # a symbolic link out of web/
        "/app/dist/src/client/index.js%00.js",
        "/app/dist/src/",  # directories: no listing
        "/app/dist/src",
        "/app/dist/",
        "/app/node_modules/@noble/",
        "/app/dist/src/client/index.js.map",  # only the suffixes each root serves
        "/app/app.ts",
        "/app/index.html",
        "/app/.hidden.css",
        "/app/package.json",
        "/app/dist/test/secret.js",  # only the roots the page needs
        "/app/node_modules/other/index.js",
        "/app/dist/app/missing.js",
    ],
)
def test_nothing_else_is_reachable(served: Any, tmp_path: Path, path: str) -> None:
    with served(_web(tmp_path)) as url:
        status, _, body = _get(url, path)
    assert status in (404, 400), (path, status)  # 400: uvicorn refuses a NUL itself
    assert b"outside web/" not in body and b"{}" not in body and b"test code" not in body


def test_a_page_that_is_not_built_says_how_to_build_it(served: Any, tmp_path: Path) -> None:
    web = tmp_path / "web"
    (web / "app").mkdir(parents=True)
    (web / "app" / "index.html").write_bytes(PAGE)  # the source is there; dist/ is not
    with served(web) as url:
        status, headers, body = _get(url, "/app/")
    assert status == 404 and headers["content-type"].startswith("text/html")
    assert html.escape(BUILD_COMMAND).encode() in body and str(web).encode() in body
    assert "default-src 'none'" in headers["content-security-policy"]


def test_the_web_directory_is_the_checkouts_unless_configured(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("VEIL_WEB_DIR", raising=False)
    assert (default_web_dir() / "package.json").is_file()  # this checkout's web/
    monkeypatch.setenv("VEIL_WEB_DIR", str(tmp_path))
    assert default_web_dir() == tmp_path


def test_no_app_unless_a_web_directory_is_set(conf: Any, tmp_path: Path) -> None:
    settings = conf.stack.settings(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    with conf.serve(create_app(settings)) as url:
        assert _get(url, "/app/")[0] == 404
