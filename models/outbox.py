"""Messages to send are rows first; a sender drains them within Telegram's limits."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Index, Text
from sqlmodel import Field, SQLModel

from models.base import telegram_id_field, timestamp_field


class OutboxStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"


class OutboxMessage(SQLModel, table=True):
    __tablename__ = "outbox_message"
    # The sender claims by (status, not_before); progress and summaries count by (purpose, ref_id).
    __table_args__ = (
        Index("ix_outbox_message_due", "status", "not_before"),
        Index("ix_outbox_message_purpose_ref", "purpose", "ref_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    chat_id: int = telegram_id_field(index=True)
    stakeholder_id: int | None = Field(default=None, foreign_key="stakeholder.id", ondelete="CASCADE", index=True)
    text: str = Field(sa_type=Text)
    reply_markup: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    # A file sent with the text as its caption: {"filename": ..., "content_b64": ...}; small files
    # the bot makes itself (a meeting's .ics), so the row alone is enough to send it again.
    attachment: dict[str, Any] | None = Field(default=None, sa_type=JSON)
    # What the message belongs to, e.g. ("survey_invitation", launch id); and a key that makes
    # enqueueing idempotent, so a retried launch never queues the same message twice.
    purpose: str = Field(max_length=32)
    ref_id: int | None = None
    dedupe_key: str | None = Field(default=None, max_length=128, unique=True)
    status: str = Field(default=OutboxStatus.QUEUED, max_length=16, index=True)
    attempts: int = 0
    last_error: str | None = Field(default=None, max_length=500)
    telegram_message_id: int | None = telegram_id_field(default=None, nullable=True)
    not_before: datetime = timestamp_field(index=True)
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    sent_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_at: datetime = timestamp_field()
