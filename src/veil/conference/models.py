"""The conference service's tables: rooms, their boards, and the platform's escrow
shares. Board posts are stored as their devices signed them; bodies are ciphertexts
or public notices the service cannot read more of than their kind."""

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = String(256)


class Base(DeclarativeBase):
    pass


class Room(Base):
    __tablename__ = "conference_rooms"
    id: Mapped[str] = mapped_column(ID, primary_key=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    ended_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Post(Base):
    """One board post; ``seq`` orders a room's board (1, 2, 3, ... with no gaps)."""

    __tablename__ = "conference_posts"
    __table_args__ = (UniqueConstraint("room_id", "post_id"),)
    room_id: Mapped[str] = mapped_column(
        ForeignKey("conference_rooms.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    post_id: Mapped[bytes] = mapped_column(LargeBinary(16))
    kind: Mapped[str] = mapped_column(String(16))
    device_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(ID)
    timestamp: Mapped[int] = mapped_column(BigInteger)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))


class PlatformShare(Base):
    """The platform's half of a user's split-trust escrow password."""

    __tablename__ = "conference_escrow_shares"
    user_id: Mapped[str] = mapped_column(ID, primary_key=True)
    share: Mapped[bytes] = mapped_column(LargeBinary(16))
    created_at: Mapped[int] = mapped_column(BigInteger)
