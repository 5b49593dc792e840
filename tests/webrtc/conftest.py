"""What the harness finds missing (root, iproute2, Janus, Chromium) is a skip here,
with its reason."""

from collections.abc import Generator

import pytest

from veil.webrtc.netns import Unavailable


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except Unavailable as missing:
        pytest.skip(str(missing))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    except Unavailable as missing:
        pytest.skip(str(missing))
