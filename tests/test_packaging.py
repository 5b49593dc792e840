"""What the package ships and what an install without the server extra can do (issue 16,
§4 and §5): ``py.typed``, a LICENSE that is the one ``pyproject.toml`` names, an SDK
that imports without the servers' libraries, and ``veil`` commands that say which
extra to install instead of a traceback."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from veil import cli

ROOT = Path(__file__).parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())

MODULE_OF = {
    "fastapi": "fastapi",
    "uvicorn": "uvicorn",
    "sqlalchemy": "sqlalchemy",
    "alembic": "alembic",
    "pyjwt": "jwt",
    "psycopg": "psycopg",
    "redis": "redis",
    "nats-py": "nats",
    "prometheus-client": "prometheus_client",
    "pydantic": "pydantic",
    "cachetools": "cachetools",
}
"""Each distribution of the ``server`` extra -> the module it is imported as."""


def server_modules() -> set[str]:
    names = {re.split(r"[\[<>=~!; ]", r, maxsplit=1)[0].lower() for r in _server_extra()}
    unmapped = names - set(MODULE_OF)
    assert not unmapped, f"a server dependency this test does not know: {unmapped}"
    return {MODULE_OF[name] for name in names}


def _server_extra() -> list[str]:
    return list(PYPROJECT["project"]["optional-dependencies"]["server"])


def without_server(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a Python where no module of the server extra can be imported, as
    after ``pip install -e .`` (Starlette comes with FastAPI)."""
    hidden = sorted(server_modules() | {"starlette", "pydantic_core"})
    script = f"import sys\nfor name in {hidden!r}:\n    sys.modules[name] = None\n{code}"
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=ROOT
    )


def test_the_package_ships_py_typed() -> None:
    assert (ROOT / "src" / "veil" / "py.typed").is_file()
    assert "py.typed" in PYPROJECT["tool"]["setuptools"]["package-data"]["veil"]


def test_the_license_file_is_the_license_pyproject_names() -> None:
    assert PYPROJECT["project"]["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text  # the whole license, not a pointer to it


def test_the_sdk_imports_without_the_server_extra() -> None:
    run = without_server(
        "import veil.client, veil.client.meeting, veil.protocol, veil.protocol.board\n"
        "import veil.crypto.pre, veil.crypto.sframe, veil.cli\n"
        "from veil.client import Device, Meeting, FileDeviceStore, MemoryDeviceStore\n"
        "print('ok')"
    )
    assert (run.returncode, run.stdout.strip()) == (0, "ok"), run.stderr


def test_every_server_module_is_one_the_cli_names_the_extra_for() -> None:
    """Whichever server module a command happens to import first, a missing one is the
    extra's hint, not a traceback."""
    assert server_modules() <= cli._SERVER_MODULES


@pytest.mark.parametrize(
    "argv", [["serve"], ["demo"], ["audit", "verify"], ["bench", "keyserver"], ["bench", "churn"]]
)
def test_a_server_command_without_the_extra_names_it(argv: list[str]) -> None:
    run = without_server(f"from veil.cli import main\nsys.exit(main({argv!r}))")
    assert run.returncode == 2, run.stderr
    assert "needs the server extra" in run.stderr and "pip install 'veil[server]'" in run.stderr
    assert "Traceback" not in run.stderr
