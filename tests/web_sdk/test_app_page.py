"""The example page at ``/app/``, as ``veil serve`` serves it, in headless Chromium:
it loads under its Content-Security-Policy without a console error, signs in through
the dev IdP, sets the browser up as a split-trust device saved in IndexedDB, and loads
that device again after a reload. The policy holds: an inline script does not run."""

import json
import re
from pathlib import Path
from typing import Any

from veil.client.invitation import Invitation
from veil.crypto.keys import PrivateKey
from veil.idp import DevIdentityProvider
from veil.stack import threaded_stack

from .browser import built_sdk, chromium

TIMEOUT = 120_000  # ms: a new device's PRE keys, escrow (PBKDF2 600,000) and registration


def _sign_in(page: Any, user: str) -> dict[str, str]:
    # Selectors, not wait_for_function: Playwright evaluates a predicate with eval(),
    # which the page's policy refuses.
    page.wait_for_selector("#status[data-state=ready]", timeout=TIMEOUT)
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


XSS = "<img src=x onerror=\"document.title='run'\"><b>bold</b>"
IN_MEETING = "#meeting-live[data-state=in-meeting]"


def _texts(page: Any, selector: str) -> list[str]:
    return [e.text_content() or "" for e in page.query_selector_all(selector)]


def _meeting(page: Any) -> dict[str, Any]:
    return {
        "epoch": page.text_content("#epoch"),
        "code": page.text_content("#security-code"),
        "participants": _texts(page, "#participants li"),
        "chat": [
            (
                item.query_selector(".chat-user").text_content(),
                item.query_selector(".chat-text").text_content(),
            )
            for item in page.query_selector_all("#chat-log li")
        ],
        "problems": _texts(page, "#problems li"),
    }


def test_two_browsers_meet_chat_and_part(tmp_path: Path) -> None:
    """Alice starts a meeting inviting bob, who opens the invitation link in another
    browser profile and joins: both see the same epoch and security code, chat flows
    both ways, markup in a message is shown as text, bob's leave moves alice to the
    next epoch and code, and alice ends the meeting."""
    web = built_sdk()
    console: list[str] = []
    requested: list[str] = []
    refused: list[str] = []
    with (
        threaded_stack(tmp_path, idp=DevIdentityProvider(), discovery=True, web_dir=web) as stack,
        chromium() as browser,
    ):
        url = stack.endpoints.conference_url + "/app/"
        pages = {}
        for user in ("alice", "bob"):
            profile = browser.new_context()  # a browser of its own: its own IndexedDB
            profile.on("console", lambda m, u=user: console.append(f"{u} {m.type}: {m.text}"))
            profile.on("weberror", lambda e, u=user: console.append(f"{u} pageerror: {e.error}"))
            profile.on("request", lambda r: requested.append(r.url))
            profile.on(
                "response", lambda r, u=user: r.ok or refused.append(f"{u} {r.status} {r.url}")
            )
            pages[user] = profile.new_page()
        a, b = pages["alice"], pages["bob"]

        a.goto(url)
        assert _sign_in(a, "alice")["status"] == "Signed in as alice."
        a.fill("#invitees", "bob")
        a.click("#start-button")
        a.wait_for_selector(f"{IN_MEETING}[data-epoch='0']", timeout=TIMEOUT)
        link = a.get_attribute("#invitation-link", "href") or ""
        meeting_id = a.text_content("#meeting-id") or ""
        assert link.startswith(url + "#invite=veil-meeting-v1:" + meeting_id + ":"), link
        assert a.text_content("#invitation-link") == link
        assert a.is_disabled("#leave") and a.is_enabled("#end")  # the manager ends, not leaves

        b.goto(link)
        signed_in = _sign_in(b, "bob")
        assert signed_in["status"].startswith("Signed in as bob. You were invited"), signed_in
        assert b.input_value("#join-link") == link
        # Invitations that must not be followed are refused by name, joining nothing.
        forged = Invitation(meeting_id, PrivateKey.generate().public_key)  # not the group's key
        for bad, error in {
            url + "#invite=" + str(forged): "UntrustedInvitation: the invitation's group key"
            " is not the one the key service holds",
            link[:-8]: "RangeError: the invitation's group key is malformed",
            link.replace(meeting_id, "bad/id"): "RangeError: the invitation's meeting id is"
            " not a valid id",
            url + "#nothing": "RangeError: not a Veil meeting invitation"
            " (expected 'veil-meeting-v1:<id>:<key>')",
        }.items():
            b.fill("#join-link", bad)
            b.click("#join-button")
            # (each wait names its message: the status shows the previous one until then)
            b.wait_for_selector(f"#status[data-state=error]:text-is({json.dumps(error)})")
            assert b.is_hidden("#meeting-live") and b.is_visible("#join-form")
        b.fill("#join-link", link)
        b.click("#join-button")
        b.wait_for_selector(f"{IN_MEETING}[data-epoch='0']", timeout=TIMEOUT)
        for page in (a, b):
            page.wait_for_selector("#participants li[data-user=bob]")
            page.wait_for_selector("#participants li[data-user=alice][data-manages]")
        first = _meeting(a)
        assert re.fullmatch(r"\d{5} \d{5}", first["code"]), first
        assert _meeting(b)["code"] == first["code"] and _meeting(b)["epoch"] == "0"
        assert first["participants"] == ["alice (this device, manages, host)", "bob"]
        assert _meeting(b)["participants"] == ["alice (manages, host)", "bob (this device)"]
        assert b.is_enabled("#leave") and b.is_disabled("#end")
        assert b.is_disabled("#sign-out")  # the device stays while it is in a meeting

        a.fill("#chat-text", "hello bob")
        a.click("#chat-send")
        b.wait_for_selector("#chat-log li:nth-child(1)")
        b.fill("#chat-text", "hello alice")
        b.click("#chat-send")
        b.fill("#chat-text", XSS)
        b.click("#chat-send")
        for page in (a, b):
            page.wait_for_selector("#chat-log li:nth-child(3)")
            assert _meeting(page)["chat"] == [
                ("alice", "hello bob"), ("bob", "hello alice"), ("bob", XSS),
            ]  # fmt: skip
            # Shown as text: no element was made of it, so nothing was loaded or run.
            assert page.query_selector("#chat-log img, #chat-log b") is None
            assert page.title() == "Veil"
        assert not [u for u in requested if u.startswith(url + "x")], requested
        # The invitation travelled in fragments only: no request carried it.
        assert not [u for u in requested if "veil-meeting-v1" in u or "invite=" in u], requested

        b.click("#leave")
        b.wait_for_selector("#meeting-live[data-state=left]")
        b.wait_for_selector("#status:has-text('keys were rotated')", timeout=TIMEOUT)
        assert _meeting(b)["epoch"] == "—" and _meeting(b)["code"] == "—"
        assert b.is_visible("#start-form") and b.is_enabled("#sign-out")
        a.wait_for_selector(f"{IN_MEETING}[data-epoch='1']", timeout=TIMEOUT)  # after the debounce
        after = _meeting(a)
        assert re.fullmatch(r"\d{5} \d{5}", after["code"]) and after["code"] != first["code"]
        assert after["participants"] == ["alice (this device, manages, host)"]

        a.click("#end")
        a.wait_for_selector("#meeting-live[data-state=ended]")
        a.wait_for_selector("#status:has-text('keys were rotated')", timeout=TIMEOUT)
        for page in (a, b):
            assert _meeting(page)["problems"] == []
            assert page.is_hidden("#status[data-state=error]")

    # What the browser logged is each refusal the protocol expects, and nothing else:
    # a new user's escrow lookup answers 404 (once per user), and the joiner's request
    # for the key is refused (403) while the manager has not yet added bob to the
    # meeting's group (the SDK retries after 1, 5, 10 and 10 s); Chromium logs every
    # 4xx a fetch meets.
    keys = stack.endpoints.keyserver_url
    waiting = f"bob 403 {keys}/v1/transform"
    expected = [f"alice 404 {keys}/v1/users/me/escrow", f"bob 404 {keys}/v1/users/me/escrow"]
    assert [r for r in refused if r != waiting] == expected, refused
    assert refused.count(waiting) <= 5, refused
    logged = "{} error: Failed to load resource: the server responded with a status of {} ({})"
    reasons = {"403": "Forbidden", "404": "Not Found"}
    lines = [r.split() for r in refused]
    assert sorted(console) == sorted(logged.format(u, s, reasons[s]) for u, s, _ in lines), (
        console,
        refused,
    )
