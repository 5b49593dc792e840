"""The example page at ``/app/``, as ``veil serve`` serves it, in headless Chromium:
it loads under its Content-Security-Policy without a console error, signs in through
the dev IdP, sets the browser up as a split-trust device saved in IndexedDB, and loads
that device again after a reload. The policy holds: an inline script does not run."""

from pathlib import Path
from typing import Any

from veil.idp import DevIdentityProvider
from veil.stack import threaded_stack

from .browser import built_sdk, chromium

TIMEOUT = 120_000  # ms: a new device's PRE keys, escrow (PBKDF2 600,000) and registration


def _sign_in(page: Any, user: str) -> dict[str, str]:
    # Selectors, not wait_for_function: Playwright evaluates a predicate with eval(),
    # which the page's policy refuses.
    page.wait_for_selector("#status[data-state=ready]")
    page.fill("#user", user)
    page.click("#sign-in-button")
    page.wait_for_selector(
        "#status[data-state=signed-in], #status[data-state=error]", timeout=TIMEOUT
    )
    fields = ("status", "user-id", "device-id", "mode", "saved")
    return {f: page.text_content(f"#{f}") or "" for f in fields}


def test_the_page_signs_in_and_keeps_its_device(tmp_path: Path) -> None:
    web = built_sdk()
    console: list[str] = []
    with (
        threaded_stack(tmp_path, idp=DevIdentityProvider(), discovery=True, web_dir=web) as stack,
        chromium() as browser,
    ):
        url = stack.endpoints.conference_url + "/app/"
        profile = browser.new_context()
        profile.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
        profile.on("weberror", lambda error: console.append(f"pageerror: {error.error}"))
        page = profile.new_page()
        refused: list[str] = []
        profile.on("response", lambda r: r.ok or refused.append(f"{r.status} {r.url}"))
        answer = page.goto(url)
        assert answer is not None and answer.status == 200
        assert "script-src 'self' 'sha256-" in answer.headers["content-security-policy"]
        first = _sign_in(page, "ann@example.com")
        assert first["status"] == "Signed in as ann@example.com.", first
        assert first["mode"] == "split-trust" and first["device-id"]
        assert first["saved"] == "registered now, saved in this browser"
        assert page.is_visible("#meeting") and not page.is_visible("#sign-in")

        page.reload()
        again = _sign_in(page, "ann@example.com")
        assert again["device-id"] == first["device-id"], (first, again)
        assert again["saved"] == "loaded from this browser"
        other = profile.new_page()
        other.goto(url)
        assert _sign_in(other, "bob")["device-id"] not in ("", first["device-id"])
        # The one refusal is the protocol's: a new user's escrow lookup answers 404 (one
        # for each new user), and Chromium logs every 4xx that a fetch meets.
        escrow = f"404 {stack.endpoints.keyserver_url}/v1/users/me/escrow"
        assert refused == [escrow, escrow], refused
        logged = "error: Failed to load resource: the server responded with a status of 404"
        assert [line for line in console if not line.startswith(logged)] == [], console

        page.evaluate(
            "() => { const s = document.createElement('script');"
            " s.textContent = 'window.__inline = 1'; document.body.append(s); }"
        )
        assert page.evaluate("window.__inline") is None
        assert any("Content Security Policy" in line for line in console), console
