"""The durable outbox: enqueue rows, claim due ones atomically, record each result.

Claiming marks rows ``sending`` with this worker's name inside one transaction (on PostgreSQL with
``FOR UPDATE SKIP LOCKED``), so two workers never take the same row.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import OutboxMessage, OutboxStatus, Stakeholder
from models.base import utcnow
from models.stakeholder import StakeholderStatus


@dataclass(frozen=True)
class Draft:
    chat_id: int
    text: str
    purpose: str
    stakeholder_id: int | None = None
    ref_id: int | None = None
    reply_markup: dict[str, Any] | None = None
    dedupe_key: str | None = None
    not_before: datetime | None = None


async def enqueue(session: AsyncSession, *, drafts: Iterable[Draft]) -> int:
    """Add messages, skipping any whose dedupe_key is already queued; returns how many were added."""
    drafts = list(drafts)
    keys = [draft.dedupe_key for draft in drafts if draft.dedupe_key]
    existing: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = await session.exec(select(OutboxMessage.dedupe_key).where(col(OutboxMessage.dedupe_key).in_(chunk)))
        existing |= set(rows.all())
    added = 0
    for draft in drafts:
        if draft.dedupe_key and draft.dedupe_key in existing:
            continue
        session.add(
            OutboxMessage(
                chat_id=draft.chat_id,
                stakeholder_id=draft.stakeholder_id,
                text=draft.text,
                reply_markup=draft.reply_markup,
                purpose=draft.purpose,
                ref_id=draft.ref_id,
                dedupe_key=draft.dedupe_key,
                not_before=draft.not_before or utcnow(),
            )
        )
        added += 1
    await session.commit()
    return added


async def claim(session: AsyncSession, *, worker: str, limit: int) -> list[OutboxMessage]:
    now = utcnow()
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.QUEUED, OutboxMessage.not_before <= now)
        .order_by(col(OutboxMessage.not_before), col(OutboxMessage.id))
        .limit(limit)
    )
    if session.bind.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = list((await session.exec(query)).all())
    if rows:
        await session.exec(
            update(OutboxMessage)
            .where(col(OutboxMessage.id).in_([row.id for row in rows]), OutboxMessage.status == OutboxStatus.QUEUED)
            .values(status=OutboxStatus.SENDING, claimed_by=worker, claimed_at=now)
        )
    await session.commit()
    # Re-read: on SQLite another worker may have won the update for some rows.
    if not rows:
        return []
    mine = await session.exec(
        select(OutboxMessage).where(
            col(OutboxMessage.id).in_([row.id for row in rows]),
            OutboxMessage.claimed_by == worker,
            OutboxMessage.status == OutboxStatus.SENDING,
        ).execution_options(populate_existing=True)
    )
    return list(mine.all())


async def mark_sent(session: AsyncSession, *, message_id: int, telegram_message_id: int | None) -> None:
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id)
        .values(status=OutboxStatus.SENT, telegram_message_id=telegram_message_id, sent_at=utcnow(),
                attempts=OutboxMessage.attempts + 1)
    )
    await session.commit()


async def mark_retry(session: AsyncSession, *, message_id: int, error: str, delay: float, max_attempts: int) -> bool:
    """Requeue after ``delay`` seconds, or fail for good after max_attempts; True if requeued."""
    row = await session.get(OutboxMessage, message_id)
    row.attempts += 1
    row.last_error = error[:500]
    if row.attempts >= max_attempts:
        row.status = OutboxStatus.FAILED
    else:
        row.status = OutboxStatus.QUEUED
        row.not_before = utcnow() + timedelta(seconds=delay)
        row.claimed_by = None
    await session.commit()
    return row.status == OutboxStatus.QUEUED


async def mark_unreachable(session: AsyncSession, *, message_id: int, chat_id: int, error: str) -> None:
    """The user blocked the bot (or the chat is gone): skip this and every queued message to them."""
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id)
        .values(status=OutboxStatus.SKIPPED, last_error=error[:500], attempts=OutboxMessage.attempts + 1)
    )
    await session.exec(
        update(OutboxMessage)
        .where(OutboxMessage.chat_id == chat_id, OutboxMessage.status == OutboxStatus.QUEUED)
        .values(status=OutboxStatus.SKIPPED, last_error="recipient unreachable")
    )
    await session.exec(
        update(Stakeholder)
        .where(Stakeholder.chat_id == chat_id)
        .values(status=StakeholderStatus.UNREACHABLE, updated_at=utcnow())
    )
    await session.commit()


async def release_stale_claims(session: AsyncSession, *, older_than: timedelta) -> int:
    """Rows a dead worker claimed but never finished go back to the queue."""
    result = await session.exec(
        update(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.SENDING, OutboxMessage.claimed_at < utcnow() - older_than)
        .values(status=OutboxStatus.QUEUED, claimed_by=None)
    )
    await session.commit()
    return result.rowcount or 0


async def counts(session: AsyncSession, *, purpose: str | None = None, ref_id: int | None = None) -> dict[str, int]:
    query = select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
    if purpose is not None:
        query = query.where(OutboxMessage.purpose == purpose)
    if ref_id is not None:
        query = query.where(OutboxMessage.ref_id == ref_id)
    return {status: int(n) for status, n in (await session.exec(query)).all()}
