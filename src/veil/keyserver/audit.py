"""The audit log: append-only, hash-chained, each entry carrying the request's signature.

``entry_hash = SHA-256(prev_hash || canonical JSON of the entry)``. Every append
locks the single ``audit_head`` row (``SELECT ... FOR UPDATE`` on PostgreSQL; SQLite
transactions are already serialized), so replicas extend one linear chain.
"""

import hashlib
import json
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from veil.keyserver.models import AuditEntry, AuditHead

GENESIS = bytes(32)


_HASHED_FIELDS = ("seq", "at", "action", "user_id", "device_id", "subject", "request_signature")


def entry_hash(prev_hash: bytes, entry: AuditEntry) -> bytes:
    """SHA-256 of the previous entry's hash and this entry's canonical JSON."""
    fields = {name: getattr(entry, name) for name in _HASHED_FIELDS}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(prev_hash + canonical).digest()


def append(
    session: Session,
    *,
    at: int,
    action: str,
    user_id: str,
    device_id: str,
    subject: str,
    request_signature: str,
) -> AuditEntry:
    head = session.execute(
        select(AuditHead).where(AuditHead.id == 1).with_for_update()
    ).scalar_one()
    entry = AuditEntry(
        seq=head.seq + 1,
        at=at,
        action=action,
        user_id=user_id,
        device_id=device_id,
        subject=subject,
        request_signature=request_signature,
        prev_hash=head.entry_hash,
    )
    entry.entry_hash = entry_hash(head.entry_hash, entry)
    session.add(entry)
    head.seq, head.entry_hash = entry.seq, entry.entry_hash
    return entry


@dataclass(frozen=True)
class ChainReport:
    entries: int
    first_broken: int | None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.first_broken is None


def verify_chain(session: Session, *, batch: int = 1000) -> ChainReport:
    """Recompute the whole chain; name the first entry that does not fit."""
    prev, expected_seq, count = GENESIS, 1, 0
    last = 0
    while True:
        rows = session.execute(
            select(AuditEntry).where(AuditEntry.seq > last).order_by(AuditEntry.seq).limit(batch)
        ).scalars()
        page = list(rows)
        if not page:
            break
        for entry in page:
            if entry.seq != expected_seq:
                return ChainReport(count, expected_seq, "entry missing")
            if entry.prev_hash != prev:
                return ChainReport(count, entry.seq, "does not link to the previous entry")
            recomputed = entry_hash(prev, entry)
            if recomputed != entry.entry_hash:
                return ChainReport(count, entry.seq, "contents do not match its hash")
            prev, expected_seq, count, last = entry.entry_hash, entry.seq + 1, count + 1, entry.seq
    head = session.get(AuditHead, 1)
    if head is not None and (head.seq != count or head.entry_hash != prev):
        return ChainReport(count, count + 1, "entries after the last one are missing")
    return ChainReport(count, None)
