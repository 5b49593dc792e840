"""The transform worker pool: answers, errors, cancelled requests and dead workers."""

import asyncio
import os
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing import Pipe
from multiprocessing.connection import Connection

import pytest

from veil.crypto.errors import DecodeError, InvalidSignature
from veil.crypto.keys import Plaintext, PrivateKey
from veil.crypto.pre import EncryptedValue, decrypt, encrypt, generate_transform_key
from veil.crypto.signing import SigningKey
from veil.keyserver import transformer as transformer_module
from veil.keyserver.transformer import Transformer, TransformerUnavailable, TransformFailed

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


def _kill(worker: transformer_module._Worker) -> None:
    assert worker.process.pid is not None
    os.kill(worker.process.pid, signal.SIGKILL)
    worker.process.join(timeout=10)


async def _abandon(pool: Transformer, value: bytes) -> None:
    """A request cancelled one loop turn after it sent its job (a transform takes
    milliseconds, so the answer is still to come)."""
    task = asyncio.create_task(pool.run_async(value, KEYS))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


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
        await _abandon(transformer, first[1])
        return await transformer.run_async(second[1], KEYS)

    assert _opened(asyncio.run(run())) == second[0]


def test_a_dead_worker_fails_its_job_and_is_replaced(transformer: Transformer) -> None:
    worker = transformer._idle[0]
    _kill(worker)
    secret, value = _sealed()
    with pytest.raises(TransformerUnavailable):
        asyncio.run(transformer.run_async(value, KEYS))
    assert transformer._idle and transformer._idle[0] is not worker
    assert _opened(asyncio.run(transformer.run_async(value, KEYS))) == secret
    assert transformer._idle[0].started


def test_a_closed_transformer_refuses_work() -> None:
    pool = Transformer(secrets.token_bytes(32), workers=1)
    pool.close()
    with pytest.raises(TransformerUnavailable):
        asyncio.run(pool.run_async(_sealed()[1], KEYS))


class _CancelsOnHandOver(Transformer):
    """Cancels a chosen request in the same loop turn that hands it a worker, as a
    client disconnect or a timeout may."""

    victim: "asyncio.Task[bytes] | None" = None

    def _hand_over(self, waiter, worker) -> None:  # type: ignore[no-untyped-def]
        super()._hand_over(waiter, worker)
        if self.victim is not None:
            self.victim.cancel()


def test_a_request_cancelled_as_it_is_handed_a_worker_gives_the_worker_back() -> None:
    pool = _CancelsOnHandOver(secrets.token_bytes(32), workers=1)
    secret, value = _sealed()

    async def run() -> bytes:
        first = asyncio.create_task(pool.run_async(value, KEYS))
        await asyncio.sleep(0)
        pool.victim = asyncio.create_task(pool.run_async(value, KEYS))  # waits for the worker
        await first
        with pytest.raises(asyncio.CancelledError):
            await pool.victim
        pool.victim = None
        return await asyncio.wait_for(pool.run_async(value, KEYS), 10)

    try:
        assert _opened(asyncio.run(run())) == secret
    finally:
        pool.close()


class _Garbled:
    """A worker's pipe whose answer cannot be read back."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    def __getattr__(self, name: str) -> object:
        return getattr(self._connection, name)

    def recv(self) -> object:
        self._connection.recv()
        raise TypeError("cannot rebuild the answer")


def test_a_garbled_answer_fails_its_job_and_the_worker_is_replaced(
    transformer: Transformer,
) -> None:
    worker = transformer._idle[0]
    worker.connection = _Garbled(worker.connection)
    secret, value = _sealed()
    with pytest.raises(TransformerUnavailable):
        asyncio.run(transformer.run_async(value, KEYS))
    assert transformer._idle and transformer._idle[0] is not worker
    assert _opened(asyncio.run(transformer.run_async(value, KEYS))) == secret


class _Unpicklable(Exception):
    def __init__(self, first: str, second: str) -> None:
        super().__init__(first)  # pickle rebuilds it with one argument: a TypeError


def test_an_error_that_cannot_cross_processes_arrives_as_transform_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def failing(*args: object) -> bytes:
        raise _Unpicklable("a", "b")

    monkeypatch.setattr(transformer_module, "transform_chain", failing)
    server, worker = Pipe()
    serving = threading.Thread(target=transformer_module._serve, args=(worker, bytes(32)))
    serving.start()
    assert server.recv() == transformer_module._READY
    server.send(("transform", (b"value", (b"key",), None)))
    ok, error = server.recv()
    server.close()
    serving.join(timeout=10)
    assert not ok and type(error) is TransformFailed


def test_closing_fails_the_requests_waiting_for_a_worker() -> None:
    pool = Transformer(secrets.token_bytes(32), workers=1)

    async def run() -> list[object]:
        busy = asyncio.create_task(pool.run_async(_sealed()[1], KEYS))
        waiting = asyncio.create_task(pool.run_async(_sealed()[1], KEYS))
        await asyncio.sleep(0)  # one loop turn: busy's job is sent, waiting is queued
        pool.close()
        return await asyncio.gather(busy, waiting, return_exceptions=True)

    outcomes = asyncio.run(asyncio.wait_for(run(), 20))
    assert [type(outcome) for outcome in outcomes] == [TransformerUnavailable] * 2


def _cannot_start(connection: Connection, signer_seed: bytes) -> None:
    raise SystemExit(3)  # e.g. a missing library in the worker's environment


def test_a_worker_that_cannot_start_stops_the_service_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(transformer_module, "_serve", _cannot_start)
    with pytest.raises(RuntimeError, match="failed to start"):
        Transformer(secrets.token_bytes(32), workers=1)


def test_a_request_cancelled_on_a_loop_that_then_ends_leaves_the_worker_usable(
    transformer: Transformer,
) -> None:
    stale, fresh = _sealed(), _sealed()

    asyncio.run(_abandon(transformer, stale[1]))  # this loop ends before the answer
    answer = asyncio.run(asyncio.wait_for(transformer.run_async(fresh[1], KEYS), 20))
    assert _opened(answer) == fresh[0]  # not the stale job's answer


def _hangs_at_start(connection: Connection, signer_seed: bytes) -> None:
    time.sleep(3600)  # e.g. an import stuck on a lock


@pytest.mark.parametrize("replacement", [_cannot_start, _hangs_at_start])
def test_a_replacement_that_never_gets_ready_fails_requests_with_503(
    replacement: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    pool = Transformer(secrets.token_bytes(32), workers=1)
    monkeypatch.setattr(transformer_module, "_serve", replacement)
    monkeypatch.setattr(transformer_module, "_START_SECONDS", 1)
    _kill(pool._idle[0])

    async def run() -> list[object]:
        value = _sealed()[1]
        return [
            # the job on the dead worker
            *await asyncio.gather(pool.run_async(value, KEYS), return_exceptions=True),
            # the replacement's first request: it never gets ready, and is not replaced
            *await asyncio.wait_for(
                asyncio.gather(pool.run_async(value, KEYS), return_exceptions=True), 20
            ),
        ]

    try:
        outcomes = asyncio.run(run())
    finally:
        pool.close()
    assert [type(outcome) for outcome in outcomes] == [TransformerUnavailable] * 2


def test_a_ciphertext_is_decoded_once_and_a_bad_one_is_refused_every_time() -> None:
    transformer_module._init_worker(secrets.token_bytes(32))
    transformer_module._verified_value.cache_clear()
    secret, value = _sealed()
    first = transformer_module.transform_chain(value, KEYS)
    second = transformer_module.transform_chain(value, KEYS)
    assert transformer_module._verified_value.cache_info().hits == 1
    assert first != second  # each transform is freshly randomised and signed
    assert _opened(first) == _opened(second) == secret
    tampered = value[:-1] + bytes([value[-1] ^ 1])
    for _ in range(2):
        with pytest.raises(InvalidSignature):
            transformer_module.transform_chain(tampered, KEYS)


def test_a_request_cancelled_as_its_answer_arrives_releases_the_worker_once(
    transformer: Transformer,
) -> None:
    stale, fresh = _sealed(), _sealed()

    async def run() -> bytes:
        task = asyncio.create_task(transformer.run_async(stale[1], KEYS))
        # One loop turn: the job is sent. (A timer would fire after the pipe's reader
        # in a late turn, and the answer could be taken before the cancel.)
        await asyncio.sleep(0)
        asyncio.get_running_loop().call_soon(task.cancel)
        time.sleep(0.5)  # the answer arrives: the next loop turn cancels, then reads
        with pytest.raises(asyncio.CancelledError):
            await task
        assert len(transformer._idle) == len(set(transformer._idle)) == 1
        return await asyncio.wait_for(transformer.run_async(fresh[1], KEYS), 20)

    assert _opened(asyncio.run(run())) == fresh[0]


def test_a_waiting_request_cancelled_as_the_service_closes_is_cancelled() -> None:
    pool = Transformer(secrets.token_bytes(32), workers=1)

    async def run() -> None:
        await pool._acquire()  # the only worker is busy
        waiting = asyncio.create_task(pool.run_async(_sealed()[1], KEYS))
        await asyncio.sleep(0)  # queued for a worker
        pool.close()  # fails the queued request...
        asyncio.get_running_loop().call_soon(waiting.cancel)  # ...as its client leaves
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(run())
