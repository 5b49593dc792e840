"""The message board's storage: an ordered, gap-free sequence of signed posts per room.

A post is stored exactly as its device signed it. ``seq`` is assigned inside the
storing transaction as one more than the room's last; two replicas racing for the
same number collide on the primary key and the loser retries, so every replica sees
one order.

A post id is taken once per room. The same post (same device, kind and body) sent
again under its id, as a client does when it resends after a reconnect without
knowing whether the first copy landed, is answered with the stored post instead of
being stored twice; anything else under a taken id is a replay and refused.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from veil.conference.models import Post, Room
from veil.protocol import b64encode
from veil.protocol.board import Announce, BoardMessageError
from veil.web.database import transaction
from veil.web.errors import conflict, forbidden

_RETRIES = 8
PAGE = 200
"""Posts read from the database at a time (a resume of a long board is streamed)."""
MAX_POSTS_PER_ROOM = 100_000


@dataclass(frozen=True)
class NewPost:
    room_id: str
    post_id: bytes
    kind: str
    device_id: str
    user_id: str
    timestamp: int
    body: bytes
    signature: bytes


@dataclass(frozen=True)
class Stored:
    """What ``append`` did: the post as subscribers see it, and whether this call stored
    it (``new``) or found it already stored (the same post resent by its device)."""

    post: dict[str, Any]
    new: bool


def wire(post: Post) -> dict[str, Any]:
    """A stored post as subscribers receive it."""
    return {
        "seq": post.seq,
        "post_id": b64encode(post.post_id),
        "kind": post.kind,
        "device_id": post.device_id,
        "user_id": post.user_id,
        "timestamp": post.timestamp,
        "body": b64encode(post.body),
        "signature": b64encode(post.signature),
    }


class BoardStore:
    def __init__(self, engine: Engine, sessions: sessionmaker[Session]) -> None:
        self.engine, self.sessions = engine, sessions

    def append(self, post: NewPost, now: int) -> Stored:
        """Store a verified post (or find it stored already, see ``repost``)."""
        for _ in range(_RETRIES):
            try:
                with transaction(self.sessions) as session:
                    return self._append(session, post, now)
            except IntegrityError:
                continue  # another replica took this seq (or created the room) first
        raise conflict("busy", "the board is busy; retry")

    def repost(self, post: NewPost) -> dict[str, Any] | None:
        """The stored post if ``post`` is on the board already (resent by its device),
        ``None`` if its id is free; ``replayed_post`` if another post holds the id. A
        cheap check before the work a new post needs (an ``end`` proof, whose timestamp
        may be stale by the time a post is resent)."""
        with transaction(self.sessions) as session:
            return _repost(session, post)

    def _append(self, session: Session, post: NewPost, now: int) -> Stored:
        # Lock the room's row (PostgreSQL; SQLite's BEGIN IMMEDIATE serializes anyway):
        # concurrent posts to one room, from any replica, then take turns for the next
        # seq instead of colliding, and no post lands after a concurrent ``end``.
        room = session.get(Room, post.room_id, with_for_update=True)
        if room is None:
            room = Room(id=post.room_id, created_at=now)
            session.add(room)
            session.flush()
        earlier = _repost(session, post)  # before the end check: an end resent is answered
        if earlier is not None:
            return Stored(earlier, new=False)
        if room.ended_at is not None:
            raise forbidden("room_ended", "this meeting has ended")
        if post.kind == "end":
            room.ended_at = now
        last = session.execute(
            select(func.max(Post.seq)).where(Post.room_id == post.room_id)
        ).scalar_one()
        if (last or 0) >= MAX_POSTS_PER_ROOM:
            raise forbidden("room_full", f"a board holds at most {MAX_POSTS_PER_ROOM} posts")
        stored = Post(
            room_id=post.room_id,
            seq=(last or 0) + 1,
            post_id=post.post_id,
            kind=post.kind,
            device_id=post.device_id,
            user_id=post.user_id,
            timestamp=post.timestamp,
            body=post.body,
            signature=post.signature,
        )
        session.add(stored)
        session.flush()
        return Stored(wire(stored), new=True)

    def after(
        self, room_id: str, since: int, until: int | None = None, *, limit: int = PAGE
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` posts with ``since < seq`` (and ``seq <= until``), in order."""
        query = select(Post).where(Post.room_id == room_id, Post.seq > since)
        if until is not None:
            query = query.where(Post.seq <= until)
        query = query.order_by(Post.seq).limit(limit)
        with transaction(self.sessions) as session:
            return [wire(p) for p in session.execute(query).scalars()]

    def announcer(self, room_id: str, sender: int) -> str | None:
        """The device whose ``announce`` first named ``sender`` on this room's board, or
        ``None``. A body that is not an announce in canonical form names no one."""
        query = (
            select(Post.device_id, Post.body)
            .where(Post.room_id == room_id, Post.kind == Announce.KIND)
            .order_by(Post.seq)
            .execution_options(yield_per=PAGE)
        )
        with transaction(self.sessions) as session:
            for device_id, body in session.execute(query):
                try:
                    if Announce.parse(body).sender == sender:
                        return str(device_id)
                except BoardMessageError:
                    continue
        return None

    def ended(self, room_id: str) -> bool:
        with transaction(self.sessions) as session:
            room = session.get(Room, room_id)
            return room is not None and room.ended_at is not None


def _repost(session: Session, post: NewPost) -> dict[str, Any] | None:
    query = select(Post).where(Post.room_id == post.room_id, Post.post_id == post.post_id)
    existing = session.execute(query).scalar_one_or_none()
    if existing is None:
        return None
    if (existing.device_id, existing.kind, existing.body) != (post.device_id, post.kind, post.body):
        raise conflict("replayed_post", "this post is already on the board")
    return wire(existing)
