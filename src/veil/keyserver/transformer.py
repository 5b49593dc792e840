"""Transforms off the event loop, across cores.

pymcl holds the GIL, so threads cannot run transforms in parallel and a transform
on the event loop's thread would stall every other request. With
``transform_workers > 0`` each transform chain runs in one of that many worker
processes; with 0 it runs in a worker thread (fine for one-process embedded use).

Each worker process owns one pipe. The event loop writes a job to an idle worker's
pipe and watches the pipe for the answer (``loop.add_reader``): no executor threads
or queues in between, which ``concurrent.futures.ProcessPoolExecutor`` needs and
which cost about 0.4 ms per request. Workers say they are ready on their pipe: the
service does not start if one cannot. A worker that dies later fails only its own
job (``TransformerUnavailable``, a 503) and is replaced; an executor would have marked
the whole pool broken. A request cancelled mid-job leaves the worker in the pool owing
that answer, which its next request reads first: so nothing depends on the cancelled
request's event loop still running.

Each process keeps its decoded, verified transform keys in a cache sized for a
10,000-member meeting: stored keys never change (rotation and revocation write new
rows or delete them), so a key is identified by its bytes. It keeps the last few
ciphertexts it decoded, too: a meeting's key post comes once from every member's
device.

Workers also prepare transforms ahead of time (``prepare_chains``, see
``veil.keyserver.precompute``): those jobs run in the background, a worker taking
one only when no transform is waiting.
"""

import asyncio
import contextlib
import functools
import multiprocessing
import pickle
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from veil.crypto import pre
from veil.crypto.errors import DecodeError
from veil.crypto.pre import (
    MAX_LEVEL,
    EncryptedValue,
    PreparedTransform,
    TransformKey,
    VerifiedEncryptedValue,
    VerifiedTransformKey,
)
from veil.crypto.signing import SigningKey

_signer: SigningKey | None = None


def _init_worker(signer_seed: bytes) -> None:
    global _signer
    _signer = SigningKey.from_secret_bytes(signer_seed)


KEYS_CACHED = 32_768
"""Transform keys a worker keeps decoded: a 10,000-member meeting's group -> user and
user -> device keys, with room to spare (each about 1 kB)."""


@functools.lru_cache(maxsize=KEYS_CACHED)
def _verified_key(raw: bytes) -> VerifiedTransformKey:
    return TransformKey.from_bytes(raw).verify()


@functools.lru_cache(maxsize=64)
def _verified_value(raw: bytes) -> VerifiedEncryptedValue:
    """A meeting's key post is transformed once per member's device: decoding and
    verifying it once (about 0.35 ms) serves them all. Decoding is a pure function of
    the bytes, and errors are not cached."""
    return EncryptedValue.from_bytes(raw).verify()


def transform_chain(value: bytes, keys: Sequence[bytes], prepared: bytes | None = None) -> bytes:
    """Decode strictly, verify, and move ``value`` along each key in turn; with
    ``prepared`` (made by ``prepare_chains`` for exactly these keys) a level-0 value
    costs one pairing and the signature."""
    assert _signer is not None, "worker not initialised"
    current = _verified_value(value)
    if current.level + len(keys) > MAX_LEVEL:
        raise DecodeError(f"ciphertext: level {current.level} leaves no room for this transform")
    if prepared is not None and current.level == 0:
        return PreparedTransform.from_bytes(prepared).finish(current, _signer)
    return bytes(pre.transform_chain(current, [_verified_key(raw) for raw in keys], _signer))


def prepare_chains(chains: Sequence[Sequence[bytes]]) -> list[bytes]:
    """One prepared transform for each chain of keys."""
    return [
        bytes(pre.prepare_transforms([_verified_key(raw) for raw in keys], 1)[0]) for keys in chains
    ]


def _job(name: str) -> Callable[..., object]:
    """What a job's name asks a worker to run (the only two things it runs)."""
    jobs: dict[str, Callable[..., object]] = {
        "transform": transform_chain,
        "prepare": prepare_chains,
    }
    return jobs[name]


_READY = "ready"
_START_SECONDS = 60


def _serve(connection: Connection, signer_seed: bytes) -> None:
    """A worker process: say it is ready, then answer each job on the pipe until the
    server closes it."""
    _init_worker(signer_seed)
    try:
        connection.send(_READY)
        while True:
            name, args = connection.recv()
            try:
                answer: tuple[bool, object] = (True, _job(name)(*args))
            except Exception as error:
                answer = (False, error if _survives_pickling(error) else TransformFailed())
            connection.send(answer)
    except (EOFError, OSError):  # the server closed the pipe or went away
        return


def _survives_pickling(error: Exception) -> bool:
    try:
        pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, just made
    except Exception:
        return False
    return True


class TransformFailed(Exception):
    """The worker raised an error that cannot cross the process boundary (a 500)."""


class TransformerUnavailable(Exception):
    """A worker process died during the job, or the service is shutting down."""


@dataclass(frozen=True)
class TransformerStats:
    """For metrics and readiness."""

    pooled: bool
    workers: int
    """Worker processes in the pool (0 without a pool). One that died is replaced when
    a job finds it dead; the pool closes if none can be started."""
    alive: int
    """Of those, the processes running."""
    busy: int
    """Worker processes on a job."""
    waiting: int
    """Requests waiting for a worker (the queue depth)."""
    background: int
    """Preparation jobs waiting for a worker that no request needs."""
    closed: bool
    outcomes: dict[str, int]
    """Transform chains run so far, by outcome: ``ok``, ``failed`` (the input did not
    decode or verify), ``unavailable`` (the worker died) or ``cancelled``."""


class _Worker:
    def __init__(self, context: multiprocessing.context.SpawnContext, signer_seed: bytes) -> None:
        self.connection, child = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child, signer_seed), name="veil-transform", daemon=True
        )
        try:
            self.process.start()
        except BaseException:
            self.connection.close()
            raise
        finally:
            child.close()
        self.started = False  # until it says it is ready
        # Messages to read before its next answer: its ready message, and the answers
        # to jobs whose requests were cancelled (possibly on an event loop now gone).
        self.owed = 1

    def close(self) -> None:
        """Let it exit (it reads the end of its pipe), or kill it."""
        self.connection.close()
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.kill()

    def kill(self) -> None:
        self.process.kill()
        self.process.join(timeout=5)
        self.connection.close()


class Transformer:
    def __init__(self, signer_seed: bytes, workers: int) -> None:
        self._seed = signer_seed
        # spawn, not fork: the server process has threads by the time it needs a worker
        self._context = multiprocessing.get_context("spawn")
        self._pooled = workers > 0
        self._idle: list[_Worker] = []
        try:
            for _ in range(workers):
                self._idle.append(_Worker(self._context, signer_seed))
            for worker in self._idle:  # a worker that cannot start stops the service now
                if not _read_ready(worker.connection, _START_SECONDS):
                    raise RuntimeError("a transform worker process failed to start")
                worker.started, worker.owed = True, 0
        except BaseException:
            for worker in self._idle:
                worker.close()
            raise
        self._workers = set(self._idle)
        self._waiting: deque[asyncio.Future[_Worker]] = deque()
        self._background: deque[asyncio.Future[_Worker]] = deque()  # served after _waiting
        self._lock = threading.Lock()  # requests may arrive on more than one event loop
        self._closed = False
        self._outcomes: Counter[str] = Counter()
        if not self._pooled:
            _init_worker(signer_seed)

    @property
    def pooled(self) -> bool:
        """Whether transforms run in worker processes (or else in a thread)."""
        return self._pooled

    def stats(self) -> TransformerStats:
        with self._lock:
            workers = len(self._workers)
            alive = sum(worker.process.is_alive() for worker in self._workers)
            busy = workers - len(self._idle)
            waiting = sum(not waiter.done() for waiter in self._waiting)
            background = sum(not waiter.done() for waiter in self._background)
            outcomes = dict(self._outcomes)
        return TransformerStats(
            self._pooled, workers, alive, busy, waiting, background, self._closed, outcomes
        )

    async def run_async(
        self, value: bytes, keys: Sequence[bytes], prepared: bytes | None = None
    ) -> bytes:
        """``transform_chain`` in a worker process (or a worker thread without any)."""
        outcome = "failed"
        try:
            result = await self._run("transform", (value, tuple(keys), prepared))
            assert isinstance(result, bytes)
            outcome = "ok"
            return result
        except TransformerUnavailable:
            outcome = "unavailable"
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            with self._lock:
                self._outcomes[outcome] += 1

    async def prepare_async(self, chains: Sequence[Sequence[bytes]]) -> list[bytes]:
        """``prepare_chains`` in a worker process that no transform is waiting for
        (worker processes only: in a thread it would hold the GIL requests need)."""
        if not self._pooled:
            raise TransformerUnavailable
        result = await self._run("prepare", ([tuple(keys) for keys in chains],), background=True)
        assert isinstance(result, list)
        return result

    async def _run(
        self, name: str, args: tuple[object, ...], *, background: bool = False
    ) -> object:
        if not self._pooled:
            return await asyncio.to_thread(_job(name), *args)
        worker = await self._acquire(background)
        if worker.owed:
            await self._settle(worker)
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[tuple[bool, object]] = loop.create_future()
        try:
            # An idle worker is blocked reading its pipe, so this write returns at once
            # for a real job (a few kB, below the pipe's buffer) and soon for any other
            # (the request body limit bounds it).
            worker.connection.send((name, args))
        except OSError:
            self._retire(worker)
            raise TransformerUnavailable from None
        fd = worker.connection.fileno()
        loop.add_reader(fd, self._collect, loop, fd, worker, answer)
        try:
            ok, result = await answer
        except asyncio.CancelledError:
            if answer.cancelled():  # _collect has not run, and now will not
                loop.remove_reader(fd)
                worker.owed += 1  # the next request reads this job's answer first
                self._release(worker)
            raise
        if not ok:
            assert isinstance(result, BaseException)
            raise result
        return result

    def _collect(
        self,
        loop: asyncio.AbstractEventLoop,
        fd: int,
        worker: _Worker,
        answer: "asyncio.Future[tuple[bool, object]]",
    ) -> None:
        """The worker's answer is ready: hand it over, and the worker back to the pool."""
        loop.remove_reader(fd)
        if answer.cancelled():  # run_async's cancel path owns the worker and its answer
            return
        try:
            received = worker.connection.recv()
        except Exception:  # EOF (the worker died) or an answer that cannot be read
            self._retire(worker)
            if not answer.done():
                answer.set_exception(TransformerUnavailable())
            return
        self._release(worker)
        if not answer.done():
            answer.set_result(received)

    async def _settle(self, worker: _Worker) -> None:
        """Read what ``worker`` owes (its ready message, stale answers) on this event
        loop, without blocking it."""
        loop = asyncio.get_running_loop()
        fd = worker.connection.fileno()
        while worker.owed:
            readable: asyncio.Future[None] = loop.create_future()
            loop.add_reader(fd, _set_done, readable)
            try:
                async with asyncio.timeout(_START_SECONDS):
                    await readable
            except asyncio.CancelledError:
                loop.remove_reader(fd)
                self._release(worker)  # owing the same: the next request reads it
                raise
            except TimeoutError:  # stuck on an old job, or never got ready
                loop.remove_reader(fd)
                self._lose_unsettled(worker)
                raise TransformerUnavailable from None
            loop.remove_reader(fd)
            try:
                message = worker.connection.recv()
            except Exception:  # EOF: it died (or never started); or a garbled answer
                self._lose_unsettled(worker)
                raise TransformerUnavailable from None
            worker.started |= message == _READY
            worker.owed -= 1

    def _lose_unsettled(self, worker: _Worker) -> None:
        """Kill a worker that could not settle (it may hang: waiting for it would block
        the event loop). One that had started is replaced; a replacement that never got
        ready is not, as that would loop."""
        worker.kill()
        if worker.started:
            self._retire(worker)
        else:
            self._drop(worker)

    async def _acquire(self, background: bool = False) -> _Worker:
        with self._lock:
            if self._closed or not self._workers:
                raise TransformerUnavailable
            if self._idle:
                return self._idle.pop()
            waiter: asyncio.Future[_Worker] = asyncio.get_running_loop().create_future()
            (self._background if background else self._waiting).append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            handed_over = waiter.done() and not waiter.cancelled() and not waiter.exception()
            if handed_over:  # and cancelled before it could use the worker
                self._release(waiter.result())
            raise

    def _release(self, worker: _Worker) -> None:
        with self._lock:
            while (self._waiting or self._background) and not self._closed:
                waiter = (self._waiting or self._background).popleft()
                if waiter.done():  # cancelled while it waited
                    continue
                try:
                    waiter.get_loop().call_soon_threadsafe(self._hand_over, waiter, worker)
                except RuntimeError:  # its event loop is gone
                    continue
                return
            if not self._closed:
                self._idle.append(worker)
                return
        worker.close()  # it finished a job that was running when the service shut down

    def _hand_over(self, waiter: "asyncio.Future[_Worker]", worker: _Worker) -> None:
        if waiter.done():  # cancelled meanwhile
            self._release(worker)
        else:
            waiter.set_result(worker)

    def _retire(self, worker: _Worker) -> None:
        """Replace a worker that died or garbled an answer."""
        worker.close()
        with self._lock:
            self._workers.discard(worker)
            if self._closed:
                return
        try:
            fresh = _Worker(self._context, self._seed)
        except OSError:  # e.g. out of processes
            self._shrink()
            return
        with self._lock:
            added = not self._closed
            if added:
                self._workers.add(fresh)
        if added:
            self._release(fresh)  # the request that takes it first reads its ready message
        else:  # closed meanwhile
            fresh.kill()

    def _drop(self, worker: _Worker) -> None:
        """Lose a killed ``worker`` for good."""
        with self._lock:
            self._workers.discard(worker)
        self._shrink()

    def _shrink(self) -> None:
        """With no worker left, nobody could serve the requests waiting for one."""
        with self._lock:
            empty = not self._workers
        if empty:
            self.close()

    def close(self) -> None:
        """Stop every worker; waiting requests fail with ``TransformerUnavailable``."""
        with self._lock:
            self._closed = True
            idle, busy = self._idle, self._workers.difference(self._idle)
            self._workers, self._idle = set(), []
            waiting = [*self._waiting, *self._background]
            self._waiting, self._background = deque(), deque()
        for waiter in waiting:
            if not waiter.done():
                with contextlib.suppress(RuntimeError):  # its event loop is gone
                    waiter.get_loop().call_soon_threadsafe(_fail, waiter)
        for worker in idle:
            worker.close()
        for worker in busy:
            # Its request sees it die and _collect closes it. Closing the pipe here
            # instead would leave that request waiting on a reader that never fires.
            worker.process.kill()


def _read_ready(connection: Connection, timeout: float) -> bool:
    """Whether the worker on ``connection`` said it is ready within ``timeout``."""
    try:
        return connection.poll(timeout) and connection.recv() == _READY
    except (EOFError, OSError):
        return False


def _set_done(future: "asyncio.Future[None]") -> None:
    if not future.done():
        future.set_result(None)


def _fail(waiter: "asyncio.Future[_Worker]") -> None:
    if not waiter.done():
        waiter.set_exception(TransformerUnavailable())
