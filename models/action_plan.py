"""The yearly action plan: activities, the people on them, and their completion reports."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, DateTime, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import telegram_id_field, timestamp_field


class ActivityCategory(StrEnum):
    TRAINING = "training"
    EXPOSURE_VISIT = "exposure_visit"
    JOINT_MARKETING = "joint_marketing"
    TECHNOLOGY_UPGRADE = "technology_upgrade"
    CREDIT_FINANCE = "credit_finance"
    COMMON_FACILITY = "common_facility"
    TRUST_MEETING = "trust_meeting"
    OTHER = "other"


class ActivityStatus(StrEnum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class ActivityRole(StrEnum):
    LEAD = "lead"
    PARTICIPANT = "participant"
    # The seed's hand-over: a stakeholder who runs the activity in the CDA's place.
    COORDINATOR = "coordinator"


class Activity(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    cluster_id: int = Field(foreign_key="cluster.id", ondelete="CASCADE", index=True)
    year: int
    # Per language: {"en": "...", "hi": "..."}; the cluster's language is the fallback.
    title: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    description: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    category: str = Field(default=ActivityCategory.OTHER, max_length=32)
    start_date: date | None = None
    due_date: date | None = None
    venue: str | None = Field(default=None, max_length=200)
    target: str | None = Field(default=None, max_length=200)
    status: str = Field(default=ActivityStatus.PLANNED, max_length=16, index=True)
    completed_on: date | None = None
    created_by: int | None = telegram_id_field(default=None, nullable=True)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()


class ActivityPerson(SQLModel, table=True):
    __tablename__ = "activity_person"
    __table_args__ = (UniqueConstraint("activity_id", "stakeholder_id", "role"),)

    id: int | None = Field(default=None, primary_key=True)
    activity_id: int = Field(foreign_key="activity.id", ondelete="CASCADE", index=True)
    stakeholder_id: int = Field(foreign_key="stakeholder.id", ondelete="CASCADE", index=True)
    role: str = Field(max_length=16)
    added_at: datetime = timestamp_field()


class CompletionReport(SQLModel, table=True):
    """A progress report, committed step by step while the stakeholder fills it in."""

    __tablename__ = "completion_report"

    id: int | None = Field(default=None, primary_key=True)
    activity_id: int = Field(foreign_key="activity.id", ondelete="CASCADE", index=True)
    # The reporter; erased with the person, the activity keeps the report's facts.
    stakeholder_id: int | None = Field(default=None, foreign_key="stakeholder.id", ondelete="SET NULL", index=True)
    step: str = Field(default="status", max_length=16)
    status: str | None = Field(default=None, max_length=16)
    progress: int | None = None
    done_text: str | None = Field(default=None, sa_type=Text)
    participants: int | None = None
    photo_file_ids: list[str] = Field(default_factory=list, sa_type=JSON)
    state: str = Field(default="draft", max_length=16, index=True)  # draft | submitted
    submitted_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    verified_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    verified_by: int | None = telegram_id_field(default=None, nullable=True)
    created_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    extra: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
