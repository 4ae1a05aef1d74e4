"""Meetings with RSVPs, and their reminders as rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import telegram_id_field, timestamp_field


class Meeting(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    cluster_id: int = Field(foreign_key="cluster.id", ondelete="CASCADE", index=True)
    activity_id: int | None = Field(default=None, foreign_key="activity.id", ondelete="SET NULL", index=True)
    title: str = Field(max_length=200)
    starts_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    duration_minutes: int = 120
    venue: str | None = Field(default=None, max_length=300)
    latitude: float | None = None
    longitude: float | None = None
    agenda: str | None = Field(default=None, sa_type=Text)
    audience: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = Field(default="scheduled", max_length=16)  # scheduled | cancelled
    # Bumped on every reschedule, so reminders and notices of the old time are told apart.
    revision: int = 1
    created_by: int | None = telegram_id_field(default=None, nullable=True)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class MeetingInvite(SQLModel, table=True):
    __tablename__ = "meeting_invite"
    __table_args__ = (UniqueConstraint("meeting_id", "stakeholder_id"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", ondelete="CASCADE", index=True)
    stakeholder_id: int = Field(foreign_key="stakeholder.id", ondelete="CASCADE", index=True)
    response: str | None = Field(default=None, max_length=8)  # yes | no | maybe
    responded_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    invited_at: datetime = timestamp_field()


class MeetingReminder(SQLModel, table=True):
    __tablename__ = "meeting_reminder"
    __table_args__ = (UniqueConstraint("meeting_id", "revision", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    meeting_id: int = Field(foreign_key="meeting.id", ondelete="CASCADE", index=True)
    revision: int
    kind: str = Field(max_length=8)  # 24h | 2h
    due_at: datetime = Field(sa_type=DateTime(timezone=True), index=True)
    done_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
