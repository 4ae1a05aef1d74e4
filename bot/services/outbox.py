"""The durable outbox: enqueue rows, claim due ones atomically, record each result.

A message is a row before it is sent. The sender claims ONE row at a time, just before sending
it: one ``UPDATE ... WHERE id = (SELECT ... LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING`` statement
that marks it ``sending`` with the worker's name. On PostgreSQL ``SKIP LOCKED`` lets two workers
claim different rows at once without waiting on each other; on SQLite the statement runs under
the database's single write lock. Either way no two workers ever hold the same row. The result
(sent / retry / failed / skipped) is committed the moment Telegram answers.

Rows a worker left ``sending`` (it died between claiming and recording) are handed back to the
queue by :func:`release_claims` / :func:`release_stale_claims`; see bot/sender.py for when, and
for the one window in which that can repeat a message.
"""

from __future__ import annotations

import base64
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case, func, update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import OutboxMessage, OutboxStatus, Stakeholder
from models.base import as_utc, utcnow
from models.stakeholder import StakeholderStatus

# last_error of rows skipped because the recipient was already known to be unreachable.
UNREACHABLE = "recipient unreachable"


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
    attachment: dict[str, Any] | None = None


def file_attachment(filename: str, content: bytes) -> dict[str, Any]:
    return {"filename": filename, "content_b64": base64.b64encode(content).decode()}


async def _unreachable_ids(session: AsyncSession, stakeholder_ids: list[int]) -> set[int]:
    found: set[int] = set()
    for start in range(0, len(stakeholder_ids), 500):
        chunk = stakeholder_ids[start : start + 500]
        rows = await session.exec(
            select(Stakeholder.id).where(
                col(Stakeholder.id).in_(chunk), Stakeholder.status == StakeholderStatus.UNREACHABLE
            )
        )
        found |= set(rows.all())
    return found


async def enqueue(session: AsyncSession, *, drafts: Iterable[Draft]) -> int:
    """Add messages, skipping any whose dedupe_key is already queued; returns how many were added.

    A message to a stakeholder already known to have blocked the bot is stored as ``skipped``
    rather than sent, so it still shows up in the counts of what it belongs to.
    """
    drafts = list(drafts)
    keys = [draft.dedupe_key for draft in drafts if draft.dedupe_key]
    existing: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start : start + 500]
        rows = await session.exec(select(OutboxMessage.dedupe_key).where(col(OutboxMessage.dedupe_key).in_(chunk)))
        existing |= set(rows.all())
    unreachable = await _unreachable_ids(session, sorted({d.stakeholder_id for d in drafts if d.stakeholder_id}))
    now = utcnow()
    added = 0
    for draft in drafts:
        if draft.dedupe_key and draft.dedupe_key in existing:
            continue
        if draft.dedupe_key:
            existing.add(draft.dedupe_key)
        skipped = draft.stakeholder_id in unreachable
        session.add(
            OutboxMessage(
                chat_id=draft.chat_id,
                stakeholder_id=draft.stakeholder_id,
                text=draft.text,
                reply_markup=draft.reply_markup,
                attachment=draft.attachment,
                purpose=draft.purpose,
                ref_id=draft.ref_id,
                dedupe_key=draft.dedupe_key,
                not_before=draft.not_before or now,
                status=OutboxStatus.SKIPPED if skipped else OutboxStatus.QUEUED,
                last_error=UNREACHABLE if skipped else None,
            )
        )
        added += 1
    await session.commit()
    return added


async def claim_next(
    session: AsyncSession, *, worker: str, exclude_chat_ids: Collection[int] = ()
) -> OutboxMessage | None:
    """Take the oldest due row (not for one of ``exclude_chat_ids``) and mark it ``sending``."""
    now = utcnow()
    candidate = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == OutboxStatus.QUEUED, OutboxMessage.not_before <= now)
        .order_by(col(OutboxMessage.not_before), col(OutboxMessage.id))
        .limit(1)
    )
    if exclude_chat_ids:
        candidate = candidate.where(col(OutboxMessage.chat_id).not_in(list(exclude_chat_ids)))
    if session.bind.dialect.name == "postgresql":
        candidate = candidate.with_for_update(skip_locked=True)
    statement = (
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == candidate.scalar_subquery(), OutboxMessage.status == OutboxStatus.QUEUED)
        .values(status=OutboxStatus.SENDING, claimed_by=worker, claimed_at=now)
        .returning(OutboxMessage)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    row = (await session.exec(statement)).scalars().first()
    await session.commit()
    return row


async def unclaim(session: AsyncSession, *, message_id: int, worker: str) -> None:
    """Put back a row this worker claimed but will not send soon."""
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id, OutboxMessage.claimed_by == worker, OutboxMessage.status == OutboxStatus.SENDING)
        .values(status=OutboxStatus.QUEUED, claimed_by=None)
    )
    await session.commit()


async def has_due(session: AsyncSession) -> bool:
    """Whether any queued row is due now (possibly for a chat the caller is holding back)."""
    found = await session.exec(
        select(OutboxMessage.id)
        .where(OutboxMessage.status == OutboxStatus.QUEUED, OutboxMessage.not_before <= utcnow())
        .limit(1)
    )
    return found.first() is not None


async def next_due_at(session: AsyncSession) -> datetime | None:
    """When the earliest queued row becomes due."""
    found = await session.exec(select(func.min(OutboxMessage.not_before)).where(OutboxMessage.status == OutboxStatus.QUEUED))
    return as_utc(found.first())


async def mark_sent(session: AsyncSession, *, message_id: int, telegram_message_id: int | None) -> None:
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id)
        .values(status=OutboxStatus.SENT, telegram_message_id=telegram_message_id, sent_at=utcnow(),
                attempts=OutboxMessage.attempts + 1, claimed_by=None)
    )
    await session.commit()


async def mark_retry(
    session: AsyncSession, *, message_id: int, error: str, delay: float, max_attempts: int, count_attempt: bool = True
) -> bool:
    """Requeue after ``delay`` seconds, or fail for good once max_attempts are spent; True if requeued.

    ``count_attempt=False`` is for Telegram's own "slow down" (429), which says nothing about the
    message and so must not use up its attempts.
    """
    attempts = OutboxMessage.attempts + (1 if count_attempt else 0)
    spent = attempts >= max_attempts
    result = await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id)
        .values(
            attempts=attempts,
            last_error=error[:500],
            claimed_by=None,
            status=case((spent, OutboxStatus.FAILED.value), else_=OutboxStatus.QUEUED.value),
            not_before=case((spent, OutboxMessage.not_before), else_=utcnow() + timedelta(seconds=delay)),
        )
        .returning(OutboxMessage.status)
    )
    status = result.scalars().first()
    await session.commit()
    return status == OutboxStatus.QUEUED


async def mark_failed(session: AsyncSession, *, message_id: int, error: str) -> None:
    """A refusal that no retry can fix (bad formatting, text too long): keep the reason."""
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id)
        .values(status=OutboxStatus.FAILED, last_error=error[:500], attempts=OutboxMessage.attempts + 1, claimed_by=None)
    )
    await session.commit()


async def _skip_queued_to(session: AsyncSession, chat_id: int) -> None:
    await session.exec(
        update(OutboxMessage)
        .where(OutboxMessage.chat_id == chat_id, OutboxMessage.status == OutboxStatus.QUEUED)
        .values(status=OutboxStatus.SKIPPED, last_error=UNREACHABLE)
    )


async def mark_unreachable(session: AsyncSession, *, message_id: int, chat_id: int, error: str) -> None:
    """The user blocked the bot (or the chat is gone): skip this and every queued message to them."""
    await session.exec(
        update(OutboxMessage)
        .where(col(OutboxMessage.id) == message_id)
        .values(status=OutboxStatus.SKIPPED, last_error=error[:500], attempts=OutboxMessage.attempts + 1, claimed_by=None)
    )
    await _skip_queued_to(session, chat_id)
    await session.exec(
        update(Stakeholder)
        .where(Stakeholder.chat_id == chat_id, Stakeholder.status == StakeholderStatus.ACTIVE)
        .values(status=StakeholderStatus.UNREACHABLE, updated_at=utcnow())
    )
    await session.commit()


async def set_reachable(session: AsyncSession, *, chat_id: int, reachable: bool) -> int:
    """Telegram told us (my_chat_member) that this user blocked or unblocked the bot.

    Blocking also skips what is still queued to them. Someone who left stays "left".
    Returns how many stakeholders changed.
    """
    old, new = (
        (StakeholderStatus.UNREACHABLE, StakeholderStatus.ACTIVE)
        if reachable
        else (StakeholderStatus.ACTIVE, StakeholderStatus.UNREACHABLE)
    )
    result = await session.exec(
        update(Stakeholder)
        .where(Stakeholder.chat_id == chat_id, Stakeholder.status == old)
        .values(status=new, updated_at=utcnow())
    )
    if not reachable:
        await _skip_queued_to(session, chat_id)
    await session.commit()
    return result.rowcount or 0


async def claimed_workers(session: AsyncSession) -> list[str]:
    """Names of the workers holding rows in ``sending``."""
    rows = await session.exec(
        select(OutboxMessage.claimed_by).where(OutboxMessage.status == OutboxStatus.SENDING).distinct()
    )
    return [name for name in rows.all() if name]


async def release_claims(session: AsyncSession, *, workers: Collection[str]) -> int:
    """Give the rows of workers known to be dead back to the queue."""
    if not workers:
        return 0
    result = await session.exec(
        update(OutboxMessage)
        .where(OutboxMessage.status == OutboxStatus.SENDING, col(OutboxMessage.claimed_by).in_(list(workers)))
        .values(status=OutboxStatus.QUEUED, claimed_by=None)
    )
    await session.commit()
    return result.rowcount or 0


async def release_stale_claims(session: AsyncSession, *, older_than: timedelta) -> int:
    """Rows claimed longer ago than any live worker holds one go back to the queue."""
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
