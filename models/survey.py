"""Survey definitions (one row per version), launches (waves), responses and linkage edges."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, DateTime, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import telegram_id_field, timestamp_field


class Survey(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("cluster_id", "form_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    cluster_id: int = Field(foreign_key="cluster.id", ondelete="CASCADE", index=True)
    form_id: str = Field(max_length=64)
    version: str = Field(max_length=32)
    title: dict[str, str] = Field(default_factory=dict, sa_type=JSON)
    default_language: str = Field(max_length=8)
    anonymous: bool = False
    # The whole SurveyDefinition, so a response can always be read against the version it answered.
    definition: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    source: str = Field(max_length=16)
    created_at: datetime = timestamp_field()


class SurveyLaunch(SQLModel, table=True):
    """One round of a survey sent to an audience: the baseline, a follow-up, a feedback round."""

    __tablename__ = "survey_launch"

    id: int | None = Field(default=None, primary_key=True)
    survey_id: int = Field(foreign_key="survey.id", ondelete="CASCADE", index=True)
    cluster_id: int = Field(foreign_key="cluster.id", ondelete="CASCADE", index=True)
    wave: int = 1
    audience: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    closes_at: datetime = Field(sa_type=DateTime(timezone=True))
    remind_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    reminded_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    closed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))
    created_by: int | None = telegram_id_field(default=None, nullable=True)
    created_at: datetime = timestamp_field()


class SurveyInvitation(SQLModel, table=True):
    __tablename__ = "survey_invitation"
    __table_args__ = (UniqueConstraint("launch_id", "stakeholder_id"),)

    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="survey_launch.id", ondelete="CASCADE", index=True)
    stakeholder_id: int = Field(foreign_key="stakeholder.id", ondelete="CASCADE", index=True)
    invited_at: datetime = timestamp_field()


class SurveyResponse(SQLModel, table=True):
    __tablename__ = "survey_response"
    # One response per person and launch; for anonymous surveys the key is all that links them.
    __table_args__ = (UniqueConstraint("launch_id", "respondent_key"),)

    id: int | None = Field(default=None, primary_key=True)
    launch_id: int = Field(foreign_key="survey_launch.id", ondelete="CASCADE", index=True)
    survey_id: int = Field(foreign_key="survey.id", ondelete="CASCADE")
    # None for anonymous surveys; erased with the person (/forget) otherwise.
    stakeholder_id: int | None = Field(default=None, foreign_key="stakeholder.id", ondelete="CASCADE", index=True)
    respondent_key: str = Field(max_length=64)
    current: str | None = Field(default=None, max_length=64)
    answers: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    # Pending picks of a multi-select question, kept until Done so a restart keeps them.
    pending: list[Any] = Field(default_factory=list, sa_type=JSON)
    status: str = Field(default="in_progress", max_length=16)
    message_id: int | None = telegram_id_field(default=None, nullable=True)
    started_at: datetime = timestamp_field()
    updated_at: datetime = timestamp_field()
    completed_at: datetime | None = Field(default=None, sa_type=DateTime(timezone=True))


class LinkageEdge(SQLModel, table=True):
    """"Source works with target", as answered in a trust & linkage survey."""

    __tablename__ = "linkage_edge"

    id: int | None = Field(default=None, primary_key=True)
    cluster_id: int = Field(foreign_key="cluster.id", ondelete="CASCADE", index=True)
    launch_id: int = Field(foreign_key="survey_launch.id", ondelete="CASCADE", index=True)
    response_id: int = Field(foreign_key="survey_response.id", ondelete="CASCADE")
    question: str = Field(max_length=64)
    source_stakeholder_id: int = Field(foreign_key="stakeholder.id", ondelete="CASCADE")
    target_stakeholder_id: int = Field(foreign_key="stakeholder.id", ondelete="CASCADE")
    created_at: datetime = timestamp_field()
