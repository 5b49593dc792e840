"""The message board's storage: an ordered, gap-free sequence of signed posts per room.

A post is stored exactly as its device signed it. ``seq`` is assigned inside the
storing transaction as one more than the room's last; two replicas racing for the
same number collide on the primary key and the loser retries, so every replica sees
one order.
"""

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from veil.conference.models import Post, Room
from veil.protocol import b64encode
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

    def append(self, post: NewPost, now: int) -> dict[str, Any]:
        """Store a verified post; returns it as subscribers will see it."""
        for _ in range(_RETRIES):
            try:
                with transaction(self.sessions) as session:
                    return self._append(session, post, now)
            except IntegrityError:
                continue  # another replica took this seq (or created the room) first
        raise conflict("busy", "the board is busy; retry")

    def _append(self, session: Session, post: NewPost, now: int) -> dict[str, Any]:
        # Lock the room's row (PostgreSQL; SQLite's BEGIN IMMEDIATE serializes anyway):
        # concurrent posts to one room, from any replica, then take turns for the next
        # seq instead of colliding, and no post lands after a concurrent ``end``.
        room = session.get(Room, post.room_id, with_for_update=True)
        if room is None:
            room = Room(id=post.room_id, created_at=now)
            session.add(room)
            session.flush()
        if room.ended_at is not None:
            raise forbidden("room_ended", "this meeting has ended")
        duplicate = select(Post.seq).where(
            Post.room_id == post.room_id, Post.post_id == post.post_id
        )
        if session.execute(duplicate).first() is not None:
            raise conflict("replayed_post", "this post is already on the board")
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
        return wire(stored)

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

    def ended(self, room_id: str) -> bool:
        with transaction(self.sessions) as session:
            room = session.get(Room, room_id)
            return room is not None and room.ended_at is not None
