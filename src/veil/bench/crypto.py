"""``veil bench crypto``: PRE operations, SFrame and AES-GCM, optionally beside recrypt.

The PRE timings start from decoded objects and include what Veil does on the real
path: the transform and decrypt timings include checking the Ed25519 signatures of
their inputs (``.verify()``). recrypt is IronCore's PRE library in its WebAssembly
build, timed by ``../shared/peers/recrypt.sh`` in the same run.
"""

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from veil.bench.timing import median_us_interleaved
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import decrypt, encrypt, generate_transform_key, transform
from veil.crypto.sframe import SFrameReceiver, SFrameSender
from veil.crypto.signing import SigningKey

PRE_OPERATIONS = (
    "keygen",
    "encrypt",
    "transform_key",
    "transform_l0_to_l1",
    "transform_l1_to_l2",
    "decrypt_l0",
    "decrypt_l1",
    "decrypt_l2",
)
FRAME_SIZE = 1200


def measure_pre(runs: int) -> dict[str, float | int]:
    signer, transformer = SigningKey.generate(), SigningKey.generate()
    a, b, c = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
    m = Plaintext.generate()
    level0 = encrypt(m, a.public_key, signer)
    ab = generate_transform_key(a, b.public_key, signer)
    bc = generate_transform_key(b, c.public_key, signer)
    level1 = transform(level0, ab, transformer)
    level2 = transform(level1, bc, transformer)
    if decrypt(level2, c) != m:
        raise RuntimeError("PRE round trip failed; refusing to report timings")
    operations = {
        "keygen": PrivateKey.generate,
        "encrypt": lambda: encrypt(m, a.public_key, signer),
        "transform_key": lambda: generate_transform_key(a, b.public_key, signer),
        "transform_l0_to_l1": lambda: transform(level0.verify(), ab.verify(), transformer),
        "transform_l1_to_l2": lambda: transform(level1.verify(), bc.verify(), transformer),
        "decrypt_l0": lambda: decrypt(level0.verify(), a),
        "decrypt_l1": lambda: decrypt(level1.verify(), b),
        "decrypt_l2": lambda: decrypt(level2.verify(), c),
    }
    # One call of each operation in turn, round after round: a slow spell of the
    # machine (here one lasted about a second) then slows a few calls of every
    # operation, not every call of one of them.
    medians = median_us_interleaved(operations, batches=runs, size=1)
    result: dict[str, float | int] = {
        name: round(median / 1e3, 4) for name, median in medians.items()
    }
    for level, value in enumerate((level0, level1, level2)):
        result[f"bytes_l{level}"] = len(bytes(value))
    return result


def measure_frames(batches: int) -> dict[str, float]:
    frame = os.urandom(FRAME_SIZE)
    base_key = os.urandom(32)
    sender = SFrameSender(kid=0x10001, base_key=base_key)
    receiver = SFrameReceiver()
    receiver.add_key(0x10001, base_key)

    def sframe_round_trip() -> bytes:
        return receiver.unprotect(sender.protect(frame))

    aead, nonce = AESGCM(os.urandom(32)), os.urandom(12)

    def aesgcm_round_trip() -> bytes:
        return aead.decrypt(nonce, aead.encrypt(nonce, frame, None), None)

    medians = median_us_interleaved(
        {"sframe_roundtrip_us": sframe_round_trip, "aesgcm_roundtrip_us": aesgcm_round_trip},
        batches=batches,
        size=200,
    )
    return {name: round(value, 3) for name, value in medians.items()}


def run(runs: int) -> dict[str, float | int]:
    return {**measure_pre(runs), **measure_frames(max(runs // 2, 5))}


def find_peer_script(explicit: str | None) -> Path:
    """The script that times IronCore's recrypt: ``--peer-script``, or ``recrypt.sh`` in
    the ``shared/peers`` folder beside the checkout (the team's shared material, not
    part of the repository)."""
    candidates = (
        [Path(explicit)]
        if explicit
        else [
            Path.cwd().parent / "shared" / "peers" / "recrypt.sh",
            Path(__file__).resolve().parents[3].parent / "shared" / "peers" / "recrypt.sh",
        ]
    )
    for path in candidates:
        if path.is_file():
            return path
    looked = ", ".join(dict.fromkeys(str(p) for p in candidates))
    raise FileNotFoundError(
        f"the recrypt peer script was not found at {looked}: it lives in the team's shared "
        "folder beside the checkout (shared/peers/recrypt.sh); pass --peer-script PATH"
    )


def run_peer(script: Path, runs: int) -> dict[str, Any]:
    completed = subprocess.run(  # noqa: S603 - a script path the operator chose
        ["bash", str(script)],  # noqa: S607
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "RUNS": str(runs)},
        timeout=600,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"recrypt peer failed: {completed.stderr.strip()[-500:]}")
    peer: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return peer


def ratios(ours: dict[str, float | int], peer: dict[str, Any]) -> dict[str, float]:
    return {
        name: round(float(peer[name]) / float(ours[name]), 2)
        for name in PRE_OPERATIONS
        if name in peer and ours.get(name)
    }
