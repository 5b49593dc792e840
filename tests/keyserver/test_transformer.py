"""The transform worker pool: answers, errors, cancelled requests and dead workers."""

import asyncio
import os
import secrets
import signal
from collections.abc import Iterator

import pytest

from veil.crypto.errors import DecodeError
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt, generate_transform_key
from veil.crypto.signing import SigningKey
from veil.keyserver.transformer import Transformer, TransformerUnavailable

SIGNER = SigningKey.generate()
GROUP, USER, DEVICE = PrivateKey.generate(), PrivateKey.generate(), PrivateKey.generate()
KEYS = [
    bytes(generate_transform_key(GROUP, USER.public_key, SIGNER)),
    bytes(generate_transform_key(USER, DEVICE.public_key, SIGNER)),
]


@pytest.fixture(scope="module")
def transformer() -> Iterator[Transformer]:
    pool = Transformer(secrets.token_bytes(32), workers=1)
    yield pool
    pool.close()


def _sealed() -> tuple[Plaintext, bytes]:
    secret = Plaintext.generate()
    return secret, bytes(encrypt(secret, GROUP.public_key, SIGNER))


def _opened(transformed: bytes) -> Plaintext:
    return decrypt(EncryptedValue.from_bytes(transformed).verify(), DEVICE)


def test_concurrent_jobs_each_get_their_own_answer(transformer: Transformer) -> None:
    jobs = [_sealed() for _ in range(4)]  # more jobs than workers: they queue

    async def run() -> list[bytes]:
        return await asyncio.gather(*(transformer.run_async(value, KEYS) for _, value in jobs))

    answers = asyncio.run(run())
    assert [_opened(answer) for answer in answers] == [secret for secret, _ in jobs]


def test_a_workers_error_reaches_the_caller_intact(transformer: Transformer) -> None:
    with pytest.raises(DecodeError):
        asyncio.run(transformer.run_async(b"\x01\x02" + bytes(100), KEYS))
    secret, value = _sealed()
    assert _opened(asyncio.run(transformer.run_async(value, KEYS))) == secret


def test_a_cancelled_request_does_not_hand_its_answer_to_the_next(
    transformer: Transformer,
) -> None:
    first, second = _sealed(), _sealed()

    async def run() -> bytes:
        abandoned = asyncio.create_task(transformer.run_async(first[1], KEYS))
        await asyncio.sleep(0.001)  # the job is in the worker
        abandoned.cancel()
        return await transformer.run_async(second[1], KEYS)

    assert _opened(asyncio.run(run())) == second[0]


def test_a_dead_worker_fails_its_job_and_is_replaced(transformer: Transformer) -> None:
    worker = transformer._idle[0]
    assert worker.process.pid is not None
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.join(timeout=10)
    secret, value = _sealed()
    with pytest.raises(TransformerUnavailable):
        asyncio.run(transformer.run_async(value, KEYS))
    assert transformer._idle and transformer._idle[0] is not worker
    assert _opened(asyncio.run(transformer.run_async(value, KEYS))) == secret


def test_a_closed_transformer_refuses_work() -> None:
    pool = Transformer(secrets.token_bytes(32), workers=1)
    pool.close()
    with pytest.raises(TransformerUnavailable):
        asyncio.run(pool.run_async(_sealed()[1], KEYS))
