"""Headless Chromium for the browser SDK's tests (``veil.bench.browser``: the system's
Chromium driven by Playwright for Python, and the built SDK served from ``web/`` on
loopback). Everything skips, saying why, when Chromium, Playwright, Node or the SDK's
packages are missing; ``.ci/run`` installs them."""

import contextlib
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from veil.bench.browser import IMPORT_MAP, chromium_missing, headless_chromium, module_page, served

from .node import WEB, npm

__all__ = ["IMPORT_MAP", "built_sdk", "chromium", "module_page", "served"]


def built_sdk() -> Path:
    """web/, built (``npm run build``); skips when it cannot be."""
    done = subprocess.run(
        [npm(), "run", "--silent", "build"], cwd=WEB, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, f"npm run build failed:\n{done.stdout}\n{done.stderr}"
    return WEB


@contextlib.contextmanager
def chromium(executable: Path | None = None, args: Sequence[str] = ()) -> Iterator[Any]:
    """A headless Chromium browser (Playwright's ``Browser``; ``headless_chromium``
    says what the arguments do); skips where there is none."""
    missing = chromium_missing()
    if missing is not None:
        pytest.skip(missing)
    with headless_chromium(executable, args) as browser:
        yield browser
