"""Who changed what. Details name fields, never their personal values."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON
from sqlmodel import Field, SQLModel

from models.base import telegram_id_field, timestamp_field


class AuditEntry(SQLModel, table=True):
    __tablename__ = "audit_entry"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = timestamp_field(index=True)
    # None for the operator's CLI, and for people who asked to be forgotten.
    actor_user_id: int | None = telegram_id_field(default=None, nullable=True, index=True)
    action: str = Field(max_length=64)
    cluster_id: int | None = Field(default=None, foreign_key="cluster.id", ondelete="SET NULL")
    subject: str | None = Field(default=None, max_length=64)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
