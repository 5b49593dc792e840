"""Where the browser SDK is, and npm to build and run it; skips, saying why, when Node,
npm or the SDK's packages (``npm ci`` in web/) are missing. ``.ci/run`` installs them."""

import shutil
from pathlib import Path

import pytest

WEB = Path(__file__).resolve().parents[2] / "web"


def npm() -> str:
    """The npm command, once Node, npm and web/node_modules are known to be there."""
    command = shutil.which("npm")
    if command is None or shutil.which("node") is None:
        pytest.skip("Node.js and npm are not installed: the browser SDK cannot run here")
    if not (WEB / "node_modules").is_dir():
        pytest.skip("the browser SDK's packages are not installed: run `npm ci` in web/")
    return command
