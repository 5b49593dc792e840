"""Headless Chromium and a loopback file server for the browser SDK (``web/``): what
``veil bench web`` measures with, and what the browser SDK's tests run it with
(tests/web_sdk/browser.py, which skips where this says something is missing).

Chromium is the system's (Debian's ``chromium`` package), driven by Playwright for
Python with ``executable_path``: Playwright's own browser download is never used. The
SDK's files are served from ``web/`` on ``127.0.0.1``, which browsers treat as a secure
context, so WebCrypto is there. An import map resolves the one runtime dependency's
bare specifiers (``@noble/curves``, which imports ``@noble/hashes``)."""

import contextlib
import functools
import http.server
import os
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("VEIL_CHROMIUM", "/usr/bin/chromium")
IMPORT_MAP = (
    '<script type="importmap">{"imports": {'
    '"@noble/curves/": "/node_modules/@noble/curves/", '
    '"@noble/hashes/": "/node_modules/@noble/hashes/"}}</script>'
)


def chromium_missing() -> str | None:
    """Why headless Chromium cannot run here (with what to install), or ``None``."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).exists():
        return f"Chromium is not installed at {CHROMIUM}: apt-get install chromium"
    return None


@contextlib.contextmanager
def headless_chromium(executable: Path | None = None, args: Sequence[str] = ()) -> Iterator[Any]:
    """A headless Chromium (Playwright's ``Browser``): the system's, or ``executable``,
    which must run it (e.g. a wrapper that puts it in a network namespace), with
    ``args`` added. Check ``chromium_missing`` first."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable or CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",  # as root
                "--use-fake-device-for-media-stream",
                "--use-fake-ui-for-media-stream",
                *args,
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def served(
    root: Path, pages: dict[str, bytes], listener: socket.socket | None = None
) -> Iterator[str]:
    """``root``'s files, and ``pages`` at their paths, on a loopback port (or on
    ``listener``, a socket listening on 127.0.0.1, e.g. in a network namespace); its URL."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            page = pages.get(self.path)
            if page is None:
                super().do_GET()
                return
            self.send_response(200)
            kind = "application/json" if self.path.endswith(".json") else "text/html"
            self.send_header("content-type", kind)
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *_: Any) -> None:
            pass

    handler: Callable[..., Handler] = functools.partial(Handler, directory=str(root))
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), handler, bind_and_activate=listener is None
    )
    if listener is not None:
        server.socket.close()
        server.socket = listener
        server.server_address = listener.getsockname()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def module_page(script: str) -> bytes:
    """An HTML page with the import map and one module script."""
    return f"<!doctype html>{IMPORT_MAP}<script type=module>{script}</script>".encode()
