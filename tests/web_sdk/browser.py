"""Headless Chromium for the browser SDK's tests: the system's Chromium (Debian's
``chromium`` package) driven by Playwright for Python, and the built SDK served from
``web/`` on loopback (a browser gives WebCrypto to ``http://127.0.0.1`` pages, a
secure context). Everything skips, saying why, when Chromium, Playwright, Node or the
SDK's packages are missing; ``.ci/run`` installs them."""

import contextlib
import functools
import http.server
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from .node import WEB, npm

CHROMIUM = "/usr/bin/chromium"
IMPORT_MAP = (
    '<script type="importmap">{"imports": {'
    '"@noble/curves/": "/node_modules/@noble/curves/", '
    '"@noble/hashes/": "/node_modules/@noble/hashes/"}}</script>'
)


def built_sdk() -> Path:
    """web/, built (``npm run build``); skips when it cannot be."""
    done = subprocess.run(
        [npm(), "run", "--silent", "build"], cwd=WEB, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"npm run build failed:\n{done.stdout}\n{done.stderr}"
    return WEB


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


@contextlib.contextmanager
def chromium(executable: Path | None = None, args: Sequence[str] = ()) -> Iterator[Any]:
    """A headless Chromium browser (Playwright's ``Browser``): the system's, or
    ``executable``, which must run it (e.g. a wrapper that puts it in a namespace)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install -e '.[test]')")
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed: apt-get install chromium")
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


def module_page(script: str) -> bytes:
    """An HTML page with the import map and one module script."""
    return f"<!doctype html>{IMPORT_MAP}<script type=module>{script}</script>".encode()
