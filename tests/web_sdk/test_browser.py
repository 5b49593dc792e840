"""The browser SDK in a real browser: headless Chromium loads the built ES modules
unchanged (an import map for @noble) and checks a vector document made here by Python:
ciphertexts at every level decrypt with the origin check, a tampered one is refused,
Python's SFrame frames open. The timings it reports are the ones `veil bench web`
would print; this test only requires them to be there."""

import json

from veil import vectors

from .browser import built_sdk, chromium, module_page, served

SCRIPT = """
import { run } from "/dist/test/browser/crypto-page.js";
const document = await (await fetch("/vectors.json")).json();
window.__result = await run(document, 3).catch((e) => ({ error: `${e.name}: ${e.message}` }));
"""


def test_the_crypto_core_runs_in_chromium_and_reads_python_values() -> None:
    root = built_sdk()
    pages = {
        "/page.html": module_page(SCRIPT),
        "/vectors.json": json.dumps(vectors.make()).encode(),
    }
    with chromium() as browser, served(root, pages) as url:
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(f"{url}/page.html")
        page.wait_for_function("window.__result !== undefined", timeout=120_000)
        result = page.evaluate("window.__result")
    assert not errors, errors
    assert "error" not in result, result["error"]
    assert result["checks"] == {
        "decrypt_l0": True, "decrypt_l1": True, "decrypt_l2": True,
        "tampered_refused": True, "python_frames": True,
    }  # fmt: skip
    for timing in (
        "decrypt_l2_ms", "encrypt_ms", "transform_key_ms", "escrow_unlock_ms", "sframe_us",
        "aes_gcm_us",
    ):  # fmt: skip
        assert result[timing] > 0, timing
