"""``IndexedDbDeviceStore`` in headless Chromium: a device context saved in one page
loads in the next (after a reload, and in a new page of the same profile); its storage
key and signing key are non-extractable CryptoKeys; every change to the stored record
is refused with a named error; and no secret reaches the console or JSON."""

import base64
from typing import Any

from .browser import built_sdk, chromium, module_page, served

SCRIPT = """
window.__store = await import("/dist/test/browser/store-page.js");
"""


def _open(context: Any, url: str, console: list[str], errors: list[str]) -> Any:
    page = context.new_page()
    page.on("console", lambda message: console.append(message.text))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{url}/store.html")
    page.wait_for_function("window.__store !== undefined", timeout=60_000)
    return page


def test_the_sealed_device_store_in_chromium() -> None:
    root = built_sdk()
    console: list[str] = []
    errors: list[str] = []
    with chromium() as browser, served(root, {"/store.html": module_page(SCRIPT)}) as url:
        context = browser.new_context()
        page = _open(context, url, console, errors)
        saved = page.evaluate("window.__store.save('alice')")
        plain = page.evaluate("window.__store.save('carol', false)")

        page.reload()
        page.wait_for_function("window.__store !== undefined", timeout=60_000)
        reloaded = page.evaluate("window.__store.load('alice')")
        page.close()
        page = _open(context, url, console, errors)  # a new page of the same profile
        again = page.evaluate("window.__store.load('alice')")
        carol = page.evaluate("window.__store.load('carol')")
        missing = page.evaluate("window.__store.load('nobody')")
        exported = page.evaluate("window.__store.exportAttempts('alice')")
        refused = page.evaluate("window.__store.tamper()")
        cleared = page.evaluate("window.__store.clear('alice')")
        other_profile = browser.new_context()
        elsewhere = _open(other_profile, url, console, errors).evaluate(
            "window.__store.load('alice')"
        )

    for loaded in (reloaded, again):
        assert {k: loaded[k] for k in saved} == saved
        assert loaded["signed"] is True
    assert {k: carol[k] for k in plain} == plain and carol["userKey"] is None
    assert missing is None and cleared is None and elsewhere is None

    assert exported == {
        "storage_extractable": "false",
        "storage_raw": "InvalidAccessError",
        "storage_jwk": "InvalidAccessError",
        "signer_extractable": "false",
        "signer_pkcs8": "InvalidAccessError",
        "signer_jwk": "InvalidAccessError",
    }
    assert refused == {
        "ciphertext_flipped": "DecryptionError",
        "tag_flipped": "DecryptionError",
        "document_id_changed": "DecryptionError",
        "nonce_flipped": "DecryptionError",
        "truncated": "InvalidLength",
        "extended": "DecryptionError",
        "other_storage_key": "DecryptionError",
        "storage_key_deleted": "StorageKeyMissing",
        "extractable_storage_key": "StorageKeyMissing",
        "signer_swapped": "DecryptionError",
        "record_replaced_by_another_devices": "DecryptionError",
        "not_a_record": "DecryptionError",
    }

    assert not errors, errors
    assert any(line.startswith("loaded") for line in console)  # the pages did log
    hexes = [saved["deviceKey"], saved["userKey"], plain["deviceKey"]]
    secrets = [*hexes, *(base64.urlsafe_b64encode(bytes.fromhex(h)).decode()[:40] for h in hexes)]
    assert all(secret not in line for secret in secrets for line in console)
    assert all(secret not in reloaded["json"] for secret in secrets)
    assert '"userId":"alice"' in reloaded["json"]
    assert "IndexedDbDeviceStore(alice)" in reloaded["json"]
