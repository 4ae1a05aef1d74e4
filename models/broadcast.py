"""A CDA's notice to many stakeholders; its messages are outbox rows with purpose "broadcast"."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime
from sqlmodel import Field, SQLModel

from models.base import telegram_id_field, timestamp_field


class Broadcast(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    cluster_id: int = Field(foreign_key="cluster.id", ondelete="CASCADE", index=True)
    # HTML text per language; "default" is sent to languages without their own version.
    texts: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    audience: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    scheduled_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True), index=True)
    status: str = Field(default="scheduled", max_length=16, index=True)  # scheduled | sending | done | cancelled
    recipients: int = 0
    created_by: int | None = telegram_id_field(default=None, nullable=True)
    progress_chat_id: int | None = telegram_id_field(default=None, nullable=True)
    progress_message_id: int | None = telegram_id_field(default=None, nullable=True)
    created_at: datetime = timestamp_field()
    started_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    finished_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
