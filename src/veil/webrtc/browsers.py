"""Headless Chromium inside a test network namespace, driven by Playwright from the
test process. Playwright starts the browser itself and talks to it over a pipe
(``--remote-debugging-pipe``, file descriptors 3 and 4), so the browser it is given is
a two-line script that ``exec``s ``ip netns exec NAME chromium``: the pipe is
inherited through both execs, the browser's sockets are the namespace's, and no
debugging port is opened anywhere."""

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from veil.bench.browser import CHROMIUM, chromium_missing, headless_chromium

from .netns import Namespace, Unavailable


@contextlib.contextmanager
def chromium_in(ns: Namespace, folder: Path) -> Iterator[Any]:
    """A headless Chromium (Playwright's ``Browser``) whose network is ``ns``'s."""
    wrapper = folder / "chromium-in-netns"
    wrapper.write_text(f'#!/bin/sh\nexec ip netns exec {ns.name} {CHROMIUM} "$@"\n')
    wrapper.chmod(0o755)
    # Remote audio plays without a click, as in a meeting page the user opened.
    missing = chromium_missing()
    if missing is not None:
        raise Unavailable(missing)
    args = ["--autoplay-policy=no-user-gesture-required"]
    with headless_chromium(executable=wrapper, args=args) as b:
        yield b
