"""Veil's services in processes of their own, for the tests that need real ones:
``veil`` subcommands started and stopped (SIGINT, then a kill after 20 s), a free
loopback port (``free_port``, the benchmark's), and waiting until a URL answers."""

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx

from veil.bench.keyserver import free_port

__all__ = ["VEIL", "free_port", "process", "wait_for"]

VEIL = [sys.executable, "-m", "veil.cli"]


@contextlib.contextmanager
def process(
    *args: str, env: dict[str, str] | None = None, **popen: Any
) -> Iterator[subprocess.Popen[str]]:
    """``veil *args`` with ``env`` added to this environment; its standard output piped
    and its errors dropped unless ``popen`` says otherwise. Stopped as ``veil serve``
    stops, unless it already ended (a test killed it)."""
    options: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.DEVNULL}
    child = subprocess.Popen(
        [*VEIL, *args], text=True, env={**os.environ, **(env or {})}, **{**options, **popen}
    )
    try:
        yield child
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def wait_for(url: str, child: subprocess.Popen[str]) -> None:
    """Until ``url`` gives any answer (the service is serving); fails if ``child`` exits
    or a minute passes."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert child.poll() is None, f"the service for {url} exited"
        with contextlib.suppress(httpx.TransportError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.2)
    raise AssertionError(f"{url} did not answer")
